"""python recipes/gm_notes/train_vae.py --data data/gm_notes_demo/manifest.jsonl --preset demo --run-dir runs/vae_demo

Train the mel VAE on a manifest (or audio folder) with the shared training loop, then: load the EMA weights, compute
the latent scale factor, save the model folder to RUN_DIR/vae, report the valid log-mel L1 (posterior mean) and write
a few Griffin-Lim-decoded examples (original and reconstruction) to RUN_DIR/examples.
Multi-process: torchrun --nproc_per_node 2 recipes/gm_notes/train_vae.py ... ; resume with --resume.
"""

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from audioldm.audio import save_audio
from audioldm.data import ClipDataset, collate_clips, load_clips, split_by_hash
from audioldm.mel import griffin_lim
from audioldm.training import TrainConfig, Trainer
from audioldm.training.vae_stage import VAELossConfig, VAEStage, evaluate_vae, latent_scale_factor
from audioldm.vae import VAE_PRESETS, MelVAE

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", required=True, help="manifest (.jsonl/.csv) or audio folder")
p.add_argument("--preset", default="demo", choices=sorted(VAE_PRESETS))
p.add_argument("--ch", type=int, default=None, help="override the preset's base channels")
p.add_argument("--ch-mult", type=int, nargs="+", default=None, help="override the preset's channel multipliers "
               "(one per level; len - 1 halvings of time and mel)")
p.add_argument("--num-res-blocks", type=int, default=None, help="override the preset's ResNet blocks per level")
p.add_argument("--z-channels", type=int, default=None, help="override the preset's latent channels")
p.add_argument("--run-dir", required=True)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--batch-size", type=int, default=16, help="global batch (all ranks, all accumulation steps)")
p.add_argument("--grad-accum", type=int, default=1)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--crop-seconds", type=float, default=0.64, help="random training crops (the VAE is convolutional)")
p.add_argument("--clip-seconds", type=float, default=2.08, help="validation clip length (the demo grid's whole notes)")
p.add_argument("--kl-weight", type=float, default=1e-6)
p.add_argument("--disc-start", type=int, default=-1, help="step to switch the discriminator on (-1: never)")
p.add_argument("--disc-weight", type=float, default=0.5)
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--ckpt-every", type=int, default=500)
p.add_argument("--eval-every", type=int, default=500)
p.add_argument("--log-every", type=int, default=25)
p.add_argument("--examples", type=int, default=4)
p.add_argument("--workers", type=int, default=1)
p.add_argument("--device", default="auto")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--skip-bad", action="store_true", help="drop unreadable manifest rows instead of refusing")
p.add_argument("--resume", action="store_true")
p.add_argument("--no-progress", action="store_true")
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
torch.manual_seed(args.seed)

# data: a deterministic split by hash of path; random crops for training, whole clips for validation
clips = load_clips(args.data, skip_bad=args.skip_bad)
train_clips, valid_clips = split_by_hash(clips, args.valid_fraction)
overrides = {k: getattr(args, k) for k in ("ch", "ch_mult", "num_res_blocks", "z_channels")
             if getattr(args, k) is not None}
try:
    vae_config = dataclasses.replace(VAE_PRESETS[args.preset](), **overrides)
except ValueError as e:
    raise SystemExit(f"error: --preset {args.preset} with {overrides}: {e}")
vae = MelVAE(vae_config)
mel_cfg = vae.config.mel
train_ds = ClipDataset(train_clips, mel_cfg, args.crop_seconds, random_crop=True, seed=args.seed)
valid_ds = ClipDataset(valid_clips or train_clips[:8], mel_cfg, args.clip_seconds)

cfg = TrainConfig(run_dir=args.run_dir, max_steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                  lr=args.lr, warmup_steps=args.warmup, ema_decay=args.ema, ckpt_every=args.ckpt_every,
                  eval_every=args.eval_every, log_every=args.log_every, seed=args.seed, num_workers=args.workers,
                  device=args.device, resume=args.resume, progress=not args.no_progress)
loss = VAELossConfig(kl_weight=args.kl_weight, disc_start=args.disc_start, disc_weight=args.disc_weight)
stage = VAEStage(vae, loss, valid_ds)
trainer = Trainer(cfg, stage, train_ds, collate_clips)
t0 = time.time()
trainer.fit()
minutes = (time.time() - t0) / 60

if trainer.info.is_main:
    # the EMA weights are the model we keep
    final = trainer.ema.get("vae", vae)
    final.config.scale_factor = latent_scale_factor(final, train_ds, trainer.device)
    out = final.save_pretrained(Path(args.run_dir) / "vae", overwrite=True)
    l1, _, _ = evaluate_vae(final, valid_ds, trainer.device)
    ex = Path(args.run_dir) / "examples"
    for i in range(min(args.examples, len(valid_ds))):
        item = valid_ds[i]
        rec, _ = final(item["mel"][None].to(trainer.device), sample=False)
        name = Path(item["path"]).stem
        save_audio(ex / f"{name}_original_gl.wav", griffin_lim(item["mel"], mel_cfg), mel_cfg.sample_rate, True)
        save_audio(ex / f"{name}_recon_gl.wav", griffin_lim(rec[0].float().cpu(), mel_cfg), mel_cfg.sample_rate, True)
    print(json.dumps({"vae": str(out), "preset": args.preset, **overrides,
                      "parameters_m": round(sum(q.numel() for q in final.parameters()) / 1e6, 3),
                      "steps": trainer.step, "train_minutes": round(minutes, 2),
                      "valid_clips": len(valid_ds), "valid_logmel_l1": round(l1, 4),
                      "scale_factor": round(final.config.scale_factor, 4),
                      "nan_steps_skipped": trainer.nan_total}, indent=2))
