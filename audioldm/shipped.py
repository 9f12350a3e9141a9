"""Folders shipped inside the package (``audioldm/pretrained/NAME``) and references to them.

A model folder's ``model_index.json`` may name a shipped component instead of carrying its own copy, so the package
holds the shared vocoder once: ``"components": {"vocoder": "shipped:vocoder-16k"}``. ``AudioLDM.save_pretrained``
writes a standalone copy unless asked for the reference (``vocoder_ref``)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PRETRAINED", "PREFIX", "UNIVERSAL_VOCODER", "shipped_path", "component_path"]

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
PREFIX = "shipped:"
UNIVERSAL_VOCODER = "vocoder-16k"  # the 16 kHz vocoder slot every shipped model names (docs/vocoder.md)


def shipped_path(name: str) -> Path:
    """``audioldm/pretrained/NAME``; a name that is not one plain folder name, or is not shipped, is an error."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or ".." in name:
        raise ValueError(f"{name!r}: not the name of a shipped folder (one plain folder name expected)")
    folder = PRETRAINED / name
    if not folder.is_dir():
        known = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) if PRETRAINED.is_dir() else []
        raise FileNotFoundError(f"{folder}: no shipped folder {name!r} in this installation; shipped: {known}")
    return folder


def component_path(folder: Path, entry: str) -> Path:
    """Where a model folder's component lives: ``folder / entry``, or the shipped folder ``shipped:NAME`` names."""
    if isinstance(entry, str) and entry.startswith(PREFIX):
        return shipped_path(entry[len(PREFIX):])
    return Path(folder) / entry
