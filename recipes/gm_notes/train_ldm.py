"""python recipes/gm_notes/train_ldm.py --data data/gm_notes_demo/manifest.jsonl --vae runs/vae_demo/vae --conditioning labels --run-dir runs/ldm_demo

Train the conditional U-Net on cached VAE latents with the shared training loop. The cache (RUN_DIR/latents.safetensors)
is built once from the manifest's training split; training never runs the VAE. Conditioning: `labels` (the manifest's
instrument / pitch / velocity fields) or `text` (a learned word-level text encoder on the captions, trained jointly).
Saves RUN_DIR/unet and RUN_DIR/conditioner (EMA weights), the schedule to RUN_DIR/schedule.json and the clip length
and settings to RUN_DIR/training.json.
Multi-process: torchrun --nproc_per_node 2 recipes/gm_notes/train_ldm.py ... ; resume with --resume.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from audioldm.conditioning import (LabelConditioner, LabelConditionerConfig, TextConditioner, TextConditionerConfig,
                                   WordTokenizer, fields_from_labels)
from audioldm.config import config_to_dict, save_json_atomic
from audioldm.data import ClipDataset, load_clips, split_by_hash
from audioldm.data.latents import LatentDataset, build_latent_cache, collate_latents
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.training import TrainConfig, Trainer
from audioldm.training.ldm_stage import LDMStage
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vae import MelVAE
from audioldm.weights import save_component

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", required=True)
p.add_argument("--vae", required=True, help="trained VAE folder")
p.add_argument("--conditioning", default="labels", choices=["labels", "text"])
p.add_argument("--label-fields", nargs="+", default=["instrument", "pitch", "velocity"])
p.add_argument("--preset", default="demo", choices=sorted(UNET_PRESETS))
p.add_argument("--run-dir", required=True)
p.add_argument("--clip-seconds", type=float, default=2.08,
               help="clip length (the demo grid's whole note, 2.08 s); latent frames (seconds * 100 / 4) must divide "
                    "by the U-Net's 2^(levels - 1); written to RUN_DIR/training.json, package.py's default duration")
p.add_argument("--steps", type=int, default=4000)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--warmup", type=int, default=200)
p.add_argument("--prediction", default="v", choices=["eps", "v"])
p.add_argument("--schedule", default="scaled_linear", choices=["linear", "scaled_linear", "cosine"])
p.add_argument("--zero-terminal-snr", action="store_true")
p.add_argument("--min-snr-gamma", type=float, default=5.0)
p.add_argument("--drop-prob", type=float, default=0.1, help="condition dropout for classifier-free guidance")
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--ckpt-every", type=int, default=500)
p.add_argument("--log-every", type=int, default=50)
p.add_argument("--workers", type=int, default=0)
p.add_argument("--device", default="auto")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--resume", action="store_true")
p.add_argument("--no-progress", action="store_true")
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
torch.manual_seed(args.seed)
run = Path(args.run_dir)

# 1. the latent cache (training split only), built once
vae = MelVAE.from_pretrained(args.vae)
clips = load_clips(args.data)
train_clips, _ = split_by_hash(clips, args.valid_fraction)
cache = run / "latents.safetensors"
if not cache.exists():
    ds = ClipDataset(train_clips, vae.config.mel, args.clip_seconds)
    bar = None if args.no_progress else (lambda it: tqdm(it, desc="encode latents", file=sys.stderr))
    build_latent_cache(vae, ds, cache, progress=bar)
latents = LatentDataset(cache, seed=args.seed)

# 2. the conditioner: label fields from the manifest (categorical strings, numeric ranges), or learned text
if args.conditioning == "labels":
    try:
        fields = fields_from_labels([c.labels for c in train_clips], args.label_fields)
    except ValueError as e:
        sys.exit(f"error: {args.data}: {e}")
    conditioner = LabelConditioner(LabelConditionerConfig(fields=fields, dim=128, pooled_dim=128))
else:
    vocab = WordTokenizer.from_texts(c for cl in train_clips for c in (cl.captions or [cl.caption or ""])).vocab
    conditioner = TextConditioner(TextConditionerConfig(vocab=vocab, dim=128, pooled_dim=128, tokens=True))

# 3. U-Net + schedule, trained on the shared loop
unet_kw = {"in_channels": vae.config.z_channels, "out_channels": vae.config.z_channels,
           "cond_dim": conditioner.pooled_dim}
if conditioner.token_dim:
    unet_kw["context_dim"] = conditioner.token_dim
unet = UNet(UNET_PRESETS[args.preset](**unet_kw))
schedule = NoiseSchedule(ScheduleConfig(kind=args.schedule, prediction=args.prediction,
                                        zero_terminal_snr=args.zero_terminal_snr, min_snr_gamma=args.min_snr_gamma))
stage = LDMStage(LatentDiffusion(unet, schedule), conditioner, latents.scale_factor,
                 "labels" if args.conditioning == "labels" else "caption", args.drop_prob)
cfg = TrainConfig(run_dir=str(run), max_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  warmup_steps=args.warmup, ema_decay=args.ema, ckpt_every=args.ckpt_every, eval_every=0,
                  log_every=args.log_every, seed=args.seed, num_workers=args.workers, device=args.device,
                  resume=args.resume, progress=not args.no_progress)
trainer = Trainer(cfg, stage, latents, collate_latents)
t0 = time.time()
trainer.fit()

if trainer.info.is_main:
    ema = trainer.ema
    ema.get("unet", unet).save_pretrained(run / "unet", overwrite=True)
    cond = ema.get("conditioner", conditioner)
    kind = "label_conditioner" if args.conditioning == "labels" else "text_conditioner"
    save_component(run / "conditioner", cond, cond.config, kind, overwrite=True)
    save_json_atomic(run / "schedule.json", config_to_dict(schedule.config))
    save_json_atomic(run / "training.json", {"clip_seconds": args.clip_seconds, "steps": trainer.step,
                                             "batch_size": args.batch_size, "lr": args.lr, "data": args.data,
                                             "conditioning": args.conditioning})
    print(json.dumps({"run_dir": str(run), "steps": trainer.step, "train_minutes": round((time.time() - t0) / 60, 2),
                      "latents": list(latents.mean.shape), "conditioning": args.conditioning,
                      "unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2)}, indent=2))
