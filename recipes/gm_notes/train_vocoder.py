"""python recipes/gm_notes/train_vocoder.py --data data/gm_notes_demo/manifest.jsonl --model vocos --preset demo --run-dir runs/vocos_demo

Train a vocoder (Vocos-style or HiFi-GAN) on random waveform segments of a manifest with the shared training loop:
log-mel L1 plus, from --disc-start on, multi-period + multi-resolution discriminators (LSGAN + feature matching).
Saves the EMA weights to RUN_DIR/vocoder and prints valid MR-STFT distance and log-mel L1 next to Griffin-Lim's.
Multi-process: torchrun --nproc_per_node 2 recipes/gm_notes/train_vocoder.py ... ; resume with --resume.
"""

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from audioldm.data import ClipDataset, collate_clips, load_clips, split_by_hash
from audioldm.training import TrainConfig, Trainer
from audioldm.training.vocoder_stage import VocoderLossConfig, VocoderStage, evaluate_vocoder
from audioldm.vae import MelVAE
from audioldm.vocoders import GriffinLimVocoder, build_vocoder, load_vocoder

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", required=True, help="manifest (.jsonl/.csv) or audio folder")
p.add_argument("--model", default="vocos", choices=["vocos", "hifigan"])
p.add_argument("--preset", default="demo")
p.add_argument("--phase", default=None, choices=["advance", "frame"],
               help="Vocos phase parametrisation (default: the preset's, 'advance'; see audioldm/vocoders/vocos.py)")
p.add_argument("--run-dir", required=True)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--batch-size", type=int, default=16)
p.add_argument("--grad-accum", type=int, default=1)
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--segment-seconds", type=float, default=0.48, help="random training segments")
p.add_argument("--clip-seconds", type=float, default=2.0, help="validation clip length")
p.add_argument("--disc-start", type=int, default=0, help="step to switch the discriminators on (-1: never)")
p.add_argument("--disc-channels", type=int, default=16)
p.add_argument("--disc-max-channels", type=int, default=64, help="HiFi-GAN uses 1024; 64 keeps CPU training fast")
p.add_argument("--stft-weight", type=float, default=5.0,
               help="multi-resolution STFT loss weight (0 = HiFi-GAN's losses only); speeds up short CPU runs")
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--valid-items", type=int, default=64)
p.add_argument("--ckpt-every", type=int, default=500)
p.add_argument("--eval-every", type=int, default=500)
p.add_argument("--log-every", type=int, default=25)
p.add_argument("--workers", type=int, default=1)
p.add_argument("--device", default="auto")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--skip-bad", action="store_true")
p.add_argument("--resume", action="store_true")
p.add_argument("--init", default=None, help="start from this trained vocoder folder (fine-tuning)")
p.add_argument("--vae", default=None, help="train on this VAE's reconstructions of the mels (what generation feeds "
                                           "the vocoder); losses still use the true audio")
p.add_argument("--vae-fraction", type=float, default=1.0,
               help="with --vae: the fraction of each batch fed the VAE's reconstructions (the rest real mels)")
p.add_argument("--no-progress", action="store_true")
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
torch.manual_seed(args.seed)

if args.init:
    vocoder = load_vocoder(args.init)
elif args.phase and args.model == "vocos":
    import dataclasses

    from audioldm.vocoders import VOCOS_PRESETS, Vocos
    vocoder = Vocos(dataclasses.replace(VOCOS_PRESETS[args.preset](), phase=args.phase))
else:
    vocoder = build_vocoder(args.model, args.preset)


class VAERoundTrip(torch.nn.Module):
    """log-mel -> the VAE's reconstruction from its posterior mean."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, mel):
        return self.vae(mel, sample=False)[0]


mel_input = None
if args.vae:
    vae = MelVAE.from_pretrained(args.vae)
    vae.config.mel.check_same(vocoder.mel_config, "the VAE and the vocoder")
    mel_input = VAERoundTrip(vae)
mel_cfg = vocoder.mel_config
train_clips, valid_clips = split_by_hash(load_clips(args.data, skip_bad=args.skip_bad), args.valid_fraction)
train_ds = ClipDataset(train_clips, mel_cfg, args.segment_seconds, random_crop=True, seed=args.seed)
valid_ds = ClipDataset(valid_clips or train_clips[:8], mel_cfg, args.clip_seconds)

cfg = TrainConfig(run_dir=args.run_dir, max_steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                  lr=args.lr, warmup_steps=args.warmup, ema_decay=args.ema, ckpt_every=args.ckpt_every,
                  eval_every=args.eval_every, log_every=args.log_every, seed=args.seed, num_workers=args.workers,
                  device=args.device, resume=args.resume, progress=not args.no_progress)
loss = VocoderLossConfig(disc_start=args.disc_start, disc_channels=args.disc_channels,
                         disc_max_channels=args.disc_max_channels, stft_weight=args.stft_weight)
trainer = Trainer(cfg, VocoderStage(vocoder, loss, valid_ds, mel_input=mel_input,
                                                 mel_input_fraction=args.vae_fraction), train_ds, collate_clips)
t0 = time.time()
trainer.fit()
minutes = (time.time() - t0) / 60

if trainer.info.is_main:
    final = trainer.ema.get("vocoder", vocoder)
    out = final.save_pretrained(Path(args.run_dir) / "vocoder", overwrite=True)
    n = min(args.valid_items, len(valid_ds))
    ours = evaluate_vocoder(final, valid_ds, trainer.device, n)
    gl = evaluate_vocoder(GriffinLimVocoder(), valid_ds, "cpu", n)
    print(json.dumps({"vocoder": str(out), "model": args.model, "preset": args.preset, "steps": trainer.step,
                      "train_minutes": round(minutes, 2), "valid_items": n,
                      "ours": {k: round(v, 4) for k, v in ours.items()},
                      "griffin_lim": {k: round(v, 4) for k, v in gl.items()}}, indent=2))
