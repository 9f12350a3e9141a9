"""Process-group setup for `torchrun` (gloo on CPU, nccl on CUDA), torch's data-parallel engine around the trained
modules (:func:`wrap_modules`: DistributedDataParallel, bucketed and overlapped with backward; or FSDP2's
``fully_shard``), and a batch sampler that shards each global batch across ranks and accumulation steps so that any
(world size x accumulation) layout sees exactly the same samples per optimizer step as a single process.

DDP settings, and why: ``find_unused_parameters=False`` and ``static_graph=False``. Every parameter of a wrapped
module gets a gradient in every backward that passes through its wrapper: a stage calls the *unwrapped* module for
passes whose gradient must not reach it (a GAN's discriminator inside the generator's loss, whose backward is limited
to the generator's parameters by ``backward(inputs=...)``), so no reducer ever waits for a gradient that will not
come and nothing needs the per-step graph search of ``find_unused_parameters``. The graph is not static (the
discriminators join at ``disc_start``; a frozen or LoRA U-Net trains a subset), so ``static_graph`` is off; the
U-Net's activation checkpointing is non-reentrant, which DDP supports without it."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "all_reduce_mean", "wrap_modules", "no_sync", "StepBatchSampler",
           "PARALLEL_MODES"]

PARALLEL_MODES = ("ddp", "fsdp")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); start the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world_size
    return t


def wrap_modules(modules: dict, info: DistInfo, mode: str = "ddp") -> dict:
    """The modules to call in training steps: unchanged in one process; across processes each module with trainable
    parameters in DistributedDataParallel ("ddp", module weights broadcast from rank 0) or sharded in place by FSDP2's
    ``fully_shard`` ("fsdp": the module's ``fsdp_units()`` or its direct children holding parameters are units, then
the root). Modules without
    trainable parameters get rank 0's weights."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel mode must be one of {PARALLEL_MODES}, got {mode!r}")
    if not info.enabled:
        return dict(modules)
    out = {}
    for name, m in modules.items():
        if not any(p.requires_grad for p in m.parameters()):
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, 0)
            out[name] = m
        elif mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [info.device] if info.device.type == "cuda" else None
            out[name] = DDP(m, device_ids=ids, find_unused_parameters=False, static_graph=False)
        else:
            from torch.distributed.fsdp import fully_shard
            for unit in _shard_units(m):
                fully_shard(unit)
            out[name] = fully_shard(m)
    return out


def _shard_units(m: torch.nn.Module) -> list:
    """FSDP units below the root: the module's own ``fsdp_units()`` when it has one (the U-Net's blocks), else its
    direct children with trainable parameters, a ModuleList / ModuleDict's items in place of the container
    (fully_shard needs a module whose forward is called)."""
    if hasattr(m, "fsdp_units"):
        return [u for u in m.fsdp_units() if any(p.requires_grad for p in u.parameters())]
    units = []
    for child in m.children():
        items = child.values() if isinstance(child, torch.nn.ModuleDict) else (
            list(child) if isinstance(child, torch.nn.ModuleList) else [child])
        units += [u for u in items if any(p.requires_grad for p in u.parameters())]
    return units


@contextmanager
def no_sync(wrapped: dict, active: bool = True):
    """While ``active``: no gradient all-reduce in the wrapped modules' backward (accumulation micro-batches before
    the last one); the last micro-batch's backward then reduces the accumulated gradients once."""
    with ExitStack() as stack:
        if active:
            for m in wrapped.values():
                if hasattr(m, "no_sync"):  # DDP
                    stack.enter_context(m.no_sync())
                elif hasattr(m, "set_requires_gradient_sync"):  # FSDP2
                    m.set_requires_gradient_sync(False)
                    stack.callback(m.set_requires_gradient_sync, True)
        yield


class StepBatchSampler:
    """Yields this rank's micro-batches of dataset indices.

    Each epoch is a seeded permutation cut into global batches of ``batch_size`` (the last partial one is dropped);
    global batch s is split into ``world_size`` contiguous parts, and this rank's part into ``grad_accum`` micro-batches.
    ``set_epoch(epoch, start_step)`` resumes mid-epoch.
    """

    def __init__(self, num_items: int, batch_size: int, info: DistInfo, grad_accum: int = 1, seed: int = 0):
        per = info.world_size * grad_accum
        if batch_size % per:
            raise ValueError(f"batch_size={batch_size} must be divisible by world_size x grad_accum = {per}")
        if num_items < batch_size:
            raise ValueError(f"the training set has {num_items} clips, fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.info, self.accum, self.seed = num_items, batch_size, info, grad_accum, seed
        self.micro = batch_size // per
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        part = self.batch_size // self.info.world_size
        for s in range(self.start_step, self.steps_per_epoch):
            chunk = perm[s * self.batch_size:(s + 1) * self.batch_size]
            mine = chunk[self.info.rank * part:(self.info.rank + 1) * part]
            for m in range(self.accum):
                yield mine[m * self.micro:(m + 1) * self.micro].tolist()
