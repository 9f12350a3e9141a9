"""Saving and loading any conditioner as a folder (``config.json`` with its "kind" + safetensors weights): labels,
learned text, a pretrained transformers text model (saved as it is), or a joint one (``text/`` and ``labels/``
sub-folders, each a conditioner folder). Loading picks the class from "kind"; nothing is unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_folder
from ..weights import WeightsError, load_component, save_component
from . import (
    LabelConditioner,
    LabelConditionerConfig,
    TextConditioner,
    TextConditionerConfig,
)
from .joint import JointConditioner

__all__ = ["save_conditioner", "load_conditioner"]

KINDS = ("label_conditioner", "text_conditioner", "pretrained_text", "joint")


def save_conditioner(folder, conditioner: nn.Module, overwrite: bool = False, dtype: torch.dtype | None = None) -> Path:
    """Write a conditioner folder atomically (weights stored as ``dtype`` when given); see :func:`load_conditioner`."""
    if isinstance(conditioner, LabelConditioner):
        return save_component(folder, conditioner, conditioner.config, "label_conditioner", overwrite=overwrite,
                              dtype=dtype)
    if isinstance(conditioner, TextConditioner):
        return save_component(folder, conditioner, conditioner.config, "text_conditioner", overwrite=overwrite,
                              dtype=dtype)
    if isinstance(conditioner, JointConditioner):
        with atomic_folder(folder, overwrite) as tmp:
            save_conditioner(tmp / "text", conditioner.text, dtype=dtype)
            save_conditioner(tmp / "labels", conditioner.labels, dtype=dtype)
            (tmp / "config.json").write_text(json.dumps({"kind": "joint", "text": "text", "labels": "labels"},
                                                        indent=2) + "\n")
        return Path(folder)
    if hasattr(conditioner, "save_pretrained"):  # PretrainedTextConditioner
        return conditioner.save_pretrained(folder, overwrite=overwrite)
    raise TypeError(f"cannot save a conditioner of type {type(conditioner).__name__}")


def load_conditioner(folder, device=None) -> nn.Module:
    """Load a conditioner folder written by :func:`save_conditioner`, whichever kind its config.json names."""
    folder = Path(folder)
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise WeightsError(f"{cfg}: missing conditioner config")
    try:
        kind = json.loads(cfg.read_text(encoding="utf-8")).get("kind")
    except (json.JSONDecodeError, AttributeError) as e:
        raise WeightsError(f"{cfg}: invalid JSON ({e})") from None
    if kind == "label_conditioner":
        return load_component(folder, LabelConditioner, LabelConditionerConfig, kind, device=device)
    if kind == "text_conditioner":
        return load_component(folder, TextConditioner, TextConditionerConfig, kind, device=device)
    if kind == "pretrained_text":
        from .pretrained import (
            PretrainedTextConditioner,  # imports transformers: only when needed
        )
        return PretrainedTextConditioner.from_folder(folder, device=device)
    if kind == "joint":
        labels = load_conditioner(folder / "labels", device=device)
        if not isinstance(labels, LabelConditioner):
            raise WeightsError(f"{folder / 'labels'}: expected a label conditioner, found {type(labels).__name__}")
        try:
            return JointConditioner(load_conditioner(folder / "text", device=device), labels)
        except ValueError as e:
            raise WeightsError(f"{folder}: {e}") from None
    raise WeightsError(f"{cfg}: \"kind\" is {kind!r}; expected one of {', '.join(KINDS)}")
