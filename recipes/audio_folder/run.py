"""python recipes/audio_folder/run.py --data DATA --out OUT --preset small [--resume] [--overwrite]

Train a text-to-audio (or label-to-audio) model on any collection of sounds, end to end:
  1. prepare   read, downmix, resample, slice at silences; drop silent / corrupt / duplicate files (listed with their
               reasons in OUT/data/prepare.json); split train / held-out by the manifest's own `split` column, else
               by source file (or --group-by COLUMN); the clip length is the 90th percentile of clip durations,
               capped by --max-seconds and rounded up to the U-Net's latent multiple (or --clip-seconds)
  2. vae       the mel VAE (or --vae FOLDER to reuse one)
  3. ldm       the conditional U-Net on cached latents (--conditioning text, labels, or both: a caption and/or
               labels per sample; --schedule picks the noise schedule): validation loss on the held-out split every
               eval_every steps, the best checkpoint kept (OUT/ldm/best), samples for held-out captions in
               OUT/ldm/samples and TensorBoard (OUT/ldm/tensorboard)
  4. vocoder   --vocoder universal (default: the shipped 16 kHz vocoder slot), griffinlim, FOLDER, or train (the
               spectral vocoder trained on the training clips into OUT/vocoder/vocoder)
  5. package   OUT/model, a model folder for AudioLDM.from_pretrained and `audioldm generate --model`
  6. evaluate  OUT/report.json (+ report.md): audioldm.evaluation.report on held-out clips
  7. gallery   OUT/gallery: `audioldm export` of held-out captions
--until STAGE stops after STAGE. --resume skips finished stages and resumes the unfinished one from its checkpoints.
Multi-process: torchrun --nproc_per_node 2 recipes/audio_folder/run.py ... (training stages run on every rank; the
rest on rank 0). Every recipe that trains a model runs these stages: recipes/gm_notes/run.sh is data and settings.
"""

import argparse
import dataclasses
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
from audioldm.vae import MelVAE  # noqa: E402

STAGES = ["prepare", "vae", "ldm", "vocoder", "package", "evaluate", "gallery"]
LICENCE_FILES = ("LICENSE", "LICENCE", "COPYING", "LICENSE.txt", "copyright")


