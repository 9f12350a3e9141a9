"""Shared network blocks: GroupNorm, residual block, 2D self-attention (SDPA), down/up-sampling, timestep embedding.

Parameter names follow diffusers' conventions (norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut, to_q/to_k/to_v/
to_out.0) so that public weights map onto these blocks one-to-one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["group_norm", "ResnetBlock", "SelfAttention2d", "Downsample2d", "Upsample2d", "timestep_embedding",
           "maybe_checkpoint"]


def maybe_checkpoint(enabled: bool, module: nn.Module, *args):
    """``module(*args)``; with ``enabled`` while training with gradients, its activations are not kept but
    recomputed in backward (non-reentrant activation checkpointing: less memory for one more forward)."""
    if enabled and module.training and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


def group_norm(channels: int, groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"GroupNorm: {channels} channels are not divisible into {groups} groups; "
                         f"choose channel counts that are multiples of norm_groups")
    return nn.GroupNorm(groups, channels, eps=eps, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-Conv x2 with a residual path; optional additive timestep embedding ([B, temb_ch]).

    x: [B, in_ch, H, W] -> [B, out_ch, H, W].
    """

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_ch: int = 0, dropout: float = 0.0,
                 groups: int = 32, eps: float = 1e-6):
        super().__init__()
        out_ch = out_ch or in_ch
        self.norm1 = group_norm(in_ch, groups, eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch) if temb_ch else None
        self.norm2 = group_norm(out_ch, groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class SelfAttention2d(nn.Module):
    """Pre-norm multi-head self-attention over the H*W positions of [B, C, H, W], residual. Uses SDPA."""

    def __init__(self, channels: int, head_dim: int | None = None, groups: int = 32, eps: float = 1e-6):
        super().__init__()
        head_dim = head_dim or channels
        if channels % head_dim:
            raise ValueError(f"SelfAttention2d: channels {channels} not divisible by head_dim {head_dim}")
        self.heads = channels // head_dim
        self.group_norm = group_norm(channels, groups, eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.group_norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = (proj(y).view(b, h * w, self.heads, -1).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        y = self.to_out[0](y)
        return x + y.transpose(1, 2).reshape(b, c, h, w)


class Downsample2d(nn.Module):
    """Stride-2 3x3 conv with (0, 1, 0, 1) padding (the latent-diffusion autoencoder's choice): H, W -> H/2, W/2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2d(nn.Module):
    """Nearest-neighbour x2 then 3x3 conv: H, W -> 2H, 2W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, flip_sin_to_cos: bool = True,
                       freq_shift: float = 0.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps [B] -> [B, dim] (Vaswani et al. 2017, sec. 3.5)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - freq_shift)
    args = t.float()[:, None] * torch.exp(exponent)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)] if flip_sin_to_cos else [torch.sin(args), torch.cos(args)], -1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb
