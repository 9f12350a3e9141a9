"""Deterministic per-sample randomness: sample k of a batch gets the same noise whatever the batch size, rank or
process layout (EDM2-style), so distributed runs match single-process runs and generations are reproducible."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["mix_seed", "randn_per_sample"]


def mix_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (stable across runs and platforms)."""
    h = hashlib.blake2b(",".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def randn_per_sample(seeds, shape, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape]; row k is drawn (on CPU) from a generator seeded with seeds[k]."""
    rows = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)