def _key_value(text: str) -> tuple[str, object]:
    """--vae-config KEY=VALUE: VALUE as JSON (numbers, true/false), or comma-separated integers (ch_mult=1,2,4)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        try:
            return key, [int(v) for v in value.split(",")]
        except ValueError:
            return key, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    common.add_common_args(p, stages.PRESETS, conditioning=("text", "labels", "both"))
    p.add_argument("--sample-rate", type=int, default=16000, choices=sorted(common.MEL_FOR_RATE))
    p.add_argument("--max-seconds", type=common.positive_float, default=10.0,
                   help="longest training clip; longer sounds are sliced")
    p.add_argument("--clip-seconds", type=common.positive_float, default=None,
                   help="the training clip length (default: from the data, see step 1); must be a whole number of "
                        "the U-Net's latent blocks")
    p.add_argument("--group-by", default=None, help="split train / held-out by this manifest column (default: file)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--label-fields", nargs="+", default=None, help="label columns to condition on (default: all)")
    p.add_argument("--label-words", default=None, help='a JSON file of prompt words per label field: {"pitch": '
                   '{"note_names": true}, "velocity": {"aliases": {"loud": 120}}} (recipes/gm_notes/labels.json)')
    p.add_argument("--text-encoder", default=None, help="a local transformers folder (T5, CLAP, sentence-transformers)")
    p.add_argument("--schedule", default="cosine", choices=sorted(stages.SCHEDULES),
                   help="the U-Net's noise schedule (v-prediction, min-SNR 5); scaled_linear is AudioLDM's")
    p.add_argument("--category", default=None, help="column the evaluation judge recognises (default: the caption)")
    p.add_argument("--balance", action="store_true", help="train the U-Net on clips drawn evenly over categories "
                   "(--category, else the caption), each source file counted once however many slices it gave")
    p.add_argument("--vae", default=None, help="reuse this VAE folder instead of training one")
    p.add_argument("--vae-config", nargs="+", type=_key_value, default=None, metavar="KEY=VALUE",
                   help="override fields of the preset's VAE config (ch=16 ch_mult=1,2 num_res_blocks=2 z_channels=3)")
    common.add_vocoder_arg(p)
    p.add_argument("--name", default=None, help="model name (default: the data folder's name)")
    p.add_argument("--licence", default=None, help="the data's licence, recorded in the model folder")
    p.add_argument("--vae-steps", type=common.positive_int, default=None, help="VAE training steps (default: preset's)")
    p.add_argument("--lr", type=common.positive_float, default=None, help="U-Net learning rate (default: preset's)")
    p.add_argument("--batch-size", type=common.positive_int, default=None, help="U-Net batch (default: preset's)")
    p.add_argument("--guidance", type=common.positive_float, default=None,
                   help="the model's default guidance scale (default: the preset's; lower = more varied, less literal)")
    p.add_argument("--judge-steps", type=common.positive_int, default=None,
                   help="evaluation judge training steps (default: the preset's)")
    p.add_argument("--fp16", action="store_true", help="store the model folder's weights as float16")
    p.add_argument("--until", default="gallery", choices=STAGES, help="stop after this stage (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


def read_licence(data: Path, given: str | None) -> str | None:
    """--licence, else the first line of a licence file beside the data (an empty or unreadable one is skipped)."""
    if given is not None:
        return given
    for name in LICENCE_FILES:
        f = (data if data.is_dir() else data.parent) / name
        if f.is_file():
            lines = f.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            if lines:
                return lines[0][:200]
    return None


def prepare_stage(args, data: Path, out: Path, preset) -> dict:
    mel = common.MEL_FOR_RATE[args.sample_rate]
    vae_down = stages.vae_config(preset, mel, args.vae_config).downsample if args.vae is None else \
        MelVAE.from_pretrained(args.vae).config.downsample
    multiple = vae_down * 2 ** (len(UNET_PRESETS[preset.unet]().block_channels) - 1)
    if args.clip_seconds is not None:
        frames = args.clip_seconds * mel.sample_rate / mel.hop_length
        if abs(frames / multiple - round(frames / multiple)) > 1e-6 or round(frames) == 0:
            block = multiple * mel.hop_length / mel.sample_rate
            raise SystemExit(f"error: --clip-seconds {args.clip_seconds}: must be a whole number of {block:g} s "
                             f"latent blocks ({multiple} mel frames) for this VAE and U-Net")
    pcfg = PrepareConfig(sample_rate=args.sample_rate, max_seconds=max(args.max_seconds, args.clip_seconds or 0),
                         group_by=args.group_by, valid_fraction=args.valid_fraction, latent_multiple_frames=multiple,
                         hop_length=mel.hop_length, caption_required=args.conditioning != "labels")
    try:
        rep = prepare_dataset(data, out / "data", pcfg, progress=None if args.no_progress else
                              (lambda it: stages.tqdm(it, desc="prepare", file=sys.stderr)))
    except PrepareError as e:
        raise SystemExit(f"error: {e}") from None
    rep = {k: v for k, v in rep.items() if k != "dropped"} | {"dropped": len(rep["dropped"])}
    if args.clip_seconds is not None:
        rep["clip_seconds_from_data"], rep["clip_seconds"] = rep["clip_seconds"], args.clip_seconds
    return rep


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    given = {"unet_steps": args.steps, "vae_steps": args.vae_steps, "judge_steps": args.judge_steps, "lr": args.lr,
             "batch": args.batch_size}
    preset = dataclasses.replace(stages.PRESETS[args.preset](), **{k: v for k, v in given.items() if v is not None})
    data = Path(args.data)
    mel = common.MEL_FOR_RATE[args.sample_rate]
    common.check_vocoder_arg(args.vocoder, mel)
    stages.read_label_words(args.label_words)  # a bad file or VAE override is refused before any work
    args.vae_config = dict(args.vae_config) if args.vae_config else None
    stages.vae_config(preset, mel, args.vae_config)
    if args.vae:  # a given VAE's mel settings must match --sample-rate
        theirs = MelVAE.from_pretrained(args.vae).config.mel
        if theirs != mel:
            raise SystemExit(f"error: --vae {args.vae} was trained with mel settings {theirs.to_dict()}, but "
                             f"--sample-rate {args.sample_rate} uses {mel.to_dict()}")
    info = init_distributed(args.device)

    # 0. the run folder: refused when it holds another run (other data, preset, rate, ...) unless --overwrite
    settings = {"data": str(data.resolve()), "data_fingerprint": common.data_fingerprint(data, exclude=args.out),
                "preset": args.preset, "sample_rate": args.sample_rate, "conditioning": args.conditioning,
                "text_encoder": args.text_encoder, "vae": args.vae, "group_by": args.group_by,
                "max_seconds": args.max_seconds,
                **{k: v for k, v in (("schedule", args.schedule if args.schedule != "cosine" else None),
                                     ("clip_seconds", args.clip_seconds), ("vae_config", args.vae_config),
                                     ("balance", args.balance or None))
                   if v is not None}}
    out = common.open_run(args.out, settings, args.resume, args.overwrite, info.is_main)
    common.barrier(info)

    def done(name, make, everyone=True):
        return common.run_stage(out, name, make, info, everyone)

    def stop_after(name) -> bool:
        return STAGES.index(name) >= STAGES.index(args.until)

    # 1. prepare
    prep = done("prepare", lambda: prepare_stage(args, data, out, preset), everyone=False)
    args.clip_seconds = prep["clip_seconds"]
    clips = read_manifest(out / "data" / "manifest.jsonl")
    train = [c for c in clips if c.labels.get("split") == "train"]
    valid = [c for c in clips if c.labels.get("split") == "valid"]
    if args.conditioning != "labels" and not any(c.caption for c in train):
        raise SystemExit(f"error: {data}: no captions in the training split; give captions or use --conditioning "
                         f"labels")
    # 2. VAE (or a given one)
    vae_dir = Path(args.vae) if args.vae else out / "vae" / "vae"
    if not args.vae:
        done("vae", lambda: stages.train_vae(args, preset, mel, train, valid, out / "vae"))
    # 3. U-Net; 4. the vocoder: --vocoder train trains the spectral vocoder on the training clips (on every rank,
    #    like the stages above); the others only name what step 5 packages
    ldm = vocoder_rec = None
    if not stop_after("vae"):
        ldm = done("ldm", lambda: stages.train_ldm(args, preset, vae_dir, train, valid, out / "ldm", info))
    if not stop_after("ldm"):
        vocoder_rec = done("vocoder", lambda: common.vocoder_for_model(
            args.vocoder, mel, train, valid, out / "vocoder", args.seed, args.device, not args.no_progress)[1])
        args.vocoder_folder = str(out / "vocoder" / "vocoder") if vocoder_rec.get("vocoder") == "trained spectral" \
            else "universal" if args.vocoder == "train" else args.vocoder
    if info.enabled:  # training is over: the other ranks leave, rank 0 packages, evaluates and exports alone
        torch.distributed.destroy_process_group()
    if not info.is_main:
        return
    if stop_after("vocoder"):
        print(json.dumps({"out": str(out), "until": args.until, "ldm": ldm}, indent=2))
        return

    # 5. the model folder, with what it was trained on
    name = data.name if data.is_dir() else data.parent.name
    model_info = {"name": args.name or name,
                  "data": {"name": name, "clips": prep["clips"], "hours": prep["hours"],
                           "licence": read_licence(data, args.licence), "sample_rate": args.sample_rate,
                           "clip_seconds": args.clip_seconds}, "recipe": f"audio_folder --preset {args.preset}"}
    done("package", lambda: stages.package(args, preset, vae_dir, out / "ldm", out / "model", model_info))
    if not stop_after("package"):
        import evaluate
        # 6. evaluation on held-out clips (report.json + report.md); 7. gallery: held-out captions, `audioldm export`
        done("evaluate", lambda: evaluate.run(args, preset, out, train, valid))
        if not stop_after("evaluate"):
            done("gallery", lambda: evaluate.gallery(args, preset, out, valid))
    print(json.dumps({"model": str(out / "model"), "report": str(out / "report.json"),
                      "gallery": str(out / "gallery"), "ldm": ldm}, indent=2))


if __name__ == "__main__":
    main()
