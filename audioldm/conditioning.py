"""Conditioners: turn a batch of label dicts or prompts into ``{"pooled": [B, D], "tokens": [B, L, Dt], "mask": [B, L]}``
(tokens and mask only when the conditioner has a sequence), give the null condition for classifier-free guidance, and
drop conditions during training.

- :class:`LabelConditioner`: categorical fields (embedding per value) and numeric fields (Fourier features of the
  value normalised to its range); a missing field uses that field's learned null embedding, an unknown value is an
  error listing the valid ones.
- :class:`TextConditioner`: a learned word-level (vocabulary from the training captions) or byte-level tokenizer and a
  small transformer encoder, trained jointly with the U-Net. The null condition is the empty prompt.
- :class:`PretrainedTextConditioner` (conditioning_pretrained.py): a frozen transformers text encoder.
- :class:`JointConditioner` (conditioning_joint.py): a text conditioner beside a label conditioner.
Saving and loading any of them by kind: conditioner_io.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConditionError, UnknownWordsWarning  # noqa: F401  (re-exported: they were defined here)

__all__ = ["LabelField", "fields_from_labels", "LabelConditionerConfig", "LabelConditioner", "TextConditionerConfig", "TextConditioner",
           "ConditionError", "UnknownWordsWarning", "prompt_reports", "drop_conditions", "concat_conditions", "pad_tokens", "WordTokenizer", "ByteTokenizer"]


def prompt_reports(conditioner, prompts: list[str], warn: bool = True) -> list[dict]:
    """Per prompt, what the conditioner actually reads: parsed ``labels`` (label models that read prompts),
    ``tokens`` kept + ``unknown_words`` (learned word-level text encoders) or subword ``tokens`` (pretrained
    encoders; no vocabulary check). With ``warn``, unknown words give an :class:`UnknownWordsWarning` (on stderr)
    naming them, and saying the output is unconditioned when no word was known."""
    import warnings

    out = []
    for p in prompts:
        if isinstance(conditioner, LabelConditioner):
            rep = {"labels": conditioner.parse([p])[0]}
        elif hasattr(conditioner, "prompt_report"):
            rep = conditioner.prompt_report(p)
        else:
            rep = {}
        unknown = rep.get("unknown_words") or []
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


class LabelConditioner(nn.Module):
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

    @property
    def pooled_dim(self) -> int:
        return self.config.pooled_dim

    @property
    def token_dim(self) -> int | None:
        return self.config.dim if self.config.tokens else None

    def describe(self) -> str:
        parts = []
        for f in self.config.fields:
            parts.append(f"{f.name}: one of {f.values}" if f.kind == "categorical"
                         else f"{f.name}: a number in [{f.low:g}, {f.high:g}]")
        return "; ".join(parts)

    def parse(self, prompts: list[str]) -> list[dict]:
        """Text prompts -> label dicts (see prompt_labels.py); needs ``parse_prompts``."""
        from .prompt_labels import parse_prompt
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

_WORD = re.compile(r"[a-z]+[#b]?\d*|\d+|[^\sa-z\d]")


class WordTokenizer:
    """Lower-cased word-level tokens (note names like "c#4" stay one token); ids: 0 pad, 1 bos, 2 unk."""

    SPECIAL = ["<pad>", "<bos>", "<unk>"]

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts, min_count: int = 1) -> "WordTokenizer":
        counts = {}
        for t in texts:
            for w in _WORD.findall(t.lower()):
                counts[w] = counts.get(w, 0) + 1
        return cls(cls.SPECIAL + sorted(w for w, n in counts.items() if n >= min_count))

    def encode(self, text: str) -> list[int]:
        return [1] + [self.index.get(w, 2) for w in _WORD.findall(text.lower())]

    def split(self, text: str) -> tuple[list[str], list[str]]:
        """(words in the vocabulary, words outside it), in prompt order."""
        words = _WORD.findall(text.lower())
        return [w for w in words if w in self.index], [w for w in words if w not in self.index]


class ByteTokenizer:
    """UTF-8 bytes + 3 (ids: 0 pad, 1 bos, 2 unused)."""

    vocab = [None] * 259

    def encode(self, text: str) -> list[int]:
        return [1] + [b + 3 for b in text.encode("utf-8")]


@dataclass
class TextConditionerConfig:
    tokenizer: str = "word"  # "word" | "byte"
    vocab: list[str] = field(default_factory=list)  # word tokenizer vocabulary (saved with the model)
    dim: int = 128
    layers: int = 2
    heads: int = 4
    max_tokens: int = 32
    pooled_dim: int = 128
    tokens: bool = True


class TextConditioner(nn.Module):
    def __init__(self, config: TextConditionerConfig):
        super().__init__()
        self.config = c = config
        if c.tokenizer == "word":
            if not c.vocab:
                raise ValueError("TextConditionerConfig.vocab is empty: build it with WordTokenizer.from_texts")
            self.tokenizer = WordTokenizer(c.vocab)
            n = len(c.vocab)
        elif c.tokenizer == "byte":
            self.tokenizer, n = ByteTokenizer(), 259
        else:
            raise ValueError(f"TextConditionerConfig.tokenizer must be 'word' or 'byte', got {c.tokenizer!r}")
        self.token_embedding = nn.Embedding(n, c.dim, padding_idx=0)
        self.position_embedding = nn.Parameter(torch.randn(c.max_tokens, c.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(c.dim, c.heads, 4 * c.dim, dropout=0.0, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(c.dim)
        self.pool = nn.Linear(c.dim, c.pooled_dim)

    @property
    def pooled_dim(self) -> int:
        return self.config.pooled_dim

    @property
    def token_dim(self) -> int | None:
        return self.config.dim if self.config.tokens else None

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, L], mask [B, L] (True = real token); prompts longer than max_tokens are truncated."""
        for p in prompts:
            if not isinstance(p, str):
                raise ConditionError(f"prompts must be strings, got {p!r}")
        # words outside the vocabulary are dropped, not mapped to <unk> (never seen in training): a prompt of only
        # unknown words then reads as the empty prompt, the null condition, and prompt_report() says so
        seqs = [[t for t in self.tokenizer.encode(p) if t != 2][: self.config.max_tokens] for p in prompts]
        L = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), L, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        dev = self.position_embedding.device
        return ids.to(dev), (ids != 0).to(dev)

    def forward(self, prompts: list[str]) -> dict:
        ids, mask = self.tokenize(prompts)
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        x = self.final_norm(self.encoder(x, src_key_padding_mask=~mask))
        pooled = self.pool((x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
        cond = {"pooled": pooled}
        if self.config.tokens:
            cond["tokens"], cond["mask"] = x, mask
        return cond

    def null_condition(self, batch_size: int) -> dict:
        return self([""] * batch_size)

    def prompt_report(self, prompt: str) -> dict:
        """What the encoder reads of ``prompt``: ``{"tokens": words kept, "unknown_words": words dropped}`` for the
        word tokenizer; the byte tokenizer reads every byte (``tokens`` None, no unknown words)."""
        if not isinstance(self.tokenizer, WordTokenizer):
            return {"tokens": None, "unknown_words": []}
        kept, unknown = self.tokenizer.split(prompt)
        return {"tokens": kept[: self.config.max_tokens - 1], "unknown_words": unknown}


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
