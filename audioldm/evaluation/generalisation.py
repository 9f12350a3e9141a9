"""Evaluation that measures generalisation, shared by every recipe.

A *judge* (a small CNN over log-mels, :class:`~audioldm.evaluation.classifier.NoteClassifier`) is trained on the
training split's real clips to tell their categories (caption or a label column) apart. Then, for any set of clips
with the categories they were meant to have (held-out real audio, its vocoder or VAE+vocoder round trip, generated
clips), :func:`score_set` reports
- adherence: the judge's accuracy (on held-out real clips that is the ceiling), beside chance;
- Fréchet distance of the judge's embeddings to the held-out real clips' embeddings;
- memorisation: each clip's distance (judge embedding space) to its nearest training clip, as median and 10th
  percentile; compare generated clips with held-out real clips, which were never trained on;
- diversity: the mean pairwise distance between clips of one category (within-category spread).

The embedder is pluggable: any ``embed(mels [N, n_mels, F]) -> [N, D]`` can replace the judge's embeddings for
FD, memorisation and diversity (e.g. a CLAP audio tower; see ``recipes/audio_folder/run.py --embedder``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from .classifier import (
    NoteClassifier,
    NoteClassifierConfig,
    frechet_distance,
    train_classifier,
)

__all__ = ["Judge", "train_judge", "score_set", "within_category_spread", "nearest_distances", "chance_levels"]


class Judge:
    """A trained category classifier: ``predict(mels) -> list[str]`` and ``embed(mels) -> np.ndarray [N, D]``."""

    def __init__(self, model: NoteClassifier, classes: list[str], embedder=None):
        self.model, self.classes, self.embedder = model.eval(), list(classes), embedder

    @torch.no_grad()
    def predict(self, mels: torch.Tensor, batch_size: int = 64) -> list[str]:
        out = []
        for s in range(0, len(mels), batch_size):
            out += [self.classes[i] for i in self.model(mels[s:s + batch_size].float()).argmax(-1).tolist()]
        return out

    @torch.no_grad()
    def embed(self, mels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        if self.embedder is not None:
            return np.asarray(self.embedder(mels), dtype=np.float64)
        return np.concatenate([self.model.embedding(mels[s:s + batch_size].float()).numpy()
                               for s in range(0, len(mels), batch_size)]).astype(np.float64)


def train_judge(mels: torch.Tensor, categories: list[str], steps: int = 600, seed: int = 0, embedder=None) -> Judge:
    """Train the judge on real clips: mels [N, n_mels, F], one category string per clip."""
    classes = sorted(set(categories))
    if len(classes) < 2:
        raise ValueError(f"the judge needs at least 2 categories in the training split, got {classes}")
    torch.manual_seed(seed)
    model = NoteClassifier(NoteClassifierConfig(classes=classes, n_mels=mels.shape[1]))
    targets = torch.tensor([classes.index(c) for c in categories])
    train_classifier(model, mels.float(), targets, steps=steps, seed=seed)
    return Judge(model, classes, embedder)


def chance_levels(categories: list[str], classes: list[str]) -> dict:
    """What guessing scores on ``categories``: uniform guessing (1 / classes, in accuracy and in balanced accuracy)
    and always answering the most frequent category (its share in accuracy; 1 / categories present in balanced
    accuracy, where no constant answer does better)."""
    counts = Counter(categories)
    return {"uniform": 1.0 / len(classes), "majority": max(counts.values()) / len(categories) if categories else 0.0,
            "balanced_majority": 1.0 / len(counts) if counts else 0.0}


def nearest_distances(emb: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For each row of emb [N, D], the Euclidean distance to its nearest row of ref [M, D]: [N]."""
    d2 = (emb ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * emb @ ref.T
    return np.sqrt(np.clip(d2, 0, None)).min(1)


def within_category_spread(emb: np.ndarray, categories: list[str]) -> dict:
    """Mean pairwise Euclidean distance between embeddings of the same category, per category with >= 2 clips."""
    out = {}
    cats = np.array(categories)
    for c in sorted(set(categories)):
        e = emb[cats == c]
        if len(e) < 2:
            continue
        d = np.sqrt(np.clip((e ** 2).sum(1)[:, None] + (e ** 2).sum(1)[None] - 2 * e @ e.T, 0, None))
        out[c] = float(d[np.triu_indices(len(e), 1)].mean())
    return out


def score_set(judge: Judge, mels: torch.Tensor, categories: list[str], ref_emb: np.ndarray,
              train_emb: np.ndarray) -> dict:
    """Score clips mels [N, n_mels, F] meant to be ``categories``: accuracy and balanced accuracy (the mean of the
    per-category recalls, so a dominant category does not carry it; both over clips whose category the judge
    knows), FD to ``ref_emb`` (held-out real), memorisation (nearest-training-clip distance) and diversity."""
    known = [i for i, c in enumerate(categories) if c in judge.classes]
    pred = judge.predict(mels)
    emb = judge.embed(mels)
    acc = float(np.mean([pred[i] == categories[i] for i in known])) if known else float("nan")
    near = nearest_distances(emb, train_emb)
    spread = within_category_spread(emb, categories)
    per_cat = {c: float(np.mean([pred[i] == c for i in known if categories[i] == c]))
               for c in sorted({categories[i] for i in known})}
    return {"n": len(categories), "n_scored": len(known), "accuracy": acc,
            "balanced_accuracy": float(np.mean(list(per_cat.values()))) if per_cat else float("nan"),
            "frechet_to_heldout_real": frechet_distance(emb, ref_emb) if len(emb) > 1 else float("nan"),
            "nearest_train_distance_median": float(np.median(near)),
            "nearest_train_distance_p10": float(np.percentile(near, 10)),
            "within_category_spread": float(np.mean(list(spread.values()))) if spread else float("nan"),
            "spread_per_category": spread, "accuracy_per_category": per_cat}
