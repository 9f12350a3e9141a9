"""Any length: latents longer than the window the U-Net was trained on are denoised in overlapping windows fused at
every step (MultiDiffusion, Bar-Tal et al. 2023), on a straight or a circular time axis (seamless loops), and decoded
by the VAE in overlapping chunks, so attention never sees more than one window (plus its decoding context).

Latents are [B, C, H, W] with H the time axis. A window is ``window`` latent frames; consecutive windows start
``hop`` frames apart. Each window's clean estimate is weighted by a ramp that is highest in its middle and the
weighted estimates are averaged, so every frame's estimate is a smooth blend of the windows that see it.
"""

from __future__ import annotations

import torch

__all__ = ["window_starts", "windowed_denoiser", "decode_chunked"]


def window_starts(length: int, window: int, hop: int, circular: bool = False) -> list[int]:
    """Start frames of the windows that cover ``length`` frames: every ``hop`` frames, the last one flush with the
    end (straight axis) or wrapping around it (circular axis, which needs at least two windows' worth of overlap)."""
    if window <= 0 or hop <= 0 or hop > window:
        raise ValueError(f"need 0 < hop <= window, got window {window}, hop {hop}")
    if circular:
        n = max(2, -(-length // hop))
        return [round(i * length / n) for i in range(n)]
    if length <= window:
        return [0]
    starts = list(range(0, length - window, hop))
    return starts + [length - window]


def _ramp(window: int, device) -> torch.Tensor:
    """Fusion weights [window]: a triangle peaking in the middle, never zero (every frame keeps some weight)."""
    t = (torch.arange(window, device=device, dtype=torch.float32) + 0.5) / window
    return torch.minimum(t, 1 - t) * 2 + 1e-3


def windowed_denoiser(denoise, length: int, window: int, hop: int, circular: bool = False):
    """A denoiser ``(y [B, C, length, W], sigma) -> x0`` built from ``denoise`` on windows of ``window`` frames.
    With one window and a straight axis it is ``denoise`` itself, so short requests are unchanged."""
    starts = window_starts(length, window, hop, circular)
    if not circular and starts == [0] and length <= window:
        return denoise

    def fused(y: torch.Tensor, sigma) -> torch.Tensor:
        out = torch.zeros_like(y, dtype=torch.float32)
        weight = torch.zeros(length, device=y.device, dtype=torch.float32)
        ramp = _ramp(window, y.device)
        for s in starts:
            idx = (torch.arange(s, s + window, device=y.device) % length) if circular else \
                torch.arange(s, min(s + window, length), device=y.device)
            x0 = denoise(y.index_select(2, idx), sigma).float()
            w = ramp[:len(idx)]
            out.index_add_(2, idx, x0 * w.view(1, 1, -1, 1))
            weight.index_add_(0, idx, w)
        return (out / weight.view(1, 1, -1, 1)).to(y.dtype)
    return fused


def decode_chunked(decode, z: torch.Tensor, frames: int, window: int, context: int, per_latent: int,
                   circular: bool = False) -> torch.Tensor:
    """Log-mel [B, n_mels, frames] from latents z [B, C, H, W] through ``decode(z_chunk, chunk_frames)``, one
    chunk of ``window`` latent frames at a time with ``context`` frames of latents on each side (decoded, then
    dropped), so each kept frame sees the context a one-shot decode would give it up to ``context`` frames away.
    ``per_latent``: mel frames per latent frame. ``circular``: the context wraps around (a loop's ends are decoded
    against each other)."""
    h = z.shape[2]
    if h <= window + 2 * context and not circular:
        return decode(z, frames)
    pieces = []
    for a in range(0, h, window):
        b = min(a + window, h)
        lo, hi = a - context, b + context
        if circular:
            idx = torch.arange(lo, hi, device=z.device) % h
        else:
            lo, hi = max(0, lo), min(h, hi)
            idx = torch.arange(lo, hi, device=z.device)
        mel = decode(z.index_select(2, idx), len(idx) * per_latent)
        keep_from = (a - lo) * per_latent
        pieces.append(mel[..., keep_from: keep_from + (b - a) * per_latent])
    return torch.cat(pieces, dim=-1)[..., :frames]
