"""GAN discriminators for vocoder training. Each maps a waveform [B, T] to (list of logits, list of feature-map lists),
one entry per sub-discriminator.

- Multi-period (HiFi-GAN, Kong et al. 2020): the waveform folded to [B, 1, T/p, p] for p in periods, 2D convs over time.
- Multi-resolution spectrogram (UnivNet, Jang et al. 2021; as in Vocos): 2D convs over log-magnitude STFTs at several
  resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiPeriodDiscriminator", "MultiResolutionDiscriminator"]


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: int = 32, max_channels: int = 1024):
        super().__init__()
        self.period = period
        chs = [1, channels, channels * 4, min(channels * 16, max_channels), min(channels * 32, max_channels)]
        self.convs = nn.ModuleList([nn.Conv2d(chs[i], chs[i + 1], (5, 1), (3, 1), padding=(2, 0)) for i in range(4)])
        self.convs.append(nn.Conv2d(chs[-1], chs[-1], (5, 1), 1, padding=(2, 0)))
        self.conv_post = nn.Conv2d(chs[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, wav):
        b, t = wav.shape
        if t % self.period:
            wav = F.pad(wav, (0, self.period - t % self.period), mode="reflect")
        x = wav.view(b, 1, -1, self.period)
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            feats.append(x)
        x = self.conv_post(x)
        feats.append(x)
        return x.flatten(1), feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods=(2, 3, 5, 7, 11), channels: int = 32, max_channels: int = 1024):
        super().__init__()
        self.discriminators = nn.ModuleList([PeriodDiscriminator(p, channels, max_channels) for p in periods])

    def forward(self, wav: torch.Tensor):
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int = 32):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            nn.Conv2d(1, channels, (7, 5), (2, 2), padding=(3, 2)),
            nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1)),
            nn.Conv2d(channels, channels, (5, 3), (2, 2), padding=(2, 1)),
            nn.Conv2d(channels, channels, 3, (2, 1), padding=1),
            nn.Conv2d(channels, channels, 3, (2, 2), padding=1),
        ])
        self.conv_post = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, wav):
        spec = torch.stft(wav.float(), self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        x = torch.log(spec.clamp(min=1e-5)).unsqueeze(1)  # [B, 1, freq, frames]
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            feats.append(x)
        x = self.conv_post(x)
        feats.append(x)
        return x.flatten(1), feats


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, resolutions=((1024, 256), (512, 128), (256, 64)), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList([ResolutionDiscriminator(n, h, channels) for n, h in resolutions])

    def forward(self, wav: torch.Tensor):
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]
