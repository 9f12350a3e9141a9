"""Balanced sampling for imbalanced folders: a few long recordings sliced into many clips can make one category most
of the training set. :func:`balanced_indices` draws clips so that every category gets the same share, and within a
category every source file the same share, however many slices it was cut into."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import Dataset

__all__ = ["balanced_indices", "BalancedView"]


def balanced_indices(categories: list, sources: list, n: int | None = None, seed: int = 0) -> list[int]:
    """``n`` (default: as many as there are items) item indices drawn with replacement, each item with probability
    1 / (categories x sources in its category x slices of its source): equal weight per category, and per source
    within it. Deterministic for a ``seed``."""
    if len(categories) != len(sources) or not categories:
        raise ValueError(f"need one category and one source per item, got {len(categories)} and {len(sources)}")
    slices = defaultdict(int)
    per_cat = defaultdict(set)
    for c, s in zip(categories, sources):
        slices[(c, s)] += 1
        per_cat[c].add(s)
    w = torch.tensor([1.0 / (len(per_cat) * len(per_cat[c]) * slices[(c, s)]) for c, s in zip(categories, sources)],
                     dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(w, n or len(categories), replacement=True, generator=g).tolist()


class BalancedView(Dataset):
    """``dataset`` seen through a list of indices (:func:`balanced_indices`); passes ``set_epoch`` on."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def set_epoch(self, epoch: int):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getattr__(self, name):  # scale_factor, condition_name, ... of the wrapped dataset
        if name in ("dataset", "indices"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
