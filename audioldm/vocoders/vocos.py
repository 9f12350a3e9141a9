"""Vocos-style vocoder (Siuzdak 2023): a ConvNeXt backbone at frame rate predicts per-frame STFT magnitude and phase;
an inverse STFT with our mel framing turns them into audio. All work happens at the frame rate (100 Hz for hop 160),
which makes it far cheaper than HiFi-GAN's sample-rate convolutions.

log-mel [B, n_mels, F] -> waveform [B, F * hop]. Frame k's window covers samples [k*hop - p, k*hop - p + n_fft) with
p = (n_fft - hop) / 2, exactly as the mel front-end frames audio, so output sample t lines up with input sample t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..mel import MelConfig

__all__ = ["VocosConfig", "VOCOS_PRESETS", "Vocos", "istft_frames"]


@dataclass
class VocosConfig:
    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    kernel_size: int = 7
    n_fft: int = 1024  # of the synthesis STFT (its hop is the mel hop)
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self):
        if (self.n_fft - self.mel.hop_length) % 2 or self.n_fft < self.mel.hop_length:
            raise ValueError(f"VocosConfig.n_fft={self.n_fft}: must be >= hop ({self.mel.hop_length}) with an even "
                             f"difference")
        if self.kernel_size % 2 == 0:
            raise ValueError("VocosConfig.kernel_size must be odd")


VOCOS_PRESETS = {
    "base": lambda: VocosConfig(),
    "demo": lambda: VocosConfig(dim=192, intermediate_dim=576, num_layers=6, n_fft=640),
    "tiny": lambda: VocosConfig(dim=32, intermediate_dim=64, num_layers=2, n_fft=320),
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


def istft_frames(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Complex frames [B, n_fft // 2 + 1, F] -> waveform [B, length], inverting the mel front-end's framing
    (pad (n_fft - hop) / 2, no centering) by windowed overlap-add normalised by the summed squared window."""
    n_fft = window.shape[0]
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # [B, n_fft, F]
    nf = frames.shape[-1]
    total = (nf - 1) * hop + n_fft
    out = F.fold(frames, (1, total), (1, n_fft), stride=(1, hop)).reshape(frames.shape[0], total)
    env = F.fold((window ** 2)[None, :, None].expand(1, n_fft, nf), (1, total), (1, n_fft), stride=(1, hop))
    pad = (n_fft - hop) // 2
    out = out / env.reshape(1, total).clamp(min=1e-8)
    return out[:, pad:pad + length]


class Vocos(nn.Module):
    def __init__(self, config: VocosConfig | None = None):
        super().__init__()
        self.config = c = config or VocosConfig()
        self.embed = nn.Conv1d(c.mel.n_mels, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size, 1.0 / c.num_layers)
                                     for _ in range(c.num_layers)])
        self.final_norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Linear(c.dim, c.n_fft + 2)  # log-magnitude and phase per bin
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
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()  # [B, n_fft + 2, F]
        log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)
        spec = torch.polar(mag, phase)
        return istft_frames(spec, self.window, self.config.mel.hop_length, mel.shape[-1] * self.config.mel.hop_length)

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None):
        from ..weights import save_component
        return save_component(folder, self, self.config, "vocos", overwrite=overwrite, dtype=dtype)
