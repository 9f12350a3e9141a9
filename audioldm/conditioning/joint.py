"""Text and labels together (``--conditioning both``): one text conditioner (learned or pretrained) beside one label
conditioner.

The condition of a sample is the text's tokens followed by one token per label field (both of one width, so the
U-Net's cross-attention reads them as one sequence), and the two pooled vectors side by side. Either part may be
absent for a sample (``None``): that part is then its own null condition. The U-Net stage drops each part on its own
during training (``LDMStage(part_drop=...)``), so one model answers a caption alone, labels alone, or both.
"""

from __future__ import annotations

import torch
from torch import nn

from . import ConditionError, LabelConditioner, drop_conditions, prompt_reports

__all__ = ["JointConditioner"]


class JointConditioner(nn.Module):
    """``forward(items)`` with items ``[{"prompt": str | None, "labels": dict | None}, ...]`` -> a condition dict:
    tokens [B, L_text + n_fields, D], mask [B, L_text + n_fields], pooled [B, text.pooled_dim + labels.pooled_dim]."""

    def __init__(self, text: nn.Module, labels: LabelConditioner):
        super().__init__()
        if text.token_dim is None:
            raise ValueError("the text part of a joint conditioner must return tokens (token_dim is None)")
        if not isinstance(labels, LabelConditioner) or not labels.config.tokens:
            raise ValueError("the label part of a joint conditioner must be a LabelConditioner with tokens=True")
        if labels.token_dim != text.token_dim:
            raise ValueError(f"token widths differ: text {text.token_dim}, labels {labels.token_dim}; build the "
                             f"label conditioner with dim={text.token_dim}")
        self.text, self.labels = text, labels

    @property
    def pooled_dim(self) -> int:
        return self.text.pooled_dim + self.labels.pooled_dim

    @property
    def token_dim(self) -> int:
        return self.text.token_dim

    @property
    def config(self):  # the label fields, for callers that filter label dicts to what the model knows
        return self.labels.config

    def describe(self) -> str:
        return f"a text prompt and/or labels ({self.labels.describe()})"

    @staticmethod
    def _join(t: dict, lab: dict) -> dict:
        return {"tokens": torch.cat([t["tokens"], lab["tokens"].to(t["tokens"].dtype)], 1),
                "mask": torch.cat([t["mask"], lab["mask"]], 1),
                "pooled": torch.cat([t["pooled"], lab["pooled"].to(t["pooled"].dtype)], -1)}

    def forward(self, items: list[dict]) -> dict:
        for it in items:
            if not isinstance(it, dict) or (it.get("prompt") is None and it.get("labels") is None):
                raise ConditionError(f"each request needs a prompt, labels or both; got {it!r}")
        n = len(items)
        dev = self.labels.null.device
        no_text = torch.tensor([it.get("prompt") is None for it in items], device=dev)
        no_labels = torch.tensor([it.get("labels") is None for it in items], device=dev)
        t = drop_conditions(self.text([it.get("prompt") or "" for it in items]), self.text.null_condition(n),
                            no_text)
        lab = drop_conditions(self.labels([it.get("labels") or {} for it in items]), self.labels.null_condition(n),
                              no_labels)
        return self._join(t, lab)

    def null_condition(self, batch_size: int) -> dict:
        return self._join(self.text.null_condition(batch_size), self.labels.null_condition(batch_size))

    def reads(self, prompts: list, labels: list, warn: bool = True) -> list[dict]:
        """What the model is asked per sample: the tokens its text part keeps (see prompt_reports) and the labels."""
        texts = [p for p in prompts if p is not None]
        reps = iter(prompt_reports(self.text, texts, warn=warn) if texts else [])
        return [{**(next(reps) if p is not None else {"tokens": None}), "labels": lab}
                for p, lab in zip(prompts, labels)]
