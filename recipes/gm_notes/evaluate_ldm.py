"""python recipes/gm_notes/evaluate_ldm.py --ldm runs/ldm_demo --vae runs/vae_demo/vae --vocoder runs/vocos_demo/vocoder

Generate a grid of label-conditioned notes (every instrument x a spread of pitches x seeds) through U-Net -> VAE decoder
-> vocoder, and report pitch accuracy: the fraction whose median YIN f0 over the held part of the note is within 50
cents of the requested pitch. Also prints the CPU time per generated second.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from audioldm.conditioning import LabelConditioner, LabelConditionerConfig
from audioldm.config import load_config
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.evaluation import pitch_error_cents
from audioldm.sampling import guided, initial_noise, noise_sampler, sample
from audioldm.seeding import mix_seed
from audioldm.unet import UNet
from audioldm.vae import MelVAE
from audioldm.vocoders import GriffinLimVocoder, load_vocoder
from audioldm.weights import load_component

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--ldm", required=True, help="run dir of train_ldm.py (unet/, conditioner/, schedule.json)")
p.add_argument("--vae", required=True)
p.add_argument("--vocoder", required=True, help="trained vocoder folder, or 'griffinlim'")
p.add_argument("--pitches", type=int, nargs="+", default=[48, 53, 57, 60, 64, 67, 71, 76, 79, 83])
p.add_argument("--velocity", type=int, default=80)
p.add_argument("--seeds", type=int, default=2)
p.add_argument("--steps", type=int, default=25)
p.add_argument("--sampler", default="dpmpp_2m")
p.add_argument("--guidance", type=float, default=3.0)
p.add_argument("--seconds", type=float, default=1.28)
p.add_argument("--batch-size", type=int, default=16)
p.add_argument("--save", default=None, help="folder to write the generated WAVs into")
p.add_argument("--details", default=None, help="write per-note results (JSON lines) here")
args = p.parse_args()
torch.set_num_threads(2)
run = Path(args.ldm)

vae = MelVAE.from_pretrained(args.vae)
vocoder = GriffinLimVocoder() if args.vocoder == "griffinlim" else load_vocoder(args.vocoder)
vae.config.mel.check_same(vocoder.mel_config, "the VAE and the vocoder")
unet = UNet.from_pretrained(run / "unet")
cond = load_component(run / "conditioner", LabelConditioner, LabelConditionerConfig, "label_conditioner")
diff = LatentDiffusion(unet, NoiseSchedule(load_config(ScheduleConfig, run / "schedule.json")))
mel_cfg = vae.config.mel
instruments = next(f.values for f in cond.config.fields if f.name == "instrument")
grid = [{"instrument": i, "pitch": p_, "velocity": args.velocity, "seed": s}
        for i in instruments for p_ in args.pitches for s in range(args.seeds)]
frames = int(round(args.seconds * mel_cfg.sample_rate / mel_cfg.hop_length))
shape = (vae.config.z_channels, -(-frames // vae.config.downsample), mel_cfg.n_mels // vae.config.downsample)
sig = diff.schedule.sampling_sigmas(args.steps)

results, t_gen = [], 0.0
for b in range(0, len(grid), args.batch_size):
    rows = grid[b:b + args.batch_size]
    labels = [{k: r[k] for k in ("instrument", "pitch", "velocity")} for r in rows]
    seeds = [mix_seed(instruments.index(r["instrument"]), r["pitch"], r["seed"]) for r in rows]
    t0 = time.perf_counter()
    with torch.no_grad():
        c, u = cond(labels), cond.null_condition(len(rows))
        x = initial_noise(seeds, shape, float(sig[0]))
        z = sample(args.sampler, guided(diff.denoise, c, u, args.guidance), x, sig, noise=noise_sampler(seeds, shape))
        mel = vae.decode_latents(z, frames)
        wav = vocoder(mel).float()
    t_gen += time.perf_counter() - t0
    for r, w in zip(rows, wav.numpy()):
        cents = pitch_error_cents(w, mel_cfg.sample_rate, r["pitch"])
        results.append({**r, "cents": round(cents, 1), "ok": abs(cents) <= 50})
        if args.save:
            from audioldm.audio import save_audio
            save_audio(Path(args.save) / f"{r['instrument']}_{r['pitch']}_{r['seed']}.wav", w, mel_cfg.sample_rate,
                       overwrite=True)

per_inst = {i: float(np.mean([r["ok"] for r in results if r["instrument"] == i])) for i in instruments}
summary = {"pitch_accuracy": float(np.mean([r["ok"] for r in results])), "per_instrument": per_inst,
           "n": len(results), "sampler": args.sampler, "steps": args.steps, "guidance": args.guidance,
           "cpu_seconds_per_generated_second": round(t_gen / (len(results) * args.seconds), 4)}
if args.details:
    Path(args.details).write_text("".join(json.dumps(r) + "\n" for r in results))
print(json.dumps(summary, indent=2))
