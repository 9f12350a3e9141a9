"""The folders shipped inside the package (``audioldm/pretrained/NAME``: the models, the universal vocoder, the GM
judge), how to find them (:func:`default_model`, :func:`shipped_path`, :func:`gm_judge_path`), and references to them.

A model folder's ``model_index.json`` may name a shipped component instead of carrying its own copy, so the package
holds the shared vocoder once: ``"components": {"vocoder": "shipped:vocoder-16k"}``. ``AudioLDM.save_pretrained``
writes a standalone copy unless asked for the reference (``vocoder_ref``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["PRETRAINED", "PREFIX", "UNIVERSAL_VOCODER", "DEFAULT_MODEL", "TEACHER", "shipped_path", "shipped_model",
           "component_path", "default_model", "gm_judge_path"]

PRETRAINED = Path(__file__).resolve().parent
PREFIX = "shipped:"
UNIVERSAL_VOCODER = "vocoder-16k"  # the 16 kHz vocoder slot every shipped model names (docs/vocoder.md)
DEFAULT_MODEL = "gm-notes-fast"  # the 2-evaluation student
TEACHER = "gm-notes"  # its teacher: 25 steps with classifier-free guidance
GM_JUDGE = "gm-judge"


def shipped_model(name: str) -> Path | None:
    """The shipped model folder ``audioldm/pretrained/NAME``, or None if this installation does not have it."""
    folder = PRETRAINED / name
    return folder if (folder / "model_index.json").is_file() else None


def default_model() -> str | None:
    """The default model: $AUDIOLDM_MODEL when set, else the shipped 2-evaluation student
    (audioldm/pretrained/gm-notes-fast), else its teacher (audioldm/pretrained/gm-notes) if only that one is there."""
    env = os.environ.get("AUDIOLDM_MODEL")
    if env:
        return env
    folder = shipped_model(DEFAULT_MODEL) or shipped_model(TEACHER)
    return str(folder) if folder else None


def gm_judge_path() -> Path:
    """The shipped GM judge (17 families, 129 programs: audioldm/evaluation/gm_judge.py)."""
    return PRETRAINED / GM_JUDGE


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
