"""python bench/finetune.py [--device cpu|cuda] [--preset audioldm-s] [--batch 1] [--frames 256] [--steps 3]

Fine-tuning's memory levers at AudioLDM-S size, each in a fresh subprocess so that peaks do not mix: one U-Net
training step (forward + backward + AdamW on 10.24 s latents [8, 256, 16], FiLM condition) for
- full fine-tuning, LoRA r=8 on the attention projections (peft), and each with activation checkpointing;
- bf16 weights (weights, gradients and AdamW state in bfloat16, under autocast; on CUDA, or with --bf16-on-cpu);
- the named reference in the same run: diffusers' UNet2DConditionModel holding the same weights, full and with
  peft LoRA (``unet.add_adapter``, the diffusers training scripts' way), with and without its gradient checkpointing.
CPU: peak resident set size (ru_maxrss) and its increase over the process after building the model and optimizer;
CUDA: torch.cuda.max_memory_allocated. Step time: the median of --steps steps after one warm-up step. Prints JSON.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present, else cpu)")
p.add_argument("--preset", default="audioldm-s")
p.add_argument("--batch", type=int, default=1)
p.add_argument("--frames", type=int, default=256, help="latent frames (256 = 10.24 s at AudioLDM's settings)")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--rank", type=int, default=8)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--bf16-on-cpu", action="store_true", help="also run the bf16-weights row on CPU (very slow)")
p.add_argument("--worker", nargs="+", default=None, help=argparse.SUPPRESS)
args = p.parse_args()

CONFIGS = [("ours", "full", False, False), ("ours", "full", True, False), ("ours", "lora", False, False),
           ("ours", "lora", True, False), ("ours", "full", False, True), ("diffusers", "full", False, False),
           ("diffusers", "full", True, False), ("diffusers", "lora", False, False), ("diffusers", "lora", True, False)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(dev: str, impl: str, mode: str, ckpt: str, bf16: str, weights: str) -> dict:
    import torch

    from audioldm.convert.diffusers import diffusers_unet
    from audioldm.unet import UNET_PRESETS, UNet
    torch.set_num_threads(args.threads)
    ckpt, bf16, cuda = ckpt == "1", bf16 == "1", dev == "cuda"
    from safetensors import safe_open
    cfg = UNET_PRESETS[args.preset]()
    net = UNet(cfg) if impl == "ours" else diffusers_unet(cfg)
    with torch.no_grad(), safe_open(weights, "pt") as f:  # the same weights, one tensor at a time (no 2nd copy)
        for k, v in net.state_dict().items():
            v.copy_(f.get_tensor(k))
    if impl == "ours":
        net.config.gradient_checkpointing = ckpt
    elif ckpt:
        net.enable_gradient_checkpointing()
    if mode == "lora":
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
        if impl == "ours":
            from audioldm.lora import add_lora
            add_lora(net, args.rank, None, ["attention"])
        else:
            from peft import LoraConfig
            net.requires_grad_(False)
            net.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                       target_modules=targets))
    net = net.to(dev, torch.bfloat16 if bf16 else torch.float32).train()
    params = [q for q in net.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    x = torch.randn(args.batch, cfg.in_channels, args.frames, 16, device=dev)
    t = torch.randint(0, 1000, (args.batch,), device=dev).float()
    pooled = torch.randn(args.batch, cfg.cond_dim, device=dev)
    import gc
    gc.collect()
    base = torch.cuda.memory_allocated() if cuda else rss_mb()
    times = []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(dev, torch.bfloat16, enabled=cuda or bf16):
            out = net(x, t, {"pooled": pooled}) if impl == "ours" else \
                net(x, t, encoder_hidden_states=None, class_labels=pooled).sample
            loss = out.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    row = {"impl": impl, "mode": f"lora r={args.rank}" if mode == "lora" else "full", "checkpointing": ckpt,
           "weights": "bfloat16" if bf16 else "float32", "trainable_params": sum(q.numel() for q in params),
           "step_s": round(statistics.median(times[1:]), 3)}
    if cuda:
        row.update(peak_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   increase_mb=round((torch.cuda.max_memory_allocated() - base) / 2**20, 1))
    else:
        row.update(peak_rss_mb=round(rss_mb(), 1), increase_mb=round(rss_mb() - base, 1))
    return row


if args.worker:
    print(json.dumps(worker(*args.worker)))
    sys.exit(0)

import torch  # noqa: E402

import tempfile  # noqa: E402

from safetensors.torch import save_file  # noqa: E402

from audioldm.unet import UNET_PRESETS, UNet  # noqa: E402

dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
weights = str(Path(tempfile.mkdtemp()) / "unet.safetensors")
save_file(UNet(UNET_PRESETS[args.preset]()).state_dict(), weights)  # one random init, read by every worker
rows = []
for impl, mode, ckpt, bf16 in CONFIGS:
    if bf16 and dev == "cpu" and not args.bf16_on_cpu:
        continue  # emulated bf16 convolutions: minutes per AudioLDM-S step on a CPU without AVX512-BF16
    job = [dev, impl, mode, str(int(ckpt)), str(int(bf16)), weights]
    r = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--batch", str(args.batch), "--frames",
                        str(args.frames), "--steps", str(args.steps), "--rank", str(args.rank), "--threads",
                        str(args.threads), "--worker", *job], capture_output=True, text=True)
    if r.returncode:
        rows.append({"job": job, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"})
    else:
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
key = "peak_mb" if dev == "cuda" else "increase_mb"
ref = {(r["mode"], r["checkpointing"]): r for r in rows if r.get("impl") == "diffusers"}
for r in rows:  # ours against diffusers in the same configuration
    d = ref.get((r.get("mode"), r.get("checkpointing")))
    if r.get("impl") == "ours" and d and r["weights"] == "float32":
        r["memory_vs_diffusers"] = round(r[key] / max(1e-9, d[key]), 3)
        r["time_vs_diffusers"] = round(r["step_s"] / max(1e-9, d["step_s"]), 3)
print(json.dumps({"bench": "finetune", "device": dev, "preset": args.preset, "batch": args.batch,
                  "latents": [8, args.frames, 16], "results": rows}, indent=2))
