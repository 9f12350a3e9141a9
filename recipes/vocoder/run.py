"""python recipes/vocoder/run.py --data DATA [--data DATA2 ...] --out OUT [--preset NAME] [--sample-rate SR]
    [--heldout DATA ...] [--vae FOLDER] [--init FOLDER] [--resume] [--overwrite]

Train a vocoder on any sounds, then report its stage decomposition against Griffin-Lim:
  1. prepare   every --data (and --heldout) read as the audio-folder recipe reads it: a folder or manifest, any
               format, rate or channels; resampled, sliced at silences; each --data split train / valid by file
  2. vocoder   the spectral vocoder (audioldm/vocoders/spectral.py) on random segments of the training clips, with
               --vae-fraction of each batch fed a VAE's reconstructions (--vae FOLDER: what generation hands the
               vocoder); --init FOLDER fine-tunes a trained one (e.g. the shipped universal vocoder)
  3. report    OUT/report.json + OUT/report.md: real -> vocoder and, with --vae, real -> VAE -> vocoder, beside the
               shipped Griffin-Lim and the oracle rows (true magnitude / true phase), per source: MR-STFT, log-mel
               L1, pitch and the GM judge where the clips carry pitch / program labels, speed beside Griffin-Lim.
               Sources of --data are scored on their valid files; --heldout sources are never trained on.
OUT/vocoder is the trained vocoder folder (audioldm.vocoders.load_vocoder). --resume continues from checkpoints.
The universal vocoder: python recipes/vocoder/corpus.py --out data/vocoder_corpus, then
  python recipes/vocoder/run.py --data data/vocoder_corpus/train --heldout data/vocoder_corpus/heldout \\
      --out runs/vocoder_universal --preset universal
"""

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper
import common  # noqa: E402
import torch  # noqa: E402

from audioldm.data import read_manifest  # noqa: E402
from audioldm.data.prepare import PrepareConfig, PrepareError, prepare_dataset  # noqa: E402
from audioldm.training.distributed import init_distributed  # noqa: E402
from audioldm.vae import MelVAE  # noqa: E402
from audioldm.vocoders import load_vocoder  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Preset:
    vocoder: str  # a SPECTRAL_PRESETS name
    steps: int
    batch_size: int = 16
    segment_seconds: float = 0.64
    lr: float = 1e-3


def spectral() -> Preset:
    """The spectral vocoder from its peak-fit start: 1000 steps, ~10 min on 2 CPU cores for the corpus."""
    return Preset("base", 1000)


def finetune() -> Preset:
    """--init VOCODER adapted to new data: 300 steps at a lower learning rate."""
    return Preset("base", 300, lr=2e-4)


def tiny() -> Preset:
    """Tests: a few steps of a tiny network."""
    return Preset("tiny", 20, batch_size=4, segment_seconds=0.32)


