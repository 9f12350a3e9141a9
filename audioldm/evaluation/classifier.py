"""A small note classifier for evaluation: log-mel [B, n_mels, F] -> instrument logits, with a pooled embedding
[B, dim] for Fréchet distances. Trained by recipes on real renders kept out of the generator's training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["NoteClassifierConfig", "NoteClassifier", "fit_classifier", "time_shift", "train_classifier", "frechet_distance"]


@dataclass
class NoteClassifierConfig:
    classes: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    embed_dim: int = 64
    n_mels: int = 64


def conv_trunk(channels: list[int]) -> nn.Sequential:
    """Conv-BN-ReLU-maxpool blocks over a log-mel image [B, 1, n_mels, F], one per entry of ``channels``."""
    layers, ch = [], 1
    for out in channels:
        layers += [nn.Conv2d(ch, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
        ch = out
    return nn.Sequential(*layers)


class NoteClassifier(nn.Module):
    def __init__(self, config: NoteClassifierConfig):
        super().__init__()
        self.config = c = config
        if not c.classes:
            raise ValueError("NoteClassifierConfig.classes is empty")
        self.features = conv_trunk(c.channels)
        self.embed = nn.Linear(c.channels[-1], c.embed_dim)
        self.head = nn.Linear(c.embed_dim, len(c.classes))

    def embedding(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> [B, embed_dim] (mean+max pooled over mel and time)."""
        x = self.features(((mel + 5.0) / 3.0).unsqueeze(1))
        x = x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))
        return torch.relu(self.embed(x))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(mel))


def fit_classifier(net: nn.Module, mels: torch.Tensor, targets, steps: int, batch_size: int, lr: float,
                   augment=None, schedule: str = "cosine", seed: int = 0, log=None) -> list[float]:
    """The one judge training loop (the generalisation judge and the GM judge): AdamW (weight decay 1e-4) on
    mels [N, n_mels, F] against integer targets [N], or a tuple of them for a net with one head per target (the
    loss is the sum of the cross-entropies). ``augment(x, g) -> x`` alters each batch with the generator ``g``.
    ``schedule``: "cosine" decay or "onecycle". ``log(step, mean loss)`` every 250 steps. Returns the loss per
    step; leaves the net in eval mode."""
    targets = targets if isinstance(targets, tuple) else (targets,)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1) \
        if schedule == "onecycle" else None
    net.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(mels), (batch_size,), generator=g)
        x = augment(mels[idx], g) if augment is not None else mels[idx]
        out = net(x)
        out = out if isinstance(out, tuple) else (out,)
        loss = sum(nn.functional.cross_entropy(o, t[idx]) for o, t in zip(out, targets))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        else:
            for group in opt.param_groups:  # cosine decay
                group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
        losses.append(float(loss.detach()))
        if log is not None and ((step + 1) % 250 == 0 or step + 1 == steps):
            log(step + 1, float(np.mean(losses[-250:])))
    net.eval()
    return losses


def time_shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Augmentation: roll the batch [B, n_mels, F] in time by up to an eighth of its frames."""
    return torch.roll(x, int(torch.randint(0, max(1, x.shape[-1] // 8), (1,), generator=g)), dims=-1)


def train_classifier(model: NoteClassifier, mels: torch.Tensor, targets: torch.Tensor, steps: int = 400,
                     batch_size: int = 32, lr: float = 2e-3, seed: int = 0) -> list[float]:
    """:func:`fit_classifier` with random time shifts and cosine decay. Returns the loss per step."""
    return fit_classifier(model, mels, targets, steps, batch_size, lr, augment=time_shift, seed=seed)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to embeddings a [N, D] and b [M, D] (Heusel et al. 2017, eq. 6):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")  # a covariance needs two samples; undefined rather than an exception
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((S_a S_b)^(1/2)) = sum of sqrt of the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric PSD)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)
