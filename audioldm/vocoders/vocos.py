"""Vocos-style vocoder (Siuzdak 2023): a ConvNeXt backbone at frame rate predicts per-frame STFT magnitude and phase;
an inverse STFT with our mel framing turns them into audio. All work happens at the frame rate (100 Hz for hop 160),
which makes it far cheaper than HiFi-GAN's sample-rate convolutions.

log-mel [B, n_mels, F] -> waveform [B, F * hop]. Frame k's window covers samples [k*hop - p, k*hop - p + n_fft) with
p = (n_fft - hop) / 2, exactly as the mel front-end frames audio, so output sample t lines up with input sample t.

Phase (``VocosConfig.phase``):

- ``"frame"`` (Vocos' own): the head predicts each frame's phase directly. The backbone is a stack of convolutions,
  so on a steady note (identical mel frames) it predicts identical frames, and identical overlap-added frames repeat
  every hop: the output is periodic at the frame rate (100 Hz for hop 160), whatever note was asked for. A steady
  sinusoid of frequency f needs its phase to advance by 2 pi f hop / sr per frame, which a shift-invariant network
  can only fake from ripples in its input; what it learns instead is a buzz at the frame rate (docs/vocoder.md, "Why Vocos
  buzzed": the 50 Hz modulation measured there after GAN training is a different fault, two low partials 50 Hz
  apart).
- ``"advance"`` (the default): the phase is a predicted offset plus the running sum over frames of a per-frame phase
  advance. Each bin's advance is its centre's own, 2 pi m hop / n_fft for bin m, plus a deviation: the phase-gradient
  heuristic's estimate from the predicted log-magnitude's slope across bins (Prusa et al. 2017: for a Gaussian
  window of time spread lambda, a partial's offset from a bin centre is d log|S| / d f / (2 pi lambda); a Hann window
  of n_fft samples is close to lambda = 0.25645 n_fft^2), plus a learned correction that starts at zero. A steady
  input now gives a steady advance, hence a steady tone at the right frequency with no frame-rate periodicity, and
  the untrained network already makes frame-consistent output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import preset
from ..mel import MelConfig
from .phase import istft_frames

__all__ = ["VocosConfig", "VOCOS_PRESETS", "Vocos"]


@dataclass
class VocosConfig:
    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    kernel_size: int = 7
    n_fft: int = 1024  # of the synthesis STFT (its hop is the mel hop)
    phase: str = "advance"  # "advance" (offset + running sum of per-frame advances) or "frame" (Vocos' direct phase)
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self):
        if (self.n_fft - self.mel.hop_length) % 2 or self.n_fft < self.mel.hop_length:
            raise ValueError(f"VocosConfig.n_fft={self.n_fft}: must be >= hop ({self.mel.hop_length}) with an even "
                             f"difference")
        if self.kernel_size % 2 == 0:
            raise ValueError("VocosConfig.kernel_size must be odd")
        if self.phase not in ("advance", "frame"):
            raise ValueError(f"VocosConfig.phase={self.phase!r}: expected 'advance' or 'frame'")


VOCOS_PRESETS = {  # name -> factory (config.preset)
    "base": preset(VocosConfig),
    "demo": preset(VocosConfig, dim=192, intermediate_dim=576, num_layers=6, n_fft=640),
    "tiny": preset(VocosConfig, dim=32, intermediate_dim=64, num_layers=2, n_fft=640),
}


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, residual. [B, C, F] -> [B, C, F]."""

    def __init__(self, dim: int, hidden: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.pwconv2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class Vocos(nn.Module):
    def __init__(self, config: VocosConfig | None = None):
        super().__init__()
        self.config = c = config or VocosConfig()
        self.embed = nn.Conv1d(c.mel.n_mels, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size, 1.0 / c.num_layers)
                                     for _ in range(c.num_layers)])
        self.final_norm = nn.LayerNorm(c.dim, eps=1e-6)
        bins = c.n_fft // 2 + 1
        # per bin: log-magnitude and phase ("frame"), plus the deviation of its per-frame phase advance ("advance")
        self.head = nn.Linear(c.dim, bins * (3 if c.phase == "advance" else 2))
        if c.phase == "advance":  # start from the bin centres' own advance: frame-consistent output from step 0
            with torch.no_grad():
                self.head.weight[2 * bins:].zero_()
                self.head.bias[2 * bins:].zero_()
        self.register_buffer("window", torch.hann_window(c.n_fft, periodic=True), persistent=False)

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> waveform [B, F * hop]."""
        if mel.dim() != 3 or mel.shape[1] != self.config.mel.n_mels:
            raise ValueError(f"Vocos: expected log-mel [B, {self.config.mel.n_mels}, frames], got {tuple(mel.shape)}")
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()  # [B, bins * (2 or 3), F]
        hop = self.config.mel.hop_length
        if self.config.phase == "advance":
            log_mag, offset, deviation = x.chunk(3, dim=1)
            # the learned correction moves the phase of every later frame, so its step is scaled down (at scale 1,
            # 300 demo steps ended at twice the loss of the "frame" parametrisation; at 0.02, level with it)
            deviation = 0.02 * deviation + self._gradient_heuristic(log_mag.detach())
            phase = offset + torch.cumsum(deviation, dim=-1) + self._centre_phase(x.shape[-1], x.device)
        else:
            log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)
        spec = torch.polar(mag, phase)
        return istft_frames(spec, self.window, hop, mel.shape[-1] * hop)

    def _gradient_heuristic(self, log_mag: torch.Tensor) -> torch.Tensor:
        """[B, bins, F] -> [B, bins, F]: per-frame phase-advance deviation (radians) implied by the log-magnitude's
        slope across bins, hop * (L[m+1] - L[m-1]) / (2 * 0.25645 * n_fft) (zero at the two edge bins)."""
        n_fft, hop = self.config.n_fft, self.config.mel.hop_length
        slope = F.pad(log_mag[:, 2:] - log_mag[:, :-2], (0, 0, 1, 1))
        return slope * (hop / (2 * 0.25645 * n_fft))

    def _centre_phase(self, frames: int, device) -> torch.Tensor:
        """[bins, F]: the phase a sinusoid at bin m's centre frequency reaches at frame k, 2 pi (k m hop mod n_fft)
        / n_fft, computed in integers so long clips lose no precision."""
        n_fft, hop = self.config.n_fft, self.config.mel.hop_length
        k = torch.arange(frames, device=device, dtype=torch.int64)
        m = torch.arange(n_fft // 2 + 1, device=device, dtype=torch.int64)
        return (m[:, None] * k[None, :] * hop % n_fft).float() * (2 * torch.pi / n_fft)

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None):
        from ..weights import save_component
        return save_component(folder, self, self.config, "vocos", overwrite=overwrite, dtype=dtype)
