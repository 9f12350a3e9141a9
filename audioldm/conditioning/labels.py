"""The label conditioner: categorical fields (an embedding per value) and numeric fields (Fourier features of the value
normalised to its range); a missing field uses that field's learned null embedding, an unknown value is an error
listing the valid ones. With ``parse_prompts`` it also reads text prompts, parsed into labels (prompts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConditionError
from .base import LearnedConditioner

__all__ = ["LabelField", "fields_from_labels", "LabelConditionerConfig", "LabelConditioner"]


@dataclass
class LabelField:
    name: str
    kind: str = "categorical"  # "categorical" | "numeric"
    values: list[str] = field(default_factory=list)  # categorical: the known values
    low: float = 0.0  # numeric: the valid (and normalisation) range
    high: float = 1.0
    aliases: dict = field(default_factory=dict)  # prompt words -> value (e.g. "sax": "saxophone", "loud": 120)
    note_names: bool = False  # numeric: prompts may give MIDI pitches as note names (C4 = 60)

    def __post_init__(self):
        if self.kind not in ("categorical", "numeric"):
            raise ValueError(f"LabelField {self.name!r}: kind must be categorical or numeric, got {self.kind!r}")
        if self.kind == "categorical" and not self.values:
            raise ValueError(f"LabelField {self.name!r}: a categorical field needs its values")
        if self.kind == "numeric" and not self.low < self.high:
            raise ValueError(f"LabelField {self.name!r}: need low < high, got {self.low}, {self.high}")


def fields_from_labels(labels: list[dict], names: list[str]) -> list[LabelField]:
    """Label fields for ``names`` from training rows' label dicts: numeric when every value is a number and they are
    not all equal (range = the values' min and max), categorical otherwise (values sorted, as strings). A name no
    row carries is a ValueError naming it."""
    fields = []
    for name in names:
        vals = [d[name] for d in labels if name in d]
        if not vals:
            raise ValueError(f"label field {name!r} is in no training row")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and min(vals) < max(vals):
            fields.append(LabelField(name, "numeric", low=float(min(vals)), high=float(max(vals))))
        else:
            fields.append(LabelField(name, "categorical", values=sorted({str(v) for v in vals})))
    return fields


@dataclass
class LabelConditionerConfig:
    fields: list[LabelField] = field(default_factory=list)
    dim: int = 128  # per-field embedding and token width
    pooled_dim: int = 128
    tokens: bool = False  # also return the field embeddings as a token sequence for cross-attention
    parse_prompts: bool = False  # accept text prompts, parsed into labels (prompt_labels.py)


def _fourier(x: torch.Tensor, n: int) -> torch.Tensor:
    """x in [0, 1] [B] -> [B, 2n] sin/cos features at frequencies 2^k * pi."""
    f = (2.0 ** torch.arange(n, device=x.device, dtype=torch.float32)) * math.pi
    a = x[:, None].float() * f[None]
    return torch.cat([a.sin(), a.cos()], -1)


class LabelConditioner(LearnedConditioner):
    def __init__(self, config: LabelConditionerConfig):
        super().__init__()
        self.config = c = config
        if not c.fields:
            raise ValueError("LabelConditionerConfig.fields is empty")
        self.embeddings = nn.ModuleDict()
        for f in c.fields:
            if f.kind == "categorical":
                self.embeddings[f.name] = nn.Embedding(len(f.values) + 1, c.dim)  # index 0 = null
            else:
                self.embeddings[f.name] = nn.Linear(16, c.dim)
        self.null = nn.Parameter(torch.zeros(len(c.fields), c.dim))
        self.proj = nn.Sequential(nn.Linear(c.dim * len(c.fields), c.pooled_dim), nn.SiLU(),
                                  nn.Linear(c.pooled_dim, c.pooled_dim))
        self._index = {f.name: {v: i + 1 for i, v in enumerate(f.values)} for f in c.fields if f.kind == "categorical"}

    def describe(self) -> str:
        parts = []
        for f in self.config.fields:
            parts.append(f"{f.name}: one of {f.values}" if f.kind == "categorical"
                         else f"{f.name}: a number in [{f.low:g}, {f.high:g}]")
        return "; ".join(parts)

    def prompt_report(self, prompt: str) -> dict:
        """What the model reads of ``prompt``: the labels it is parsed into."""
        return {"labels": self.parse([prompt])[0]}

    def parse(self, prompts: list[str]) -> list[dict]:
        """Text prompts -> label dicts (see prompt_labels.py); needs ``parse_prompts``."""
        from .prompts import parse_prompt
        if not self.config.parse_prompts:
            raise ConditionError(f"this label model does not read text prompts; pass labels ({self.describe()})")
        return [parse_prompt(p, self.config.fields) for p in prompts]

    def _field_embeddings(self, labels: list[dict]) -> torch.Tensor:
        """[B, n_fields, dim]."""
        dev = self.null.device
        known = {f.name for f in self.config.fields}
        for d in labels:
            extra = sorted(set(d) - known)
            if extra:
                raise ConditionError(f"unknown label field(s) {extra}; this model knows {self.describe()}")
        out = []
        for j, f in enumerate(self.config.fields):
            present = torch.tensor([d.get(f.name) is not None for d in labels], device=dev)
            if f.kind == "categorical":
                idx = []
                for d in labels:
                    v = d.get(f.name)
                    if v is None:
                        idx.append(0)
                        continue
                    key = str(v)
                    if key not in self._index[f.name]:
                        raise ConditionError(f"unknown {f.name} {v!r}; valid values: {f.values}")
                    idx.append(self._index[f.name][key])
                e = self.embeddings[f.name](torch.tensor(idx, device=dev))
            else:
                vals = []
                for d in labels:
                    v = d.get(f.name)
                    if v is None:
                        vals.append(f.low)
                        continue
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                        raise ConditionError(f"{f.name} must be a number in [{f.low:g}, {f.high:g}], got {v!r}")
                    if not f.low <= v <= f.high:
                        raise ConditionError(f"{f.name}={v:g} is out of range; valid: [{f.low:g}, {f.high:g}]")
                    vals.append(float(v))
                x = (torch.tensor(vals, device=dev) - f.low) / (f.high - f.low)
                e = self.embeddings[f.name](_fourier(x, 8))
            out.append(torch.where(present[:, None], e, self.null[j][None].expand_as(e)))
        return torch.stack(out, 1)

    def encode(self, emb: torch.Tensor) -> dict:
        cond = {"pooled": self.proj(emb.flatten(1))}
        if self.config.tokens:
            cond["tokens"] = emb
            cond["mask"] = torch.ones(emb.shape[:2], dtype=torch.bool, device=emb.device)
        return cond

    def forward(self, labels: list[dict]) -> dict:
        return self.encode(self._field_embeddings(labels))

    def null_condition(self, batch_size: int) -> dict:
        return self.encode(self.null[None].expand(batch_size, -1, -1))


# ---- learned text ------------------------------------------------------------------------------------------------
