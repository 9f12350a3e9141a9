"""python bench/vae.py [--presets demo audioldm-s] [--seconds 10.24] [--batch 1] [--repeats 3]

Encode + decode throughput of the mel VAE (mel frames per second) on CPU, and on CUDA when present (bf16 autocast).
When diffusers is installed, its AutoencoderKL built with the same shape (random weights) runs in the same process
as the reference and the ratio is printed. Prints one JSON object.
"""

import argparse
import json
import time

import torch

from audioldm.vae import VAE_PRESETS, MelVAE

p = argparse.ArgumentParser()
p.add_argument("--presets", nargs="+", default=["demo", "audioldm-s"])
p.add_argument("--seconds", type=float, default=10.24)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--repeats", type=int, default=3)
args = p.parse_args()


def diffusers_vae(cfg):
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        return None
    n = len(cfg.ch_mult)
    return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=cfg.z_channels,
                         block_out_channels=[cfg.ch * m for m in cfg.ch_mult], layers_per_block=cfg.num_res_blocks,
                         down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                         norm_num_groups=cfg.norm_groups)


def timed(fn, device, repeats):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


results = []
devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
for dev in devices:
    for name in args.presets:
        cfg = VAE_PRESETS[name]()
        frames = int(args.seconds * cfg.mel.sample_rate / cfg.mel.hop_length)
        mel = torch.randn(args.batch, cfg.mel.n_mels, frames, device=dev) - 8
        ours = MelVAE(cfg).to(dev).eval()
        ac = torch.autocast("cuda", torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)

        def run_ours():
            with torch.no_grad(), ac:
                ours.decode(ours.encode(mel).mode(), frames)

        row = {"device": dev.type, "preset": name, "batch": args.batch, "frames": frames,
               "ours_frames_per_s": args.batch * frames / timed(run_ours, dev, args.repeats)}
        ref = diffusers_vae(cfg)
        if ref is not None:
            ref = ref.to(dev).eval()
            img = mel.transpose(1, 2).unsqueeze(1)
            pad = (-frames) % 4
            img = torch.nn.functional.pad(img, (0, 0, 0, pad))

            def run_ref():
                with torch.no_grad(), ac:
                    ref.decode(ref.encode(img).latent_dist.mode())

            row["diffusers_frames_per_s"] = args.batch * frames / timed(run_ref, dev, args.repeats)
            row["speedup_vs_diffusers"] = row["ours_frames_per_s"] / row["diffusers_frames_per_s"]
        else:
            row["diffusers_frames_per_s"] = None
        results.append(row)
print(json.dumps({"bench": "vae", "results": results}, indent=2))
