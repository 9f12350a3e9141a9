"""A frozen conditioner's outputs computed once: fine-tuning reads the same captions (or label dicts) every epoch,
so a frozen text encoder (a CLAP or T5 tower) runs once per distinct input instead of once per step, the way
latents are cached instead of re-running the VAE.

:class:`CachedConditioner` stands in for the conditioner in :class:`~audioldm.training.ldm_stage.LDMStage`: same
``forward(inputs) -> {"pooled", "tokens", "mask"}`` and ``null_condition``, no trainable parameters. An input not
in the cache (a held-out caption) is encoded on the spot by the wrapped conditioner.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from ..conditioning import pad_tokens

__all__ = ["CachedConditioner"]


def _key(x) -> str:
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True)


class CachedConditioner(nn.Module):
    """Cache of ``conditioner``'s conditions for ``inputs`` (strings, label dicts or joint requests), computed in
    batches of ``batch_size`` on ``device``; kept on the CPU and moved to the device of each call."""

    def __init__(self, conditioner: nn.Module, inputs: list, batch_size: int = 64, device=None):
        super().__init__()
        self.inner = conditioner.eval().requires_grad_(False)
        if device is not None:
            self.inner.to(device)
        self.config = getattr(conditioner, "config", None)
        self._cache: dict[str, dict] = {}
        todo = list(dict.fromkeys(_key(x) for x in inputs))
        by_key = {_key(x): x for x in inputs}
        for s in range(0, len(todo), batch_size):
            keys = todo[s:s + batch_size]
            self._store(keys, self._encode([by_key[k] for k in keys]))
        self._null = {k: v[:1].cpu() for k, v in self._encode_null(1).items()}

    @torch.no_grad()
    def _encode(self, items: list) -> dict:
        return self.inner(items)

    @torch.no_grad()
    def _encode_null(self, n: int) -> dict:
        return self.inner.null_condition(n)

    def _store(self, keys: list[str], cond: dict) -> None:
        for i, k in enumerate(keys):
            row = {}
            for name, v in cond.items():
                v = v[i:i + 1].cpu()
                if name in ("tokens", "mask") and "mask" in cond:  # drop the batch's trailing padding
                    m = cond["mask"][i]
                    v = v[:, :int(m.nonzero().max()) + 1 if m.any() else 1]
                row[name] = v
            self._cache[k] = row

    @property
    def pooled_dim(self) -> int:
        return self.inner.pooled_dim

    @property
    def token_dim(self):
        return self.inner.token_dim

    def __len__(self) -> int:
        return len(self._cache)

    def forward(self, inputs: list) -> dict:
        keys = [_key(x) for x in inputs]
        new = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if new:
            by_key = {_key(x): x for x in inputs}
            self._store(new, self._encode([by_key[k] for k in new]))
        rows = [self._cache[k] for k in keys]
        dev = self._device()
        if "tokens" in rows[0]:
            L = max(r["tokens"].shape[1] for r in rows)
            rows = [pad_tokens(r, L) for r in rows]
        return {name: torch.cat([r[name] for r in rows]).to(dev) for name in rows[0]}

    def null_condition(self, batch_size: int) -> dict:
        dev = self._device()
        return {k: v.expand(batch_size, *v.shape[1:]).to(dev) for k, v in self._null.items()}

    def _device(self):
        p = next(self.inner.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
