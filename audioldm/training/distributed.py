"""Process-group setup for `torchrun` (gloo on CPU, nccl on CUDA), gradient averaging, and a batch sampler that shards
each global batch across ranks and accumulation steps so that any (world size x accumulation) layout sees exactly the
same samples per optimizer step as a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = ["DistInfo", "init_distributed", "all_reduce_mean", "average_gradients", "StepBatchSampler"]


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


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average .grad over ranks with one coalesced all-reduce (params without a grad are skipped on every rank)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


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
