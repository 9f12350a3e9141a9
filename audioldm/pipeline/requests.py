"""What a caller asks a model for, turned into per-sample requests and condition dicts, for each kind of conditioner:
``"text"`` (a learned or pretrained text encoder: prompts), ``"labels"`` (a label conditioner: label dicts, or
prompts it parses into labels) and ``"both"`` (a joint conditioner: a prompt, labels, or both per sample). The
pipeline and the editing modes call these; the error messages name the model and what it reads.
"""

from __future__ import annotations

import torch

from ..conditioning import ConditionError, LabelConditioner, prompt_reports
from ..conditioning.joint import JointConditioner
from ..errors import UnknownWordsWarning

__all__ = ["conditioning_kind", "reads_prompts", "normalise_requests", "build_conditions", "request_reads"]


def conditioning_kind(conditioner) -> str:
    """"labels", "both" or "text"."""
    if isinstance(conditioner, LabelConditioner):
        return "labels"
    return "both" if isinstance(conditioner, JointConditioner) else "text"


def reads_prompts(conditioner) -> bool:
    """Text and joint models, and label models whose conditioner parses prompts into labels."""
    return conditioning_kind(conditioner) != "labels" or conditioner.config.parse_prompts


def _as_list(x, kind: type, what: str) -> list:
    items = [x] if isinstance(x, kind) else list(x)
    if not items or not all(isinstance(i, kind) for i in items):
        raise ConditionError(f"{what} must be a {kind.__name__} or a non-empty list of {kind.__name__}s")
    return items


def normalise_requests(conditioner, name: str, prompt=None, labels=None, num_per_prompt: int = 1) -> tuple[list, list]:
    """Single or list prompts / labels -> per-sample lists (prompts, labels), each ``num_per_prompt`` times.
    Entries a model does not read are None; a label model that reads prompts has them parsed into labels here."""
    kind = conditioning_kind(conditioner)
    if not isinstance(num_per_prompt, int) or num_per_prompt < 1:
        raise ConditionError(f"num_per_prompt must be a positive integer, got {num_per_prompt!r}")
    if kind == "both":
        if prompt is None and labels is None:
            raise ConditionError(f"{name} reads a prompt, labels or both; pass prompt= and/or labels= "
                                 f"({conditioner.labels.describe()})")
        ps = _as_list(prompt, str, "prompt") if prompt is not None else None
        ls = _as_list(labels, dict, "labels") if labels is not None else None
        n = max(len(ps or [None]), len(ls or [None]))
        if ps is not None and ls is not None and len(ps) != len(ls) and 1 not in (len(ps), len(ls)):
            raise ConditionError(f"{len(ps)} prompts but {len(ls)} label dicts; pass as many of each, or one")
        ps = (ps * n if len(ps) == 1 else ps) if ps is not None else [None] * n
        ls = (ls * n if len(ls) == 1 else ls) if ls is not None else [None] * n
        rep = lambda xs: [x for x in xs for _ in range(num_per_prompt)]  # noqa: E731
        return rep(ps), rep(ls)
    if (prompt is None) == (labels is None):
        raise ConditionError("pass exactly one of prompt= (text models) or labels= (label models)")
    if labels is not None:
        if kind != "labels":
            raise ConditionError(f"{name} is text-conditioned; pass prompt= instead of labels=")
        items = _as_list(labels, dict, "labels")
    else:
        if not reads_prompts(conditioner):
            raise ConditionError(f"{name} is label-conditioned; pass labels= (fields: "
                                 f"{[f.name for f in conditioner.config.fields]}) instead of prompt=")
        items = _as_list(prompt, str, "prompt")
    items = [x for x in items for _ in range(num_per_prompt)]
    if labels is not None:
        _warn_if_empty(items)
        return [None] * len(items), items
    if kind == "labels":
        parsed = conditioner.parse(items)
        _warn_if_empty(parsed)
        return items, parsed
    return items, [None] * len(items)


def _warn_if_empty(label_dicts: list) -> None:
    """An empty label dict (or a prompt that names no field) asks for nothing: say that the output is unconditioned."""
    import warnings

    if any(isinstance(d, dict) and not d for d in label_dicts):
        warnings.warn(UnknownWordsWarning("empty labels: no field is given, so the output is unconditioned"),
                      stacklevel=4)


@torch.no_grad()
def build_conditions(conditioner, prompts: list, labels: list, negative_prompt=None,
                     negative_labels=None) -> tuple[dict, dict]:
    """(condition, unconditional or negative condition) for one batch of requests."""
    kind, n = conditioning_kind(conditioner), len(prompts)
    if kind == "both":
        cond = conditioner([{"prompt": p, "labels": lab} for p, lab in zip(prompts, labels)])
        if negative_prompt is None and negative_labels is None:
            return cond, conditioner.null_condition(n)
        return cond, conditioner([{"prompt": negative_prompt, "labels": negative_labels}] * n)
    cond = conditioner(labels) if kind == "labels" else conditioner(prompts)
    if negative_prompt is not None:
        if not reads_prompts(conditioner):
            raise ConditionError("negative_prompt needs a model that reads prompts; use negative_labels=")
        neg = conditioner.parse([negative_prompt]) * n if kind == "labels" else [negative_prompt] * n
        return cond, conditioner(neg)
    if negative_labels is not None:
        if kind != "labels":
            raise ConditionError("negative_labels needs a label-conditioned model; use negative_prompt=")
        return cond, conditioner([negative_labels] * n)
    return cond, conditioner.null_condition(n)


def request_reads(conditioner, prompts: list, labels: list) -> list[dict]:
    """Per sample, what the model was actually asked: its labels (parsed or given) and/or the tokens a text encoder
    kept and the words it dropped (a word-level encoder warns about those on stderr)."""
    kind = conditioning_kind(conditioner)
    if kind == "labels":
        return [{"labels": lab} for lab in labels]
    if kind == "both":
        return conditioner.reads(prompts, labels)
    return prompt_reports(conditioner, prompts)
