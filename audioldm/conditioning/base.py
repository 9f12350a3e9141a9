"""The conditioner contract, shared by every kind: a conditioner turns a batch of label dicts or prompts into
``{"pooled": [B, D], "tokens": [B, L, Dt], "mask": [B, L]}`` (tokens and mask only when it has a sequence), gives the
null condition for classifier-free guidance (``null_condition(B)``), and reports what it read of each prompt. Here:
the helpers every kind and the U-Net stage use on such dicts (padding, concatenation, condition dropout) and
:func:`prompt_reports`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnknownWordsWarning

__all__ = ["LearnedConditioner", "prompt_reports", "drop_conditions", "concat_conditions", "pad_tokens"]


class LearnedConditioner(nn.Module):
    """What the conditioners trained here (labels.py, text.py) share: widths read from their ``config``
    (``pooled_dim``; ``dim`` for the token sequence, when ``tokens``)."""

    @property
    def pooled_dim(self) -> int:
        return self.config.pooled_dim

    @property
    def token_dim(self) -> int | None:
        return self.config.dim if self.config.tokens else None


def prompt_reports(conditioner, prompts: list[str], warn: bool = True) -> list[dict]:
    """Per prompt, what the conditioner actually reads: parsed ``labels`` (label models that read prompts),
    ``tokens`` kept + ``unknown_words`` (learned word-level text encoders) or subword ``tokens`` (pretrained
    encoders; no vocabulary check). With ``warn``, unknown words give an :class:`UnknownWordsWarning` (on stderr)
    naming them, and saying the output is unconditioned when no word was known."""
    import warnings

    out = []
    for p in prompts:
        if hasattr(conditioner, "prompt_report"):
            rep = conditioner.prompt_report(p)
        else:
            rep = {}
        unknown = rep.get("unknown_words") or []
        if warn and isinstance(p, str) and not p.strip():
            warnings.warn(UnknownWordsWarning(f"empty prompt {p!r}: the output is unconditioned"), stacklevel=3)
        if warn and rep.get("truncated"):
            warnings.warn(UnknownWordsWarning(
                f"prompt {p[:40]!r}...: longer than the text encoder reads; its last {rep['truncated']} token(s) "
                f"are ignored"), stacklevel=3)
        if warn and unknown:
            if rep.get("tokens"):
                msg = (f"prompt {p!r}: {len(unknown)} word(s) outside the model's vocabulary are ignored: "
                       f"{', '.join(map(repr, unknown))}")
            else:
                msg = (f"prompt {p!r}: no word is in the model's vocabulary ({', '.join(map(repr, unknown))}); "
                       f"the output is unconditioned")
            warnings.warn(UnknownWordsWarning(msg), stacklevel=3)
        out.append(rep)
    return out


def pad_tokens(cond: dict, length: int) -> dict:
    """Right-pad a condition's token sequence [B, L, D] (and mask [B, L], with False) to ``length`` tokens."""
    out = dict(cond)
    if "tokens" in cond and cond["tokens"].shape[1] < length:
        n = length - cond["tokens"].shape[1]
        out["tokens"] = F.pad(cond["tokens"], (0, 0, 0, n))
        out["mask"] = F.pad(cond["mask"], (0, n), value=False)
    return out


def concat_conditions(a: dict, b: dict) -> dict:
    """Stack two conditions along the batch (token sequences padded to a common length)."""
    L = max(a["tokens"].shape[1], b["tokens"].shape[1]) if "tokens" in a else 0
    a, b = pad_tokens(a, L), pad_tokens(b, L)
    return {k: torch.cat([a[k], b[k].to(a[k].dtype)]) for k in a}


def drop_conditions(cond: dict, null: dict, drop: torch.Tensor) -> dict:
    """Replace rows where ``drop`` [B] is True by the null condition (classifier-free guidance training). Token
    sequences of different lengths are right-padded (and masked) to a common length first."""
    L = max(cond["tokens"].shape[1], null["tokens"].shape[1]) if "tokens" in cond else 0
    cond, null = pad_tokens(cond, L), pad_tokens(null, L)
    keep = ~drop
    return {k: torch.where(keep.view(-1, *([1] * (v.dim() - 1))), v, null[k].to(v.dtype)) for k, v in cond.items()}
