"""The vocoder recipe's report (recipes/vocoder/run.py step 3): audioldm.evaluation.vocoder's decomposition of the
trained vocoder beside Griffin-Lim, per source, into OUT/report.json and OUT/report.md.

Run alone, it re-scores a finished run's prepared clips with any vocoders (e.g. the shipped universal one):
    python recipes/vocoder/report.py --run OUT --vocoder FOLDER [--vocoder ...] [--vae FOLDER] [--to OUT/other]
"""

from __future__ import annotations

from pathlib import Path

import torch

from audioldm.files import save_json_atomic, write_text_atomic
from audioldm.data import ClipDataset
from audioldm.evaluation.vocoder import decomposition_markdown, vocoder_decomposition
from audioldm.vocoders import GriffinLimVocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig


def _group(clip, held_out: bool) -> str:
    return f"{'held-out' if held_out else 'seen'} {clip.labels.get('kind') or clip.labels.get('corpus')}"


def pick(valid, heldout, per_group: int) -> list:
    """Up to ``per_group`` clips of each group, spread over its sorted paths: [(clip, group)]."""
    groups: dict[str, list] = {}
    for clips, held in ((valid, False), (heldout, True)):
        for c in clips:
            groups.setdefault(_group(c, held), []).append(c)
    out = []
    for g, cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: str(c.path))
        n = min(per_group, len(cs))
        out += [(cs[round(i * (len(cs) - 1) / max(1, n - 1))], g) for i in range(n)]
    return out


def _int_or_none(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def run(out: Path, vocoder, valid, heldout, mel_cfg, vae, args, vocoders: dict | None = None) -> dict:
    """Score ``vocoder`` (or every vocoder of ``vocoders``, name -> vocoder) beside Griffin-Lim; write the report."""
    chosen = pick(valid, heldout, args.report_items)
    ds = ClipDataset([c for c, _ in chosen], mel_cfg, args.report_seconds)
    items = [ds[i] for i in range(len(ds))]
    wav, mel = torch.stack([it["wav"] for it in items]), torch.stack([it["mel"] for it in items])
    programs = [_int_or_none(c.labels.get("program")) for c, _ in chosen]
    pitches = [_int_or_none(c.labels.get("pitch")) if p is not None and p < 128 else None
               for (c, _), p in zip(chosen, programs)]
    judge = None
    if any(p is not None for p in programs) and mel_cfg.sample_rate == 16000:
        from audioldm.evaluation.gm_judge import load_gm_judge
        judge = load_gm_judge()
    inputs = {}
    if vae is not None:
        with torch.no_grad():
            inputs["VAE reconstructions"] = torch.cat([vae(mel[s:s + 16], sample=False)[0].float()
                                                       for s in range(0, len(mel), 16)])
    vocoders = {"griffin-lim (peak fit, 60 it.)": GriffinLimVocoder(GriffinLimConfig(mel=mel_cfg)),
                **({k: v.eval() for k, v in vocoders.items()} if vocoders else {"trained vocoder": vocoder.eval()})}
    rows = vocoder_decomposition(vocoders, wav, mel, [g for _, g in chosen], inputs=inputs, pitches=pitches,
                                 programs=programs if judge else None, judge=judge)
    groups = sorted({g for _, g in chosen}) + ["all"]
    md = [f"# Vocoder report: {out}", "", f"{len(chosen)} clips of {args.report_seconds} s, up to "
          f"{args.report_items} per source; 'held-out' sources were never trained on.", ""]
    for g in groups:
        md += [f"## {g}", "", decomposition_markdown(rows, g), ""]
    save_json_atomic(out / "report.json", rows)
    write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    return {"clips": len(chosen), "groups": groups}


if __name__ == "__main__":
    import argparse
    import json
    import sys

    from audioldm.data import read_manifest
    from audioldm.vae import MelVAE
    from audioldm.vocoders import load_vocoder

    p = argparse.ArgumentParser(description="re-score a vocoder run's clips with any vocoders")
    p.add_argument("--run", required=True, help="a finished recipes/vocoder/run.py folder")
    p.add_argument("--vocoder", action="append", required=True, help="a vocoder folder (repeatable)")
    p.add_argument("--vae", default=None)
    p.add_argument("--to", default=None, help="write report.json / report.md here (default: RUN/rescored)")
    p.add_argument("--report-items", type=int, default=48)
    p.add_argument("--report-seconds", type=float, default=2.0)
    a = p.parse_args()
    run_dir = Path(a.run)
    settings = json.loads((run_dir / "run.json").read_text())
    sources = [("data", d) for d in settings["data"]] + [("heldout", d) for d in settings["heldout"]]
    valid_clips, heldout_clips = [], []
    for i, (kind, d) in enumerate(sources):
        name = Path(d).parent.name if Path(d).is_file() else Path(d).name
        for c in read_manifest(run_dir / "data" / f"{kind}{i}" / "manifest.jsonl"):
            c.labels.setdefault("corpus", name)
            if kind == "heldout":
                heldout_clips.append(c)
            elif c.labels.get("split") != "train":
                valid_clips.append(c)
    vocs = {f: load_vocoder(f) for f in a.vocoder}
    mel = next(iter(vocs.values())).mel_config
    to = Path(a.to) if a.to else run_dir / "rescored"
    to.mkdir(parents=True, exist_ok=True)
    vae_model = MelVAE.from_pretrained(a.vae).eval() if a.vae else None
    print(json.dumps(run(to, None, valid_clips, heldout_clips, mel, vae_model, a, vocoders=vocs)), file=sys.stderr)
