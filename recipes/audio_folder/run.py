"""python recipes/audio_folder/run.py --data DATA --out OUT --preset small [--resume] [--overwrite]

Train a text-to-audio (or label-to-audio) model on any collection of sounds, end to end:
  1. prepare   read, downmix, resample, slice at silences; drop silent / corrupt / duplicate files (listed with their
               reasons in OUT/data/prepare.json); split train / held-out by source file (or --group-by COLUMN);
               the clip length is the 90th percentile of clip durations, capped by --max-seconds and rounded up to
               the U-Net's latent multiple
  2. vae       the mel VAE (or --vae FOLDER to reuse one)
  3. ldm       the conditional U-Net on cached latents (--conditioning text, labels, or both: a caption and/or
               labels per sample): validation loss on the held-out split every eval_every
               steps, the best checkpoint kept (OUT/ldm/best), samples for held-out captions in OUT/ldm/samples
               and TensorBoard (OUT/ldm/tensorboard)
  4. vocoder   --vocoder universal (default: the shipped 16 kHz vocoder slot), griffinlim, FOLDER, or train (the
               spectral vocoder trained on the training clips into OUT/vocoder/vocoder)
  5. package   OUT/model, a model folder for AudioLDM.from_pretrained and `audioldm generate --model`
  6. evaluate  OUT/report.json (+ report.md): audioldm.evaluation.report on held-out clips
  7. gallery   OUT/gallery: `audioldm export` of held-out captions
--resume skips finished stages and resumes the unfinished one from its checkpoints. Multi-process: torchrun --nproc_per_node 2 recipes/audio_folder/run.py ... (training stages run
on every rank; the rest on rank 0).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import stages  # noqa: E402
import torch  # noqa: E402

from audioldm.data import read_manifest  # noqa: E402
from audioldm.data.prepare import PrepareConfig, PrepareError, prepare_dataset  # noqa: E402
from audioldm.training.distributed import init_distributed  # noqa: E402
from audioldm.unet import UNET_PRESETS  # noqa: E402
from audioldm.vae import VAE_PRESETS, MelVAE  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
common.add_common_args(p, stages.PRESETS, conditioning=("text", "labels", "both"))
p.add_argument("--sample-rate", type=int, default=16000, choices=sorted(stages.MEL_FOR_RATE))
p.add_argument("--max-seconds", type=float, default=10.0, help="longest training clip; longer sounds are sliced")
p.add_argument("--group-by", default=None, help="split train / held-out by this manifest column (default: file)")
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--label-fields", nargs="+", default=None, help="label columns to condition on (default: all)")
p.add_argument("--text-encoder", default=None, help="a local transformers folder (T5, CLAP, sentence-transformers)")
p.add_argument("--category", default=None, help="column the evaluation judge recognises (default: the caption)")
p.add_argument("--vae", default=None, help="reuse this VAE folder instead of training one")
common.add_vocoder_arg(p)
p.add_argument("--name", default=None, help="model name (default: the data folder's name)")
p.add_argument("--licence", default=None, help="the data's licence, recorded in the model folder")
p.add_argument("--vae-steps", type=int, default=None, help="VAE training steps (default: the preset's)")
p.add_argument("--guidance", type=float, default=None,
               help="the model's default guidance scale (default: the preset's; lower = more varied, less literal)")
p.add_argument("--judge-steps", type=int, default=None, help="evaluation judge training steps (default: the preset's)")
p.add_argument("--device", default="auto")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--no-progress", action="store_true")
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
torch.manual_seed(args.seed)
info = init_distributed(args.device)
preset = stages.PRESETS[args.preset]
if args.vae_steps:
    preset.vae_steps = args.vae_steps
if args.judge_steps:
    preset.judge_steps = args.judge_steps
data = Path(args.data)
mel = stages.MEL_FOR_RATE[args.sample_rate]
common.check_vocoder_arg(args.vocoder, mel)


def done(name, make, everyone=True):
    return common.run_stage(out, name, make, info, everyone)


# 0. the run folder: refused when it holds another run (other data, preset, rate or conditioning) unless --overwrite
settings = {"data": str(data.resolve()), "data_fingerprint": common.data_fingerprint(data, exclude=args.out),
            "preset": args.preset, "sample_rate": args.sample_rate, "conditioning": args.conditioning, "text_encoder": args.text_encoder,
            "vae": args.vae, "group_by": args.group_by, "max_seconds": args.max_seconds}
out = common.open_run(args.out, settings, args.resume, args.overwrite, info.is_main)
common.barrier(info)

# 1. prepare
vae_down = VAE_PRESETS[preset.vae]().downsample if args.vae is None else MelVAE.from_pretrained(args.vae).config \
    .downsample
multiple = vae_down * 2 ** (len(UNET_PRESETS[preset.unet]().block_channels) - 1)
pcfg = PrepareConfig(sample_rate=args.sample_rate, max_seconds=args.max_seconds, group_by=args.group_by,
                     valid_fraction=args.valid_fraction, latent_multiple_frames=multiple, hop_length=mel.hop_length,
                     caption_required=args.conditioning != "labels")


def prepare():
    try:
        rep = prepare_dataset(data, out / "data", pcfg, progress=None if args.no_progress else
                              (lambda it: stages.tqdm(it, desc="prepare", file=sys.stderr)))
    except PrepareError as e:
        raise SystemExit(f"error: {e}") from None
    return {k: v for k, v in rep.items() if k != "dropped"} | {"dropped": len(rep["dropped"])}


prep = done("prepare", prepare, everyone=False)
args.clip_seconds = prep["clip_seconds"]
clips = read_manifest(out / "data" / "manifest.jsonl")
train = [c for c in clips if c.labels.get("split") == "train"]
valid = [c for c in clips if c.labels.get("split") == "valid"]
if args.conditioning != "labels" and not any(c.caption for c in train):
    raise SystemExit(f"error: {data}: no captions in the training split; give captions or use --conditioning labels")

# 2. VAE (or a given one, whose mel settings must match --sample-rate)
if args.vae:
    vae_dir = Path(args.vae)
    theirs = MelVAE.from_pretrained(vae_dir).config.mel
    if theirs != mel:
        raise SystemExit(f"error: --vae {vae_dir} was trained with mel settings {theirs.to_dict()}, but "
                         f"--sample-rate {args.sample_rate} uses {mel.to_dict()}")
else:
    vae_dir = out / "vae" / "vae"
    done("vae", lambda: stages.train_vae(args, preset, mel, train, valid, out / "vae",
                                         resume=(out / "vae" / "checkpoints").is_dir()))

# 3. U-Net
ldm = done("ldm", lambda: stages.train_ldm(args, preset, vae_dir, train, valid, out / "ldm",
                                           resume=(out / "ldm" / "checkpoints").is_dir(), device=info.device))
# 4. the vocoder: --vocoder train trains the spectral vocoder on the training clips (on every rank, like the stages
#    above); the others only name what step 5 packages
vocoder_rec = done("vocoder", lambda: common.vocoder_for_model(args.vocoder, mel, train, valid, out / "vocoder",
                                                               args.seed, args.device, not args.no_progress)[1])
args.vocoder_folder = str(out / "vocoder" / "vocoder") if vocoder_rec.get("vocoder") == "trained spectral" \
    else "universal" if args.vocoder == "train" else args.vocoder
if info.enabled:  # training is over: the other ranks leave, rank 0 packages, evaluates and exports alone
    torch.distributed.destroy_process_group()
if not info.is_main:
    sys.exit(0)

# 5. the model folder, with what it was trained on

licence = args.licence
for name in ("LICENSE", "LICENCE", "COPYING", "LICENSE.txt", "copyright"):
    f = (data if data.is_dir() else data.parent) / name
    if licence is None and f.is_file():
        licence = f.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0][:200]
model_info = {"name": args.name or (data.name if data.is_dir() else data.parent.name),
              "data": {"name": data.name if data.is_dir() else data.parent.name, "clips": prep["clips"],
                       "hours": prep["hours"], "licence": licence, "sample_rate": args.sample_rate,
                       "clip_seconds": args.clip_seconds}, "recipe": f"audio_folder --preset {args.preset}"}
done("package", lambda: stages.package(args, preset, vae_dir, out / "ldm", out / "model", model_info))

# 6. evaluation on held-out clips (report.json + report.md)
import evaluate  # noqa: E402

done("evaluate", lambda: evaluate.run(args, preset, out, train, valid))

# 7. gallery: held-out captions through `audioldm export`
done("gallery", lambda: evaluate.gallery(args, preset, out, valid))
print(json.dumps({"model": str(out / "model"), "report": str(out / "report.json"), "gallery": str(out / "gallery"),
                  "ldm": ldm}, indent=2))
