"""HiFi-GAN generator (Kong et al. 2020, "V1/V2" with ResBlock1): log-mel [B, n_mels, F] -> waveform [B, F * hop].

Parameter names follow transformers' ``SpeechT5HifiGan`` (conv_pre, upsampler.i, resblocks.j.convs1/convs2.k,
conv_post) so AudioLDM's public vocoder maps onto it one-to-one. Weight normalisation is not used, so the saved
weights are the plain convolution weights that inference uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import preset
from ..mel import MelConfig

__all__ = ["HiFiGANConfig", "HIFIGAN_PRESETS", "HiFiGAN"]


@dataclass
class HiFiGANConfig:
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 8, 4, 4])
    upsample_initial_channel: int = 1024
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    leaky_relu_slope: float = 0.1
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self):
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("HiFiGANConfig: upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("HiFiGANConfig: resblock_kernel_sizes and resblock_dilation_sizes must match in length")
        prod = 1
        for r in self.upsample_rates:
            prod *= r
        if prod != self.mel.hop_length:
            raise ValueError(f"HiFiGANConfig: product of upsample_rates is {prod}, must equal the mel hop_length "
                             f"{self.mel.hop_length}")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError("HiFiGANConfig.upsample_initial_channel must be divisible by 2^len(upsample_rates)")


HIFIGAN_PRESETS = {  # name -> factory (config.preset)
    # AudioLDM's 16 kHz / 64-mel vocoder shape (loadable from its public weights)
    "audioldm-s": preset(HiFiGANConfig),
    # HiFi-GAN V1's channel widths and resblocks, with upsampling factored for hop 160
    "v1": preset(HiFiGANConfig, upsample_initial_channel=512),
    # a small V2-like generator (128 initial channels)
    "v2": preset(HiFiGANConfig, upsample_initial_channel=128),
    "tiny": preset(HiFiGANConfig, upsample_initial_channel=32, resblock_kernel_sizes=[3],
                   resblock_dilation_sizes=[[1, 3]]),
}


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: per dilation d, x += conv(lrelu(conv_d(lrelu(x))))."""

    def __init__(self, ch: int, kernel: int, dilations: list[int], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList([nn.Conv1d(ch, ch, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                     for d in dilations])
        self.convs2 = nn.ModuleList([nn.Conv1d(ch, ch, kernel, padding=(kernel - 1) // 2) for _ in dilations])

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope))
        return x


class HiFiGAN(nn.Module):
    def __init__(self, config: HiFiGANConfig | None = None):
        super().__init__()
        self.config = c = config or HiFiGANConfig()
        ch = c.upsample_initial_channel
        self.conv_pre = nn.Conv1d(c.mel.n_mels, ch, 7, padding=3)
        self.upsampler = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            self.upsampler.append(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for rk, rd in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
                self.resblocks.append(ResBlock(ch // 2 ** (i + 1), rk, rd, c.leaky_relu_slope))
        self.conv_post = nn.Conv1d(ch // 2 ** len(c.upsample_rates), 1, 7, padding=3)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.normal_(m.weight, 0.0, 0.01)  # HiFi-GAN's init

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> waveform [B, F * hop]."""
        if mel.dim() != 3 or mel.shape[1] != self.config.mel.n_mels:
            raise ValueError(f"HiFiGAN: expected log-mel [B, {self.config.mel.n_mels}, frames], got {tuple(mel.shape)}")
        frames = mel.shape[-1]
        x = self.conv_pre(mel)
        nk = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.upsampler):
            x = up(F.leaky_relu(x, self.config.leaky_relu_slope))
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        wav = torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)  # final slope 0.01, as in HiFi-GAN
        n = frames * self.config.mel.hop_length
        # transposed convs with odd (kernel - stride) give a few extra samples: crop (or pad) to the contract
        return wav[:, :n] if wav.shape[-1] >= n else F.pad(wav, (0, n - wav.shape[-1]))

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None):
        from ..weights import save_component
        return save_component(folder, self, self.config, "hifigan", overwrite=overwrite, dtype=dtype)
