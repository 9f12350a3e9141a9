"""python bench/unet.py [--presets demo audioldm-s] [--batch 1] [--train-batch 8] [--repeats 3]

Denoise-step time (one classifier-free-guidance step = one batched call on 2B latents) and train-step time
(forward + backward + AdamW) of our U-Net against diffusers' UNet2DConditionModel configured the same way (random
weights; class_embed_type="simple_projection", class_embeddings_concat=True), on CPU and on CUDA when present (bf16
autocast there). Our weights are loaded into the diffusers model first (strict), so both compute the same function;
the max abs difference of their outputs is printed too. Latents: 10.24 s of audio -> [8, 256, 16]. Prints JSON.
diffusers is a bench extra (pip install -e '.[bench]').
"""

import argparse
import json
import time

import torch

from audioldm.convert.diffusers import diffusers_unet
from audioldm.unet import UNET_PRESETS, UNet

p = argparse.ArgumentParser()
p.add_argument("--presets", nargs="+", default=["demo", "audioldm-s"])
p.add_argument("--frames", type=int, default=256, help="latent frames (10.24 s of audio at hop 160 / 4)")
p.add_argument("--batch", type=int, default=1)
p.add_argument("--train-batch", type=int, default=8)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)


def timed(fn, dev, repeats):
    fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


results = []
for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
    for name in args.presets:
        cfg = UNET_PRESETS[name]()
        ours = UNet(cfg).to(dev)
        x = torch.randn(2 * args.batch, cfg.in_channels, args.frames, 16, device=dev)
        t = torch.full((2 * args.batch,), 500.0, device=dev)
        pooled = torch.randn(2 * args.batch, cfg.cond_dim, device=dev)
        ac = (lambda: torch.autocast("cuda", torch.bfloat16)) if dev == "cuda" else \
             (lambda: torch.autocast("cpu", enabled=False))
        row = {"device": dev, "preset": name, "params_M": round(sum(q.numel() for q in ours.parameters()) / 1e6, 1),
               "latents": [cfg.in_channels, args.frames, 16], "cfg_batch": 2 * args.batch}

        def ours_step():
            with torch.no_grad(), ac():
                ours.eval()(x, t, {"pooled": pooled})
        row["ours_denoise_ms"] = 1e3 * timed(ours_step, dev, args.repeats)
        xb = torch.randn(args.train_batch, cfg.in_channels, args.frames, 16, device=dev)
        tb = torch.randint(0, 1000, (args.train_batch,), device=dev).float()
        pb = torch.randn(args.train_batch, cfg.cond_dim, device=dev)
        opt = torch.optim.AdamW(ours.parameters(), lr=1e-5)

        def ours_train():
            with ac():
                loss = ours.train()(xb, tb, {"pooled": pb}).float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        row["ours_train_samples_per_s"] = args.train_batch / timed(ours_train, dev, max(1, args.repeats - 1))
        try:
            ref = diffusers_unet(cfg).to(dev)
        except ImportError:
            row["diffusers"] = None
            results.append(row)
            print(json.dumps(row), flush=True)
            continue
        ref.load_state_dict(ours.state_dict(), strict=True)
        with torch.no_grad():
            a = ours.eval()(x, t, {"pooled": pooled}).float()
            b = ref.eval()(x, t, encoder_hidden_states=None, class_labels=pooled).sample.float()
        row["max_abs_diff_vs_diffusers"] = float((a - b).abs().max())

        def ref_step():
            with torch.no_grad(), ac():
                ref.eval()(x, t, encoder_hidden_states=None, class_labels=pooled)
        row["diffusers_denoise_ms"] = 1e3 * timed(ref_step, dev, args.repeats)
        ropt = torch.optim.AdamW(ref.parameters(), lr=1e-5)

        def ref_train():
            with ac():
                loss = ref.train()(xb, tb, encoder_hidden_states=None, class_labels=pb).sample.float().square().mean()
            loss.backward()
            ropt.step()
            ropt.zero_grad(set_to_none=True)
        row["diffusers_train_samples_per_s"] = args.train_batch / timed(ref_train, dev, max(1, args.repeats - 1))
        row["denoise_speedup"] = row["diffusers_denoise_ms"] / row["ours_denoise_ms"]
        row["train_speedup"] = row["ours_train_samples_per_s"] / row["diffusers_train_samples_per_s"]
        results.append(row)
        print(json.dumps(row), flush=True)
print(json.dumps({"bench": "unet", "results": results}, indent=2))
