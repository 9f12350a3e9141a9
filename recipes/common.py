"""Pieces shared by the recipes: the common flags (defined once here), the run-folder guard (a folder made from other
data or another preset is refused unless --overwrite), and per-stage completion markers that --resume skips.

Recipes import it after putting recipes/ on sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); import common
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from audioldm.files import save_json_atomic

RUN_FILE = "run.json"


def _mel_for_rate() -> dict:
    from audioldm.mel import MEL_PRESETS
    return {16000: MEL_PRESETS["audioldm-16k"](), 44100: MEL_PRESETS["bigvgan-44k"](),
            48000: MEL_PRESETS["audioldm-48k"]()}


MEL_FOR_RATE = _mel_for_rate()  # --sample-rate -> the mel settings of every recipe (16 kHz: AudioLDM's)


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (``--steps 0`` is an error, not "the preset's")."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``--lr 0`` is an error, not "the preset's")."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return v


def pick(given, default):
    """A flag's value, or the preset's when the flag was not given (``None``); 0 never reaches here (positive_*)."""
    return default if given is None else given


def add_common_args(p: argparse.ArgumentParser, presets, conditioning=("text", "labels"),
                    default_conditioning: str = "text", several_data: bool = False) -> None:
    """--data --out --preset --steps --resume --overwrite --conditioning (none when ``conditioning`` is empty);
    ``several_data``: --data may be given several times (a list)."""
    p.add_argument("--data", required=True, action="append" if several_data else "store",
                   help="a folder of audio files, or a CSV / JSONL manifest" + (" (repeatable)" if several_data else ""))
    p.add_argument("--out", required=True, help="the run folder: stages, OUT/model, OUT/report.json, OUT/gallery")
    p.add_argument("--preset", default=sorted(presets)[0], choices=sorted(presets))
    p.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the preset's)")
    p.add_argument("--resume", action="store_true", help="continue a run: finished stages are skipped")
    p.add_argument("--overwrite", action="store_true", help="discard a run folder made from other data or settings")
    if conditioning:
        p.add_argument("--conditioning", default=default_conditioning, choices=list(conditioning))
    g = p.add_argument_group("U-Net training: parallelism and memory (bench/finetune.py measures each)")
    g.add_argument("--parallel", default="ddp", choices=["ddp", "fsdp"],
                   help="under torchrun: DistributedDataParallel (default) or FSDP2 sharding for large U-Nets")
    g.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute the U-Net's (and the VAE stage's) activations in backward: less memory, slower")
    g.add_argument("--bf16-weights", action="store_true",
                   help="train the U-Net's weights, gradients and optimizer state in bfloat16 (GPU memory lever)")


def train_plan(steps: int) -> dict:
    """The one schedule policy of every recipe's training (VAE, U-Net, student, vocoder), as TrainConfig keyword
    arguments for a run of ``steps`` steps: warmup over a tenth of the run (at most 200 steps), a checkpoint every
    quarter of it (at least every 10 and at most every 500 steps), and an EMA of decay 0.999 from 1000 steps, else
    0.99 (the trainer ramps the decay up over the first steps, so a short run's EMA is not its initial weights);
    metrics logged about 40 times a run (every step up to 80 steps, at most every 50)."""
    return {"max_steps": steps, "warmup_steps": min(200, steps // 10), "ckpt_every": max(10, min(500, steps // 4)),
            "ema_decay": 0.999 if steps >= 1000 else 0.99, "log_every": max(1, min(50, steps // 40))}


def fit_unet(stage, unet, dataset, collate, run_dir: Path, steps: int, batch_size: int, lr: float, eval_every: int,
             args):
    """The one U-Net fitting function (recipes audio_folder, finetune and distill): ``stage`` (an LDMStage or a
    DistillStage around ``unet``) on ``dataset`` with the shared trainer, :func:`train_plan`, and the seed, device,
    progress and parallelism / memory flags of ``args`` (:func:`add_common_args`). Checkpoints go to ``run_dir``
    and a run resumes from them. Returns the trainer: ``trainer.ema`` holds the weights to save (rank 0)."""
    from audioldm.training import TrainConfig, Trainer

    tc = TrainConfig(run_dir=str(run_dir), batch_size=batch_size, lr=lr, eval_every=eval_every, seed=args.seed,
                     device=args.device, resume=(Path(run_dir) / "checkpoints").is_dir(),
                     progress=not args.no_progress, **train_plan(steps), **train_levers(args))
    unet.config.gradient_checkpointing = args.gradient_checkpointing
    trainer = Trainer(tc, stage, dataset, collate)
    try:
        trainer.fit()
    finally:
        unet.config.gradient_checkpointing = False  # a training setting: not saved as the model's
    return trainer


def train_levers(args) -> dict:
    """TrainConfig keyword arguments from the parallelism / memory flags of :func:`add_common_args`."""
    return {"parallel": args.parallel, "weights_dtype": "bfloat16" if args.bf16_weights else "float32"}


def data_fingerprint(data: str | Path, exclude: str | Path | None = None) -> str:
    """SHA-1 over the names, sizes and modification times of DATA's files (a folder), or of the manifest file and
    the files next to it: changes when the data changes, without reading every byte. ``exclude`` (the run folder,
    should it lie inside DATA) is left out."""
    data = Path(data)
    h = hashlib.sha1()
    root = data if data.is_dir() else data.parent
    skip = Path(exclude).resolve() if exclude else None
    if data.is_file():
        h.update(data.read_bytes())
    for dirpath, dirnames, files in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if skip is None or (Path(dirpath) / d).resolve() != skip)
        for f in sorted(files):
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{os.fsencode(p.relative_to(root))!r}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def open_run(out: str | Path, settings: dict, resume: bool, overwrite: bool, is_main: bool = True) -> Path:
    """Make or reopen the run folder ``out`` for ``settings`` (data fingerprint, preset, ...: what defines a run).

    New or empty folder: start. A folder of this recipe with the same settings: needs --resume, which keeps all of it
    (finished stages and partial work, such as a stage's checkpoints or chunks), or --overwrite to start over. Other
    settings: refused unless --overwrite, which empties it. A non-empty folder that is not a run folder is always
    refused (nothing of the user's is deleted)."""
    out = Path(out)
    marker = out / RUN_FILE
    if is_main:
        if out.exists() and not out.is_dir():
            raise SystemExit(f"error: --out {out} exists and is not a folder")
        if out.is_dir() and any(out.iterdir()):
            if not marker.is_file():
                raise SystemExit(f"error: --out {out} is not empty and is not a run folder of this recipe; choose "
                                 f"a new or empty folder")
            old = json.loads(marker.read_text(encoding="utf-8"))
            differs = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            holds = [p for p in out.iterdir() if p.name != RUN_FILE]  # work done so far, finished or not
            if overwrite or (not holds and differs):
                shutil.rmtree(out)
            elif differs:
                detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differs.items())
                raise SystemExit(f"error: {out} holds a run made with other settings ({detail}); pass --overwrite "
                                 f"to discard it, or choose another --out")
            elif not resume and holds:
                raise SystemExit(f"error: {out} already holds this run; pass --resume to continue it (finished "
                                 f"stages are skipped, nothing is deleted) or --overwrite to start over")
        out.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            save_json_atomic(marker, settings)
    return out


def stage_done(out: Path, name: str) -> dict | None:
    """The record of a finished stage, or None."""
    p = Path(out) / "stages" / f"{name}.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def barrier(info) -> None:
    """Wait for every rank (``info``: audioldm.training.distributed.DistInfo); a no-op in one process."""
    if info.enabled:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.barrier()


def run_stage(out: Path, name: str, make, info, everyone: bool = True):
    """Run stage ``name`` (``make() -> record``, on every rank or on rank 0 only) unless its finished record exists
    (--resume skips it); rank 0 marks it done. Returns the record, on every rank."""
    rec = stage_done(out, name)
    if rec is not None and info.is_main:
        print(f"[{name}] finished earlier; skipped", file=sys.stderr)
    if rec is None and (everyone or info.is_main):
        rec = make()
        if info.is_main:
            mark_done(out, name, rec)
            print(f"[{name}] {json.dumps(rec)}", file=sys.stderr)
    barrier(info)
    return stage_done(out, name)


def mark_done(out: Path, name: str, record: dict) -> dict:
    (Path(out) / "stages").mkdir(parents=True, exist_ok=True)
    save_json_atomic(Path(out) / "stages" / f"{name}.json", record)
    return record


def clip_request(kind: str, fields: list[str]):
    """clip -> (key, request): what generating "a held-out clip's condition" asks a model of ``kind`` ("text",
    "labels" or "both"), and a key that is equal for equal requests."""
    def req(c):
        labels = {k: v for k, v in c.labels.items() if k in fields}
        r = {"text": {"prompt": c.caption}, "labels": {"labels": labels},
             "both": {"prompt": c.caption, "labels": labels}}[kind]
        return json.dumps(r, sort_keys=True), r
    return req


def heldout_requests(valid, kind: str, fields: list[str], n: int) -> list[dict]:
    """Up to ``n`` distinct requests of held-out clips (with a caption, unless label-only), evenly spaced over their
    sorted keys so they are not all one kind of sound."""
    req = clip_request(kind, fields)
    rows = dict(req(c) for c in valid if kind == "labels" or c.caption)
    keys = sorted(rows)
    return [rows[keys[round(i * (len(keys) - 1) / max(1, n - 1))]] for i in range(min(n, len(keys)))]


# ---- the vocoder stage shared by the recipes -----------------------------------------------------------------------
VOCODER_MIN_CLIPS = 32  # --vocoder train with fewer training clips keeps the universal vocoder (and says so)


def add_vocoder_arg(p: argparse.ArgumentParser, keep: bool = False) -> None:
    """--vocoder; ``keep`` (the fine-tune recipe): 'keep', the base model's own vocoder, is the default, because
    the universal slot is Griffin-Lim today and a base model may bring a trained vocoder (AudioLDM's HiFi-GAN)."""
    p.add_argument("--vocoder", default="keep" if keep else "universal",
                   help=("'keep' (default: the base model's own vocoder), " if keep else "")
                   + "'universal' (" + ("" if keep else "default: ") + "the shipped 16 kHz vocoder slot, "
                   "audioldm/pretrained/vocoder-16k; at other rates Griffin-Lim), 'griffinlim', a trained vocoder "
                   f"FOLDER, or 'train' (the spectral vocoder trained on the training clips; needs at least "
                   f"{VOCODER_MIN_CLIPS})")


def check_vocoder_arg(spec: str, mel) -> None:
    """Refuse a --vocoder value that cannot serve ``mel`` (a MelConfig) before any work is spent."""
    if spec in ("universal", "griffinlim", "train"):
        return
    from audioldm.vocoders import load_vocoder
    try:
        theirs = load_vocoder(spec).mel_config
    except Exception as e:  # noqa: BLE001 - any unreadable folder is the user's input error
        raise SystemExit(f"error: --vocoder {spec}: {e}") from None
    if theirs != mel:
        raise SystemExit(f"error: --vocoder {spec} was trained with mel settings {theirs.to_dict()}, but this model "
                         f"uses {mel.to_dict()}")


def fit_vocoder(train, valid, mel, run_dir: Path, steps: int, batch_size: int, segment_seconds: float, lr: float,
                init=None, preset: str = "base", mel_input=None, mel_input_fraction: float = 0.5, seed: int = 0,
                device: str = "auto", progress: bool = True, levers: dict | None = None,
                save_to: Path | None = None) -> dict:
    """The one vocoder fitting function (recipes/vocoder, and --vocoder train of audio_folder / finetune): the
    spectral vocoder (``init``, a loaded one to fine-tune, or a fresh ``preset``) on random ``segment_seconds``
    segments of ``train`` clips, checkpointed in ``run_dir`` (resumes from there), EMA weights saved to ``save_to``
    (default ``run_dir/vocoder``; by rank 0). Returns the training record."""
    import dataclasses
    import time

    from audioldm.data import ClipDataset, collate_clips
    from audioldm.training import TrainConfig, Trainer
    from audioldm.training.vocoder_stage import VocoderLossConfig, VocoderStage
    from audioldm.vocoders import SPECTRAL_PRESETS, SpectralVocoder

    vocoder = init if init is not None else SpectralVocoder(dataclasses.replace(SPECTRAL_PRESETS[preset](), mel=mel))
    train_ds = ClipDataset(train, mel, segment_seconds, random_crop=True, seed=seed)
    valid_ds = ClipDataset(valid or train[:8], mel, 2.0)
    run_dir = Path(run_dir)
    tc = TrainConfig(run_dir=str(run_dir), batch_size=batch_size, lr=lr, eval_every=0, seed=seed, device=device,
                     resume=(run_dir / "checkpoints").is_dir(), progress=progress, **train_plan(steps),
                     **(levers or {}))
    stage = VocoderStage(vocoder, VocoderLossConfig(disc_start=-1), valid_ds, eval_items=16, mel_input=mel_input,
                         mel_input_fraction=mel_input_fraction)
    trainer = Trainer(tc, stage, train_ds, collate_clips)
    t0 = time.time()
    trainer.fit()
    if trainer.info.is_main:
        trainer.ema.get("vocoder", vocoder).save_pretrained(save_to or run_dir / "vocoder", overwrite=True)
    return {"steps": trainer.step, "minutes": round((time.time() - t0) / 60, 2), "train_clips": len(train)}


def vocoder_for_model(spec: str, mel, train=None, valid=None, run_dir: Path | None = None, seed: int = 0,
                      device: str = "auto", progress: bool = True) -> tuple[object, dict]:
    """The vocoder a recipe packages with its model, from --vocoder ``spec``; returns (vocoder, record).
    'train' trains the spectral vocoder on ``train`` clips into ``run_dir`` (600 steps at lr 1e-3; it starts from
    the peak fit with phase-gradient phase, its learned correction from zero), unless there are fewer than
    VOCODER_MIN_CLIPS, when the universal one is kept and the record says why."""
    from audioldm.vocoders import GriffinLimVocoder, load_vocoder, universal_vocoder
    from audioldm.vocoders.griffinlim import GriffinLimConfig

    if spec == "griffinlim":
        return GriffinLimVocoder(GriffinLimConfig(mel=mel)), {"vocoder": "griffinlim"}
    if spec not in ("universal", "train"):
        return load_vocoder(spec), {"vocoder": str(spec)}
    if spec == "train" and len(train or []) < VOCODER_MIN_CLIPS:
        why = (f"--vocoder train: {len(train or [])} training clips, fewer than the {VOCODER_MIN_CLIPS} needed to "
               f"train a vocoder; keeping the universal one")
        print(f"note: {why}", file=sys.stderr)
        return vocoder_for_model("universal", mel)[0], {"vocoder": "universal", "why": why}
    if spec == "universal":
        universal = universal_vocoder()
        if universal.mel_config == mel:
            return universal, {"vocoder": "universal"}
        print(f"note: the universal vocoder is for {universal.mel_config.sample_rate} Hz mels; this model uses "
              f"{mel.sample_rate} Hz, so it gets Griffin-Lim (or pass a trained --vocoder FOLDER)", file=sys.stderr)
        return GriffinLimVocoder(GriffinLimConfig(mel=mel)), {"vocoder": "griffinlim",
                                                              "why": f"no universal vocoder for {mel.sample_rate} Hz"}
    rec = fit_vocoder(train, valid, mel, Path(run_dir), steps=600, batch_size=16, segment_seconds=0.64, lr=1e-3,
                      seed=seed, device=device, progress=progress)
    return load_vocoder(Path(run_dir) / "vocoder"), {"vocoder": "trained spectral", **rec}
