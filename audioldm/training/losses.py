"""Adversarial pieces shared by stages: a PatchGAN discriminator (Isola et al. 2017), hinge and least-squares GAN
losses, feature matching, and latent diffusion's adaptive generator weight (Esser et al. 2021, eq. 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mrstft_loss", "PatchDiscriminator", "hinge_d_loss", "hinge_g_loss", "lsgan_d_loss", "lsgan_g_loss",
           "feature_matching", "adaptive_weight"]


class PatchDiscriminator(nn.Module):
    """[B, C, H, W] -> patch logits [B, 1, H', W']: strided 4x4 convs, GroupNorm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int = 1, channels: int = 64, layers: int = 3, groups: int = 8):
        super().__init__()
        mods = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, layers + 1):
            nxt = channels * min(2 ** i, 8)
            mods += [nn.Conv2d(ch, nxt, 4, 2 if i < layers else 1, 1), nn.GroupNorm(groups, nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return ((real - 1) ** 2).mean() + (fake ** 2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((fake - 1) ** 2).mean()


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between discriminator feature maps of real (detached) and generated input."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)) / max(1, len(real_feats))


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """||grad_last rec_loss|| / (||grad_last g_loss|| + 1e-4), clamped to [0, max_weight] and detached: balances the
    adversarial term against reconstruction at the decoder's last layer."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def mrstft_loss(x: torch.Tensor, ref: torch.Tensor, resolutions=((512, 128), (1024, 256), (2048, 512)),
                floor: float = 1e-5) -> torch.Tensor:
    """Multi-resolution STFT loss for training (Yamamoto et al. 2020, eq. 1-4): spectral convergence normalised over
    the whole batch (a silent segment would make a per-sample ratio explode) plus log-magnitude L1 with the
    magnitudes floored at ``floor``. x, ref: [B, T]."""
    total = x.new_zeros(())
    for n_fft, hop in resolutions:
        w = torch.hann_window(n_fft, device=x.device)
        sx = torch.stft(x.float(), n_fft, hop, window=w, return_complex=True).abs()
        sr = torch.stft(ref.float(), n_fft, hop, window=w, return_complex=True).abs()
        sc = torch.linalg.vector_norm(sr - sx) / torch.linalg.vector_norm(sr).clamp(min=floor)
        total = total + sc + (sr.clamp(min=floor).log() - sx.clamp(min=floor).log()).abs().mean()
    return total / len(resolutions)
