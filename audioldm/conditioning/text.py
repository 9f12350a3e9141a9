"""The learned text conditioner: a word-level (vocabulary from the training captions) or byte-level tokenizer and a
small transformer encoder, trained jointly with the U-Net. The null condition is the empty prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConditionError, UnknownWordsWarning  # noqa: F401
from .base import LearnedConditioner

__all__ = ["WordTokenizer", "ByteTokenizer", "TextConditionerConfig", "TextConditioner"]


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


class TextConditioner(LearnedConditioner):
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
        n = len([t for t in self.tokenizer.encode(prompt) if t != 2])
        cut = {"truncated": n - self.config.max_tokens} if n > self.config.max_tokens else {}
        if not isinstance(self.tokenizer, WordTokenizer):
            return {"tokens": None, "unknown_words": [], **cut}
        kept, unknown = self.tokenizer.split(prompt)
        return {"tokens": kept[: self.config.max_tokens - 1], "unknown_words": unknown, **cut}
