"""The one train / held-out split: by SHA-1 of a group key (a clip's manifest path, its source file, or a column),
stable across runs, machines and row order. A manifest's own ``split`` column, when every row has one, wins."""

from __future__ import annotations

import hashlib

from .manifest import Clip

__all__ = ["hash_split", "split_by_hash", "train_valid"]


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2 ** 64


def hash_split(groups, valid_fraction: float = 0.1) -> set[str]:
    """The held-out subset of ``groups`` (strings): those whose hash falls below ``valid_fraction``. With two or more
    groups and a fraction above 0, at least one is held out and at least one is kept for training."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    groups = sorted({str(g) for g in groups})
    h = {g: _unit(g) for g in groups}
    valid = {g for g in groups if h[g] < valid_fraction}
    if not valid and len(groups) >= 2 and valid_fraction > 0:
        valid = {min(groups, key=h.get)}
    if len(valid) == len(groups) and len(groups) >= 2:
        valid.discard(max(groups, key=h.get))
    return valid


def split_by_hash(clips: list[Clip], valid_fraction: float = 0.1) -> tuple[list[Clip], list[Clip]]:
    """(train, valid) clips, grouped by manifest path (:func:`hash_split`)."""
    valid = hash_split([c.key for c in clips], valid_fraction)
    return [c for c in clips if c.key not in valid], [c for c in clips if c.key in valid]


def train_valid(clips: list[Clip], valid_fraction: float = 0.1) -> tuple[list[Clip], list[Clip]]:
    """(train, valid): the ``split`` column ("train" / "valid") when every clip has one, else :func:`split_by_hash`."""
    if clips and all(c.labels.get("split") in ("train", "valid") for c in clips):
        return [c for c in clips if c.labels["split"] == "train"], [c for c in clips if c.labels["split"] == "valid"]
    return split_by_hash(clips, valid_fraction)
