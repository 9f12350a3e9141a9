"""python bench/memory.py [--device cpu|cuda] [--train-presets demo:16 audioldm-s:1] [--model DIR]

Peak memory of generation and of U-Net training, each measured in a fresh subprocess so that peaks do not mix:
- generation: the model folder (default: the shipped model) generating --seconds of audio (default 2 and 10 s);
- training: a U-Net train step (forward + backward + AdamW, bf16 autocast on CUDA) at PRESET:BATCH on 10.24 s latents
  (8 x 256 x 16 for audioldm-s; the demo preset on its 1.28 s training clips), ours against diffusers'
  UNet2DConditionModel configured the same way (the reference; needs diffusers).
CPU: peak resident set size of the process (ru_maxrss) and its increase over the process after imports and model
construction; CUDA: torch.cuda.max_memory_allocated. Prints JSON.
"""

import argparse
import json
import resource
import subprocess
import sys

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present, else cpu)")
p.add_argument("--model", default=None, help="model folder for the generation rows (default: the shipped model)")
p.add_argument("--seconds", type=float, nargs="+", default=[2.0, 10.0])
p.add_argument("--train-presets", nargs="+", default=None,
               help="PRESET:BATCH pairs (default: demo:16 audioldm-s:1 on CPU, demo:32 audioldm-s:32 on CUDA)")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--worker", nargs="+", default=None, help=argparse.SUPPRESS)
args = p.parse_args()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(kind: str, dev: str, *rest: str) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    cuda = dev == "cuda"
    if kind == "generate":
        from audioldm.pretrained import default_model
        from audioldm.pipeline import AudioLDM
        seconds, folder = float(rest[0]), rest[1] if len(rest) > 1 else default_model()
        pipe = AudioLDM.from_pretrained(folder).to(dev, torch.bfloat16 if cuda else torch.float32)
        base = torch.cuda.memory_allocated() if cuda else rss_mb()
        prompt = "a violin playing C5, loud" if pipe.uses_labels else "a dog barking"
        pipe.generate(prompt, duration=seconds, seed=0, progress=False)
        row = {"what": f"generate {seconds:g} s", "model": pipe.name}
    else:  # train
        from audioldm.convert.diffusers import diffusers_unet
        from audioldm.unet import UNET_PRESETS, UNet
        impl, preset, batch = rest[0], rest[1], int(rest[2])
        cfg = UNET_PRESETS[preset]()
        net = (UNet(cfg) if impl == "ours" else diffusers_unet(cfg)).to(dev).train()
        frames = 256 if preset == "audioldm-s" else 32
        x = torch.randn(batch, cfg.in_channels, frames, 16, device=dev)
        t = torch.randint(0, 1000, (batch,), device=dev).float()
        pooled = torch.randn(batch, cfg.cond_dim, device=dev)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        base = torch.cuda.memory_allocated() if cuda else rss_mb()
        for _ in range(2):
            with torch.autocast(dev, torch.bfloat16, enabled=cuda):
                out = net(x, t, {"pooled": pooled}) if impl == "ours" else \
                    net(x, t, encoder_hidden_states=None, class_labels=pooled).sample
                loss = out.float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        row = {"what": f"train {impl}", "preset": preset, "batch": batch, "latents": [cfg.in_channels, frames, 16]}
    if cuda:
        torch.cuda.synchronize()
        row.update(peak_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   increase_mb=round((torch.cuda.max_memory_allocated() - base) / 2**20, 1))
    else:
        row.update(peak_rss_mb=round(rss_mb(), 1), increase_mb=round(rss_mb() - base, 1))
    row["device"] = dev
    return row


if args.worker:
    print(json.dumps(worker(*args.worker)))
    sys.exit(0)

import torch  # noqa: E402

dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
presets = args.train_presets or (["demo:32", "audioldm-s:32"] if dev == "cuda" else ["demo:16", "audioldm-s:1"])
jobs = [["generate", dev, str(s)] + ([args.model] if args.model else []) for s in args.seconds]
for spec in presets:
    preset, batch = spec.split(":")
    jobs += [["train", dev, impl, preset, batch] for impl in ("ours", "diffusers")]
rows = []
for job in jobs:
    r = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--worker", *job],
                       capture_output=True, text=True)
    if r.returncode:
        rows.append({"job": job, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"})
    else:
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
for preset in {j[3] for j in jobs if j[0] == "train"}:  # ours / diffusers ratio per preset
    pair = {r["what"]: r for r in rows if r.get("preset") == preset}
    key = "peak_mb" if dev == "cuda" else "increase_mb"
    if {"train ours", "train diffusers"} <= set(pair):
        pair["train ours"]["vs_diffusers"] = round(pair["train ours"][key] / max(1e-9, pair["train diffusers"][key]), 3)
print(json.dumps({"bench": "memory", "device": dev, "results": rows}, indent=2))
