"""python recipes/audio_folder/evaluate.py --out OUT [--embedder CLAP_FOLDER]

Evaluate OUT/model on OUT's held-out split with the shared evaluation module (audioldm.evaluation.report): a judge
trained on the training split's real clips, adherence vs ceiling vs chance, FD vs real-vs-real, memorisation,
diversity, rows for conditions seen and unseen in U-Net training, and the stage decomposition. Writes
OUT/report.json and OUT/report.md. run.py calls :func:`run` and :func:`gallery`; this script re-runs them alone.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper

from audioldm.config import save_json_atomic
from audioldm.evaluation.embedders import clap_judge_embedder
from audioldm.evaluation.report import evaluate_model, report_table
from audioldm.export import export_samples
from audioldm.files import portable_model_id
from audioldm.pipeline import AudioLDM
from common import clip_request, heldout_requests


def _category(args):
    col = getattr(args, "category", None)
    return (lambda c: str(c.labels.get(col))) if col else (lambda c: c.caption or "")


def run(args, preset, out: Path, train, valid) -> dict:
    pipe = AudioLDM.from_pretrained(out / "model")
    fields = [f.name for f in pipe.conditioner.config.fields] if pipe.conditioning != "text" else []
    request = clip_request(pipe.conditioning, fields)
    seen = {request(c)[0] for c in train}
    heldout = valid if pipe.uses_labels else [c for c in valid if c.caption]  # a text request needs a caption
    if not heldout:
        raise SystemExit("error: no held-out clip to evaluate on; add data or raise --valid-fraction")
    embedder = None
    if getattr(args, "embedder", None):
        embedder = clap_judge_embedder(args.embedder, pipe.mel_config)
    rep = evaluate_model(pipe, train, heldout, _category(args), request, seen, args.clip_seconds,
                         judge_steps=preset.judge_steps, per_condition=preset.per_condition,
                         max_conditions=preset.max_conditions, max_heldout=preset.max_heldout, seed=args.seed,
                         embedder=embedder)
    save_json_atomic(out / "report.json", rep)
    table = report_table(rep)
    (out / "report.md").write_text(table + "\n", encoding="utf-8")
    print(table, file=sys.stderr)
    return {"ceiling": rep["ceiling_heldout_real"], "adherence": rep["rows"]["generated (all held-out conditions)"]
            ["accuracy"], "fraction_of_ceiling": rep["adherence_fraction_of_ceiling"], "wall_s": rep["wall_seconds"]}


def gallery(args, preset, out: Path, valid) -> dict:
    pipe = AudioLDM.from_pretrained(out / "model")
    fields = [f.name for f in pipe.conditioner.config.fields] if pipe.conditioning != "text" else []
    rows = heldout_requests(valid, pipe.conditioning, fields, preset.gallery_captions)
    shutil.rmtree(out / "gallery", ignore_errors=True)  # the stage's own folder: no clips left from an earlier run
    man = export_samples(pipe, rows, out / "gallery", num_per_prompt=2, seed=args.seed, overwrite=True,
                         progress=False, model_id=portable_model_id(out / "model"))
    return {"samples": len(man["samples"]), "failures": len(man["failures"])}


def main() -> None:
    import argparse

    import stages
    from audioldm.data import read_manifest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--out", required=True)
    p.add_argument("--embedder", default=None, help="a local transformers ClapModel folder")
    p.add_argument("--category", default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    o = Path(a.out)
    run_info = json.loads((o / "run.json").read_text())
    a.clip_seconds = json.loads((o / "stages" / "prepare.json").read_text())["clip_seconds"]
    clips = read_manifest(o / "data" / "manifest.jsonl")
    print(json.dumps(run(a, stages.PRESETS[run_info["preset"]](), o,
                         [c for c in clips if c.labels.get("split") == "train"],
                         [c for c in clips if c.labels.get("split") == "valid"]), indent=2))


if __name__ == "__main__":
    main()
