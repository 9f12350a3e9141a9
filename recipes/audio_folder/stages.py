"""The stages of recipes/audio_folder/run.py, one function each: VAE, U-Net (with validation loss, best checkpoint and
sample previews), packaging, evaluation and the gallery. Presets are here too. Each stage builds library objects
from the preset; run.py decides which stages run."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from audioldm.conditioning.io import load_conditioner, save_conditioner
from audioldm.conditioning import (LabelConditioner, LabelConditionerConfig, TextConditioner, TextConditionerConfig,
                                   WordTokenizer, fields_from_labels)
from audioldm.conditioning.joint import JointConditioner
from audioldm.config import config_to_dict, load_config, save_json_atomic
from audioldm.data import ClipDataset, collate_clips
from audioldm.data.balance import BalancedView, balanced_indices
from audioldm.data.latents import LatentDataset, build_latent_cache, cache_is_current, cache_key, collate_latents
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.mel import MelConfig
from audioldm.pipeline import AudioLDM, GenerationDefaults
from audioldm.pretrained import UNIVERSAL_VOCODER
from audioldm.training import TrainConfig, Trainer
from audioldm.training.cached_conditions import CachedConditioner
from audioldm.training.ldm_stage import LDMStage
from audioldm.training.vae_stage import VAELossConfig, VAEStage, evaluate_vae, latent_scale_factor
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vae import VAE_PRESETS, MelVAE, VAEConfig
from audioldm.vocoders import GriffinLimVocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper
import common  # noqa: E402


@dataclass(frozen=True)
class Preset:
    vae: str = "tiny"
    vae_steps: int = 150
    vae_batch: int = 8
    vae_crop: float = 0.64
    vae_lr: float = 1e-3
    unet: str = "tiny"
    unet_steps: int = 300
    batch: int = 16
    lr: float = 1e-3
    eval_every: int = 100  # validation loss, best checkpoint and sample previews
    previews: int = 2  # held-out captions previewed at each evaluation
    text_dim: int = 64
    judge_steps: int = 200
    per_condition: int = 2
    max_conditions: int = 8
    max_heldout: int = 64  # held-out real clips in the decomposition rows
    gallery_captions: int = 4
    guidance: float = 3.0  # the packaged model's default classifier-free guidance (docs/results.md: the trade-off measured)


def tiny() -> Preset:
    """"Does my data work": minutes on 2 CPU cores for ~500 clips; not a quality setting."""
    return Preset(batch=8)


def small() -> Preset:
    """The CPU preset: a 0.7M-parameter VAE and a 4.3M-parameter U-Net, about an hour on 2 CPU cores."""
    return Preset(vae="demo", vae_steps=1200, vae_batch=16, unet="demo", unet_steps=3500, batch=16, lr=1e-3,
                  eval_every=500, previews=4, text_dim=128, judge_steps=600, per_condition=4, max_conditions=32,
                  max_heldout=400, gallery_captions=8, guidance=1.5)


def base() -> Preset:
    """For one GPU or more: AudioLDM-S's VAE and U-Net (audioldm-s presets), bf16 autocast on CUDA (the trainer's
    default), and the batch, learning rate and steps of AudioLDM's own U-Net training (AudioLDM-training-finetuning,
    audioldm_original.yaml: batch 2 per GPU, lr 1e-4, 800k steps). Its GPU wall time is not measured yet."""
    return Preset(vae="audioldm-s", vae_steps=100_000, vae_batch=4, vae_lr=1e-4, unet="audioldm-s",
                  unet_steps=800_000, batch=2, lr=1e-4, eval_every=5000, previews=4, text_dim=512, judge_steps=2000,
                  per_condition=4, max_conditions=64, max_heldout=1000, gallery_captions=8, guidance=3.5)


PRESETS = {"tiny": tiny, "small": small, "base": base}  # name -> factory: each call builds a fresh Preset

# full-band settings: hop and FFT size as BigVGAN's 44.1 kHz models use them (128 bands), and the 48 kHz preset
MEL_FOR_RATE = common.MEL_FOR_RATE
NOT_LABELS = ("source", "group", "split", "duration", "slice")


def _progress(args):
    return None if args.no_progress else (lambda it: tqdm(it, desc="encode latents", file=sys.stderr))


def vae_config(preset: Preset, mel: MelConfig, overrides: dict | None = None) -> VAEConfig:
    """The preset's VAE config for ``mel``, with ``overrides`` (--vae-config: field -> value) applied; a field the
    config does not have, or a combination it refuses, is a SystemExit naming it."""
    cfg = VAE_PRESETS[preset.vae]()
    unknown = sorted(set(overrides or {}) - {f.name for f in dataclasses.fields(cfg)})
    if unknown:
        raise SystemExit(f"error: --vae-config: VAEConfig has no field {', '.join(unknown)}")
    try:
        return dataclasses.replace(cfg, mel=mel, **(overrides or {}))
    except (TypeError, ValueError) as e:
        raise SystemExit(f"error: --vae-config {overrides}: {e}") from None


def train_vae(args, preset: Preset, mel: MelConfig, train, valid, run: Path) -> dict:
    cfg = vae_config(preset, mel, args.vae_config)
    vae = MelVAE(cfg)
    train_ds = ClipDataset(train, mel, preset.vae_crop, random_crop=True, seed=args.seed)
    valid_ds = ClipDataset(valid or train[:8], mel, args.clip_seconds)
    tc = TrainConfig(run_dir=str(run), batch_size=preset.vae_batch, lr=preset.vae_lr, eval_every=0, seed=args.seed,
                     device=args.device, resume=(run / "checkpoints").is_dir(), progress=not args.no_progress,
                     **common.train_plan(preset.vae_steps))
    cfg.gradient_checkpointing = args.gradient_checkpointing
    trainer = Trainer(tc, VAEStage(vae, VAELossConfig(), valid_ds), train_ds, collate_clips)
    t0 = time.time()
    try:
        trainer.fit()
    finally:
        cfg.gradient_checkpointing = False
    rec = {}
    if trainer.info.is_main:
        final = trainer.ema.get("vae", vae)
        final.config.scale_factor = latent_scale_factor(final, train_ds, trainer.device)
        final.save_pretrained(run / "vae", overwrite=True)
        l1, _, _ = evaluate_vae(final, valid_ds, trainer.device)
        rec = {"steps": trainer.step, "minutes": round((time.time() - t0) / 60, 2), "valid_logmel_l1": round(l1, 4)}
    return rec


def read_label_words(path) -> dict:
    """--label-words FILE: ``{field: {"note_names": true, "aliases": {word: value}}}``, the prompt words a label
    model reads for its fields (e.g. C4 for pitch 60, "loud" for velocity 120). Refused, naming the file, unless it
    is a JSON object of such objects."""
    if path is None:
        return {}
    try:
        words = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --label-words {path}: {e}") from None
    ok = isinstance(words, dict) and all(isinstance(v, dict) and set(v) <= {"note_names", "aliases"}
                                         and isinstance(v.get("aliases", {}), dict) for v in words.values())
    if not ok:
        raise SystemExit(f'error: --label-words {path}: expected {{"FIELD": {{"note_names": true, "aliases": '
                         f'{{"WORD": VALUE}}}}}}')
    return words


def _apply_label_words(fields, words: dict, path) -> None:
    by_name = {f.name: f for f in fields}
    for name, w in words.items():
        if name not in by_name:
            raise SystemExit(f"error: --label-words {path}: {name!r} is not a label field ({sorted(by_name)})")
        f = by_name[name]
        f.note_names = bool(w.get("note_names", False)) and f.kind == "numeric"
        # a field keeps the words whose value it can take (a subset of the data may not span them all)
        f.aliases = {k: v for k, v in w.get("aliases", {}).items()
                     if (str(v) in f.values if f.kind == "categorical" else f.low <= float(v) <= f.high)}


def _label_conditioner(args, preset: Preset, train, dim: int, joint: bool) -> LabelConditioner:
    names = args.label_fields or sorted({k for c in train for k in c.labels if k not in NOT_LABELS})
    if not names:
        raise SystemExit(f"error: --conditioning {args.conditioning}, but the data has no label columns")
    try:
        fields = fields_from_labels([c.labels for c in train], names)
    except ValueError as e:
        raise SystemExit(f"error: {args.data}: {e}") from None
    _apply_label_words(fields, read_label_words(args.label_words), args.label_words)
    # alone it parses prompts into labels; beside a text encoder the prompt goes to the text and labels stay labels
    return LabelConditioner(LabelConditionerConfig(fields=fields, dim=dim, pooled_dim=preset.text_dim,
                                                   tokens=joint, parse_prompts=not joint))


def build_conditioner(args, preset: Preset, train) -> tuple[torch.nn.Module, str]:
    """(conditioner, the batch key it reads: "caption", "labels" or "both")."""
    if args.conditioning == "labels":
        return _label_conditioner(args, preset, train, preset.text_dim, joint=False), "labels"
    if args.text_encoder:
        from audioldm.conditioning.pretrained import PretrainedTextConditioner, PretrainedTextConfig
        text = PretrainedTextConditioner(PretrainedTextConfig(source=str(args.text_encoder), tokens=True))
    else:
        texts = [t for c in train for t in (c.captions or [c.caption or ""])]
        text = TextConditioner(TextConditionerConfig(vocab=WordTokenizer.from_texts(texts).vocab, dim=preset.text_dim,
                                                     pooled_dim=preset.text_dim, heads=max(1, preset.text_dim // 32)))
    if args.conditioning == "text":
        return text, "caption"
    return JointConditioner(text, _label_conditioner(args, preset, train, text.token_dim, joint=True)), "both"


def _pipeline(vae, unet, schedule, cond, vocoder, seconds, name="preview") -> AudioLDM:
    return AudioLDM(vae, unet, schedule, cond, vocoder, GenerationDefaults(seconds, 25, 3.0, "dpmpp_2m"), name=name)


SCHEDULES = {  # --schedule: the noise schedule of a new U-Net (v-prediction, min-SNR-5 loss weighting)
    "cosine": ScheduleConfig(kind="cosine", prediction="v", min_snr_gamma=5.0),
    "scaled_linear": ScheduleConfig(kind="scaled_linear", prediction="v", min_snr_gamma=5.0),  # AudioLDM's betas
    "linear": ScheduleConfig(kind="linear", prediction="v", min_snr_gamma=5.0),
}


def train_ldm(args, preset: Preset, vae_dir: Path, train, valid, run: Path, info) -> dict:
    """The U-Net stage (every rank; ``info``: DistInfo): latents cached once by rank 0, then :func:`common.fit_unet`
    with validation, best checkpoint and previews. Saves RUN/unet, RUN/conditioner and RUN/schedule.json."""
    from audioldm.export import save_spectrogram
    from audioldm.audio import save_audio

    vae = MelVAE.from_pretrained(vae_dir)
    mel = vae.config.mel
    for split, clips in (("train", train), ("valid", valid)):
        cache = run / f"latents_{split}.safetensors"
        ds = ClipDataset(clips, mel, args.clip_seconds) if clips else None
        if ds is not None and info.is_main and not cache_is_current(cache, cache_key(vae, ds)):
            if cache.exists():
                print(f"[ldm] {cache.name} was made from another VAE, clip length or clips: rebuilt", file=sys.stderr)
            build_latent_cache(vae, ds, cache, progress=_progress(args))
            print(f"[ldm] latent cache {cache.name}: {len(ds)} clips", file=sys.stderr)
    common.barrier(info)
    device = info.device
    latents = LatentDataset(run / "latents_train.safetensors", seed=args.seed)
    if getattr(args, "balance", False):  # equal shares per category, and per source file within a category
        cats = [(r["labels"].get(args.category) if args.category else r["caption"]) for r in latents.rows]
        srcs = [r["labels"].get("source", r["path"]) for r in latents.rows]
        latents = BalancedView(latents, balanced_indices(cats, srcs, seed=args.seed))
    valid_lat = LatentDataset(run / "latents_valid.safetensors", random_caption=False) if valid else None
    conditioner, key = build_conditioner(args, preset, train)
    kw = {"in_channels": vae.config.z_channels, "out_channels": vae.config.z_channels,
          "cond_dim": conditioner.pooled_dim}
    if conditioner.token_dim:
        kw["context_dim"] = conditioner.token_dim
    unet = UNet(UNET_PRESETS[preset.unet](**kw))
    schedule = NoiseSchedule(dataclasses.replace(SCHEDULES[args.schedule]))
    if info.is_main:
        save_json_atomic(run / "schedule.json", config_to_dict(schedule.config))
    best_file = run / "best" / "best.json"
    best = json.loads(best_file.read_text())["valid_loss"] if best_file.is_file() else float("inf")

    def on_valid(step, loss, u, c):  # keep the best EMA weights by held-out loss
        nonlocal best
        if loss < best:
            best = loss
            u.save_pretrained(run / "best" / "unet", overwrite=True)
            save_conditioner(run / "best" / "conditioner", getattr(c, "inner", c), overwrite=True)
            save_json_atomic(best_file, {"step": step, "valid_loss": loss})

    kind = {"caption": "text", "labels": "labels", "both": "both"}[key]
    fields = [f.name for f in conditioner.config.fields] if kind != "text" else []
    reqs = common.heldout_requests(valid, kind, fields, preset.previews) if kind != "labels" else []
    gl = GriffinLimVocoder(GriffinLimConfig(mel=mel, n_iter=32))

    def preview(step, u, c):  # a few held-out captions, written to RUN/samples/step_N and TensorBoard
        if not reqs:
            return {}
        res = _pipeline(vae, u, schedule, getattr(c, "inner", c), gl, args.clip_seconds).generate(
            [r["prompt"] for r in reqs], labels=[r["labels"] for r in reqs] if kind == "both" else None, steps=10,
            seed=0, progress=False)
        folder = run / "samples" / f"step_{step:06d}"
        audio, images = {}, {}
        for i, (r, wav, m) in enumerate(zip(reqs, res.audio, res.mels.numpy())):
            cap = r["prompt"] + "".join(f" {k}={v}" for k, v in (r.get("labels") or {}).items())
            stem = f"{i}_" + re.sub(r"[^A-Za-z0-9]+", "_", cap)[:40]
            save_audio(folder / f"{stem}.wav", wav, mel.sample_rate, overwrite=True)
            save_spectrogram(folder / f"{stem}.png", m, mel.sample_rate, mel.hop_length, cap)
            audio[f"sample/{stem}"], images[f"sample_mel/{stem}"] = torch.from_numpy(wav), torch.from_numpy(m)
        return {"audio": audio, "images": images, "sample_rate": mel.sample_rate}

    if not any(q.requires_grad for q in conditioner.parameters()):  # a frozen encoder: once per caption, not per step
        texts = sorted({t for c in train for t in (c.captions or [c.caption]) if t})
        conditioner = CachedConditioner(conditioner, texts, device=device)
    stage = LDMStage(LatentDiffusion(unet, schedule), conditioner, latents.scale_factor, key, 0.1,
                     valid=valid_lat, on_valid=on_valid, preview=preview)
    t0 = time.time()
    trainer = common.fit_unet(stage, unet, latents, collate_latents, run, preset.unet_steps, preset.batch, preset.lr,
                              preset.eval_every, args)  # evaluates every eval_every steps and once at the end
    rec = {}
    if trainer.info.is_main:
        trainer.ema.get("unet", unet).save_pretrained(run / "unet", overwrite=True)
        final = trainer.ema.get("conditioner", conditioner)
        save_conditioner(run / "conditioner", getattr(final, "inner", final), overwrite=True)
        rec = {"steps": trainer.step, "minutes": round((time.time() - t0) / 60, 2), "conditioning": key,
               "best": json.loads(best_file.read_text()) if best_file.is_file() else None,
               "unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2)}
    return rec


def package(args, preset: Preset, vae_dir: Path, ldm: Path, out: Path, info: dict) -> dict:
    src = ldm / "best" if (ldm / "best" / "unet").is_dir() else ldm
    vae = MelVAE.from_pretrained(vae_dir)
    vocoder, rec = common.vocoder_for_model(args.vocoder_folder, vae.config.mel)
    universal = rec["vocoder"] == "universal"  # named ("shipped:..."), not copied
    guidance = preset.guidance if args.guidance is None else args.guidance
    pipe = AudioLDM(vae, UNet.from_pretrained(src / "unet"), NoiseSchedule(load_config(ScheduleConfig,
                    ldm / "schedule.json")), load_conditioner(src / "conditioner"), vocoder,
                    GenerationDefaults(args.clip_seconds, 25, guidance, "dpmpp_2m"), name=info["name"], info=info)
    pipe.save_pretrained(out, overwrite=True, dtype=torch.float16 if args.fp16 else None,
                         vocoder_ref=f"shipped:{UNIVERSAL_VOCODER}" if universal else None)
    return {"model": str(out), "from": src.name, "size_MB": round(sum(f.stat().st_size for f in out.rglob("*")
                                                                        if f.is_file()) / 2 ** 20, 2)}