PRESETS = {"spectral": spectral, "finetune": finetune, "tiny": tiny}  # name -> factory
MEL_FOR_RATE = common.MEL_FOR_RATE
MIN_CLIPS = 8  # fewer training clips than this is refused before any work

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[3])
    common.add_common_args(p, PRESETS, conditioning=(), several_data=True)
    p.set_defaults(preset="spectral")
    p.add_argument("--sample-rate", type=int, default=16000, choices=sorted(MEL_FOR_RATE))
    p.add_argument("--heldout", action="append", default=[], help="data only scored, never trained on (repeatable)")
    p.add_argument("--vae", default=None, help="a VAE folder: part of each batch is its reconstruction of the mel")
    p.add_argument("--vae-fraction", type=float, default=0.5, help="with --vae: the fraction of each batch it feeds")
    p.add_argument("--init", default=None, help="start from this trained vocoder folder (fine-tuning)")
    p.add_argument("--lr", type=common.positive_float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=common.positive_int, default=None)
    p.add_argument("--max-seconds", type=float, default=10.0, help="longest clip; longer sounds are sliced")
    p.add_argument("--report-items", type=common.positive_int, default=48, help="clips scored per source in the report")
    p.add_argument("--report-seconds", type=float, default=2.0, help="length of each scored clip")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    info = init_distributed(args.device)
    preset = PRESETS[args.preset]()
    mel = MEL_FOR_RATE[args.sample_rate]
    init = load_vocoder(args.init) if args.init else None  # checked before any work: a wrong folder fails here
    if init is not None and not hasattr(init, "learns_magnitude"):
        raise SystemExit(f"error: --init {args.init} is a {type(init).__name__}; this recipe trains the spectral vocoder")
    if init is not None and init.mel_config != mel:
        raise SystemExit(f"error: --init {args.init} was trained with mel settings {init.mel_config.to_dict()}, but "
                         f"--sample-rate {args.sample_rate} uses {mel.to_dict()}")
    vae = MelVAE.from_pretrained(args.vae).eval() if args.vae else None
    if vae is not None and vae.config.mel != mel:
        raise SystemExit(f"error: --vae {args.vae} was trained with mel settings {vae.config.mel.to_dict()}, but "
                         f"--sample-rate {args.sample_rate} uses {mel.to_dict()}")

    # 0. the run folder: refused when it holds another run unless --overwrite
    settings = {"data": [str(Path(d).resolve()) for d in args.data], "heldout": [str(Path(d).resolve()) for d in args.heldout],
                "data_fingerprint": [common.data_fingerprint(d, exclude=args.out) for d in args.data + args.heldout],
                "preset": args.preset, "sample_rate": args.sample_rate, "vae": args.vae, "init": args.init}
    out = common.open_run(args.out, settings, args.resume, args.overwrite, info.is_main)
    common.barrier(info)


    def done(name, make, everyone=True):
        return common.run_stage(out, name, make, info, everyone)


    # 1. prepare each source into OUT/data/<i> (held-out ones whole: their own split is ignored)
    sources = [("data", d) for d in args.data] + [("heldout", d) for d in args.heldout]
    pcfg = PrepareConfig(sample_rate=args.sample_rate, max_seconds=args.max_seconds, caption_required=False,
                         hop_length=mel.hop_length, latent_multiple_frames=1)


    def prepare():
        rec = {}
        for i, (kind, d) in enumerate(sources):
            try:
                rep = prepare_dataset(d, out / "data" / f"{kind}{i}", pcfg)
            except PrepareError as e:
                raise SystemExit(f"error: {e}") from None
            rec[f"{kind}{i}"] = {"source": d, "clips": rep["clips"], "hours": rep["hours"], "dropped": len(rep["dropped"])}
        return rec


    done("prepare", prepare, everyone=False)
    train, valid, heldout = [], [], []
    for i, (kind, d) in enumerate(sources):
        name = Path(d).parent.name if Path(d).is_file() else Path(d).name  # a manifest is named by its folder
        for c in read_manifest(out / "data" / f"{kind}{i}" / "manifest.jsonl"):
            c.labels.setdefault("corpus", name)
            (heldout if kind == "heldout" else train if c.labels.get("split") == "train" else valid).append(c)
    if len(train) < MIN_CLIPS:
        raise SystemExit(f"error: {len(train)} training clips after preparing {args.data}; at least {MIN_CLIPS} are needed")


    # 2. the vocoder
    class VAERoundTrip(torch.nn.Module):
        """log-mel -> the VAE's reconstruction from its posterior mean."""

        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, m):
            return self.vae(m, sample=False)[0]


    def train_vocoder():
        return common.fit_vocoder(train, valid, mel, out / "vocoder_run", steps=common.pick(args.steps, preset.steps),
                                  batch_size=common.pick(args.batch_size, preset.batch_size),
                                  segment_seconds=preset.segment_seconds,
                                  lr=common.pick(args.lr, preset.lr), init=init, preset=preset.vocoder,
                                  mel_input=VAERoundTrip(vae) if vae is not None else None,
                                  mel_input_fraction=args.vae_fraction, seed=args.seed, device=args.device,
                                  progress=not args.no_progress, levers=common.train_levers(args),
                                  save_to=out / "vocoder")  # the folder this recipe hands out


    rec = done("vocoder", train_vocoder)
    if info.enabled:
        torch.distributed.destroy_process_group()
    if not info.is_main:
        sys.exit(0)

    # 3. the report
    import report  # noqa: E402  (recipes/vocoder/report.py)

    done("report", lambda: report.run(out, load_vocoder(out / "vocoder"), valid, heldout, mel, vae, args))
    print(json.dumps({"vocoder": str(out / "vocoder"), "report": str(out / "report.md"), "training": rec}, indent=2))


if __name__ == "__main__":
    main()
