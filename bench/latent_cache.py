"""python bench/latent_cache.py [--data MANIFEST] [--vae VAE_DIR] [--preset demo] [--batch 16] [--steps 10]

What the latent cache buys: time per U-Net training step (data loading + optimizer step, the LDMStage loss that
the U-Net stage of recipes/audio_folder runs) when latents come from the cache (RUN_DIR/latents.safetensors, read by LatentDataset) against
encoding on the fly (reading the WAVs, the mel front-end and the VAE encoder every step, as a pipeline without a cache
does). Same U-Net, conditioner, batch and seeds in both. Without --data, 64 synthetic 1.28 s tones are written to a
temporary folder; without --vae a random VAE of --preset's size is used. Prints JSON.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioldm.conditioning import LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.data import ClipDataset, load_clips
from audioldm.data.latents import LatentDataset, build_latent_cache, collate_latents
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.training.distributed import DistInfo
from audioldm.training.ldm_stage import LDMStage
from audioldm.training.trainer import StepContext
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vae import VAE_PRESETS, MelVAE

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", default=None, help="manifest (default: 64 synthetic tones)")
p.add_argument("--vae", default=None, help="trained VAE folder (default: a random VAE of --preset's size)")
p.add_argument("--preset", default="demo", choices=sorted(UNET_PRESETS), help="U-Net preset, and the random VAE's")
p.add_argument("--seconds", type=float, default=1.28)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

tmp = tempfile.TemporaryDirectory()
synthetic = args.data is None
if synthetic:  # decaying tones with instrument/pitch labels
    rows = []
    time_s = np.arange(int(16000 * args.seconds)) / 16000
    for k in range(64):
        pitch = 48 + k % 36
        wav = 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * time_s) * np.exp(-2 * time_s)
        sf.write(Path(tmp.name) / f"{k}.wav", wav.astype(np.float32), 16000)
        rows.append({"path": f"{k}.wav", "instrument": ["a", "b"][k % 2], "pitch": pitch})
    (Path(tmp.name) / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args.data = str(Path(tmp.name) / "m.jsonl")
clips = load_clips(args.data)
vae = MelVAE.from_pretrained(args.vae) if args.vae else MelVAE(VAE_PRESETS[args.preset]())
vae.eval()
fields = [LabelField("instrument", values=sorted({str(c.labels["instrument"]) for c in clips})),
          LabelField("pitch", "numeric", low=21, high=108)]
conditioner = LabelConditioner(LabelConditionerConfig(fields=fields, dim=128, pooled_dim=128))
unet = UNet(UNET_PRESETS[args.preset](in_channels=vae.config.z_channels, out_channels=vae.config.z_channels,
                                      cond_dim=128))
stage = LDMStage(LatentDiffusion(unet, NoiseSchedule(ScheduleConfig(prediction="v"))), conditioner,
                 vae.config.scale_factor, "labels")
opt = stage.optimizers(argparse.Namespace(lr=1e-4))["unet"]
ctx = StepContext(step=0, epoch=0, seed=0, device=torch.device("cpu"), info=DistInfo(), ema={})
audio = ClipDataset(clips, vae.config.mel, args.seconds)
t0 = time.perf_counter()
cache = build_latent_cache(vae, audio, Path(tmp.name) / "latents.safetensors", batch_size=args.batch)
cache_build_s = time.perf_counter() - t0
cached = LatentDataset(cache)


def indices(step):
    return [(step * args.batch + j) % len(clips) for j in range(args.batch)]


def batch_cached(step):
    idx = indices(step)
    return {**collate_latents([cached[i] for i in idx]), "index": torch.tensor(idx)}


@torch.no_grad()
def batch_on_the_fly(step):
    idx = indices(step)
    items = [audio[i] for i in idx]  # read WAV + mel
    post = vae.encode(torch.stack([it["mel"] for it in items]))
    return {"mean": post.mean, "std": post.std, "labels": [it["labels"] for it in items], "index": torch.tensor(idx)}


def train_steps(make_batch):
    def one(step):
        for _, loss, _ in stage.train_step(make_batch(step), ctx):
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    one(0)  # warm-up
    t0 = time.perf_counter()
    for s in range(1, args.steps + 1):
        one(s)
    return (time.perf_counter() - t0) / args.steps


def data_only(make_batch):
    t0 = time.perf_counter()
    for s in range(1, args.steps + 1):
        make_batch(s)
    return (time.perf_counter() - t0) / args.steps


row = {"bench": "latent_cache", "vae": args.vae or f"random {args.preset}",
       "data": "synthetic tones" if synthetic else args.data, "clips": len(clips), "batch": args.batch,
       "clip_seconds": args.seconds, "unet": args.preset,
       "latents": list(cached.mean.shape[1:]), "threads": args.threads, "cache_build_s": round(cache_build_s, 2)}
row["cached_step_s"] = round(train_steps(batch_cached), 4)
row["on_the_fly_step_s"] = round(train_steps(batch_on_the_fly), 4)
row["cached_data_s"] = round(data_only(batch_cached), 4)
row["on_the_fly_data_s"] = round(data_only(batch_on_the_fly), 4)
row["speedup"] = round(row["on_the_fly_step_s"] / row["cached_step_s"], 2)
print(json.dumps(row, indent=2))
