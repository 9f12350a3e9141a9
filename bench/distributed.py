"""python bench/distributed.py [--presets demo:16:32 audioldm-s:2:64] [--steps 3]

U-Net training step time in 1 process against 2 processes on this machine's CPU (torchrun, gloo), at the demo and
AudioLDM-S sizes, with the gradients averaged two ways in the same run:
- hand: backward, then one flattened all-reduce of every gradient (what the trainer did before DDP; the reference);
- ddp: torch's DistributedDataParallel (the trainer's way now): gradients in 25 MB buckets, each all-reduced as soon
  as backward has produced it, overlapping the communication with the rest of backward.
PRESET:BATCH:FRAMES: the global batch (split over the processes) of latents [8, FRAMES, 16] (256 frames = 10.24 s).
1 process gets --threads threads; 2 processes get one each, so both use the machine's cores. Each row: median
seconds per step over --steps steps after one warm-up step, samples/s, and for 2 processes the time spent in the
all-reduce (hand) measured alone. Prints JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--presets", nargs="+", default=["demo:16:32", "audioldm-s:2:64"])
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--worker", nargs="+", default=None, help=argparse.SUPPRESS)
args = p.parse_args()


def worker(mode: str, preset: str, batch: str, frames: str) -> dict | None:
    import torch
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    from audioldm.unet import UNET_PRESETS, UNet
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    torch.set_num_threads(args.threads if world == 1 else 1)
    if world > 1:
        dist.init_process_group("gloo")
    cfg = UNET_PRESETS[preset]()
    torch.manual_seed(0)
    net = UNet(cfg).train()
    n = int(batch) // world
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(n, cfg.in_channels, int(frames), 16, generator=g)
    t = torch.randint(0, 1000, (n,), generator=g).float()
    pooled = torch.randn(n, cfg.cond_dim, generator=g)
    model = torch.nn.parallel.DistributedDataParallel(net) if mode == "ddp" else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    params = list(net.parameters())
    times, comm = [], []
    for _ in range(args.steps + 1):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        model(x, t, {"pooled": pooled}).square().mean().backward()
        if mode == "hand":
            c0 = time.perf_counter()
            grads = [q.grad for q in params if q.grad is not None]
            flat = _flatten_dense_tensors(grads)
            dist.all_reduce(flat)
            flat /= world
            for q, s in zip(grads, _unflatten_dense_tensors(flat, grads)):
                q.copy_(s)
            comm.append(time.perf_counter() - c0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    if world > 1:
        dist.destroy_process_group()
    if rank:
        return None
    step = statistics.median(times[1:])
    row = {"preset": preset, "params_M": round(sum(q.numel() for q in params) / 1e6, 1), "global_batch": int(batch),
           "latents": [cfg.in_channels, int(frames), 16], "processes": world, "grad_sync": mode if world > 1 else "-",
           "step_s": round(step, 3), "samples_per_s": round(int(batch) / step, 2)}
    if comm:
        row["allreduce_s"] = round(statistics.median(comm[1:]), 3)
    return row


if args.worker:
    row = worker(*args.worker)
    if row:
        print(json.dumps(row))
    sys.exit(0)

rows = []
for spec in args.presets:
    preset, batch, frames = spec.split(":")
    base = ["--steps", str(args.steps), "--threads", str(args.threads)]
    for mode, procs in (("single", 1), ("hand", 2), ("ddp", 2)):
        cmd = ([sys.executable, __file__] if procs == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                __file__])
        r = subprocess.run(cmd + base + ["--worker", mode, preset, batch, frames], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        out = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        rows.append(json.loads(out[-1]) if r.returncode == 0 and out else
                    {"preset": preset, "mode": mode, "error": (r.stderr.strip().splitlines() or ["failed"])[-1]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
for preset in {r["preset"] for r in rows}:
    by = {r.get("grad_sync"): r for r in rows if r["preset"] == preset and "step_s" in r}
    if "hand" in by and "ddp" in by:
        by["ddp"]["vs_hand"] = round(by["ddp"]["step_s"] / by["hand"]["step_s"], 3)
    if "-" in by:
        for k in ("hand", "ddp"):
            if k in by:
                by[k]["speedup_vs_1_process"] = round(by["-"]["step_s"] / by[k]["step_s"], 3)
print(json.dumps({"bench": "distributed", "device": "cpu (gloo)", "results": rows,
                  "on_a_gpu": "with nccl on GPUs the all-reduce runs on its own CUDA stream at 100s of GB/s, so "
                              "DDP hides it behind backward almost entirely and N GPUs approach N x one GPU's "
                              "samples/s; on a 2-core CPU the processes share the same cores and gloo's copies, so "
                              "2 processes cannot beat 1 and the rows measure the synchronisation overhead"},
                 indent=2))
