"""The mel VAE: a KL-regularised convolutional autoencoder over log-mel seen as a 1-channel image [B, 1, frames, n_mels].

Block structure follows the latent-diffusion autoencoder (Rombach et al. 2022) as used by AudioLDM: conv_in ->
levels of ResnetBlocks with stride-2 downsampling -> mid (resnet, attention, resnet) -> GroupNorm/SiLU/conv_out to
(mean, logvar); the decoder mirrors it with num_res_blocks + 1 resnets per level. With ch_mult of length L, time and
frequency are each downsampled by 2^(L-1) (4 for the presets). Frame counts that are not a multiple of that are padded
with the log-mel floor (silence) and cropped back after decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import preset
from .mel import MelConfig
from .nn import (
    Downsample2d,
    ResnetBlock,
    SelfAttention2d,
    Upsample2d,
    group_norm,
    maybe_checkpoint,
)

__all__ = ["VAEConfig", "VAE_PRESETS", "DiagonalGaussian", "MelVAE"]


@dataclass
class VAEConfig:
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4])
    num_res_blocks: int = 2
    z_channels: int = 8
    mid_attention: bool = True
    dropout: float = 0.0
    norm_groups: int = 32
    in_channels: int = 1
    scale_factor: float = 1.0  # 1 / std of latents over the data; set after training
    # The network sees (log-mel - input_shift) / input_scale. AudioLDM feeds raw log-mel (0, 1); our own presets
    # centre it (GM-note log-mels have mean ~ -8, std ~ 3), which makes short training runs converge much faster.
    input_shift: float = 0.0
    input_scale: float = 1.0
    mel: MelConfig = field(default_factory=MelConfig)
    gradient_checkpointing: bool = False  # training: recompute each level's activations in backward (less memory)

    def __post_init__(self):
        if not self.ch_mult or any(m <= 0 for m in self.ch_mult):
            raise ValueError(f"VAEConfig.ch_mult must be a non-empty list of positive ints, got {self.ch_mult}")
        for name in ("ch", "num_res_blocks", "z_channels", "norm_groups", "in_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VAEConfig.{name} must be positive, got {getattr(self, name)}")
        if self.ch % self.norm_groups:
            raise ValueError(f"VAEConfig.ch={self.ch} must be a multiple of norm_groups={self.norm_groups}")
        if not (math.isfinite(self.input_scale) and self.input_scale > 0 and math.isfinite(self.input_shift)):
            raise ValueError(f"VAEConfig.input_scale must be positive and input_shift finite, got "
                             f"{self.input_scale}, {self.input_shift}")
        if not (math.isfinite(self.scale_factor) and self.scale_factor > 0):
            raise ValueError(f"VAEConfig.scale_factor must be a positive finite number, got {self.scale_factor}")
        if self.mel.n_mels % self.downsample:
            raise ValueError(f"VAEConfig: n_mels={self.mel.n_mels} must be divisible by the downsampling factor "
                             f"{self.downsample}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


VAE_PRESETS = {  # name -> factory (config.preset)
    "tiny": preset(VAEConfig, ch=8, ch_mult=[1, 2, 4], num_res_blocks=1, z_channels=4, norm_groups=4,
                   input_shift=-8.0, input_scale=3.0),
    # CPU-friendly: ~0.7M parameters, ~0.1 s per 1-s crop for a training step on 2 cores
    "demo": preset(VAEConfig, ch=16, ch_mult=[1, 2, 4], num_res_blocks=1, z_channels=8, norm_groups=8,
                   input_shift=-8.0, input_scale=3.0),
    # the shape of AudioLDM-S's VAE (~55M parameters)
    "audioldm-s": preset(VAEConfig, ch=128, ch_mult=[1, 2, 4], num_res_blocks=2, z_channels=8, norm_groups=32),
}


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) over latents [B, z, H, W]."""

    def __init__(self, params: torch.Tensor):
        self.mean, logvar = params.float().chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, noise: torch.Tensor | None = None) -> torch.Tensor:
        """mean + std * noise; pass ``noise`` (same shape) for reproducible, per-sample seeded draws."""
        noise = torch.randn_like(self.mean) if noise is None else noise.to(self.mean)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over latent elements: [B]."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class _Mid(nn.Module):
    def __init__(self, ch: int, attention: bool, dropout: float, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(ch, ch, dropout=dropout, groups=groups) for _ in range(2)])
        self.attentions = nn.ModuleList([SelfAttention2d(ch, groups=groups)] if attention else [])

    def forward(self, x):
        x = self.resnets[0](x)
        for a in self.attentions:
            x = a(x)
        return self.resnets[1](x)


class _Level(nn.Module):
    def __init__(self, resnets: list[nn.Module], resample: nn.Module | None, kind: str):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if resample is not None:
            setattr(self, kind, nn.ModuleList([resample]))
        self._kind = kind if resample is not None else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self._kind:
            x = getattr(self, self._kind)[0](x)
        return x


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        g, chs = c.norm_groups, [c.ch * m for m in c.ch_mult]
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        levels, prev = [], c.ch
        for i, out in enumerate(chs):
            res = [ResnetBlock(prev if j == 0 else out, out, dropout=c.dropout, groups=g) for j in range(c.num_res_blocks)]
            levels.append(_Level(res, Downsample2d(out) if i < len(chs) - 1 else None, "downsamplers"))
            prev = out
        self.down_blocks = nn.ModuleList(levels)
        self.mid_block = _Mid(prev, c.mid_attention, c.dropout, g)
        self.conv_norm_out = group_norm(prev, g)
        self.conv_out = nn.Conv2d(prev, 2 * c.z_channels, 3, padding=1)
        self.config = c

    def forward(self, x):
        ck = self.config.gradient_checkpointing
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = maybe_checkpoint(ck, level, x)
        x = maybe_checkpoint(ck, self.mid_block, x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        g, chs = c.norm_groups, [c.ch * m for m in reversed(c.ch_mult)]
        self.conv_in = nn.Conv2d(c.z_channels, chs[0], 3, padding=1)
        self.mid_block = _Mid(chs[0], c.mid_attention, c.dropout, g)
        levels, prev = [], chs[0]
        for i, out in enumerate(chs):
            res = [ResnetBlock(prev if j == 0 else out, out, dropout=c.dropout, groups=g)
                   for j in range(c.num_res_blocks + 1)]
            levels.append(_Level(res, Upsample2d(out) if i < len(chs) - 1 else None, "upsamplers"))
            prev = out
        self.up_blocks = nn.ModuleList(levels)
        self.conv_norm_out = group_norm(prev, g)
        self.conv_out = nn.Conv2d(prev, c.in_channels, 3, padding=1)
        self.config = c

    def forward(self, z):
        ck = self.config.gradient_checkpointing
        x = maybe_checkpoint(ck, self.mid_block, self.conv_in(z))
        for level in self.up_blocks:
            x = maybe_checkpoint(ck, level, x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class MelVAE(nn.Module):
    """log-mel [B, n_mels, F] <-> latents [B, z_channels, ceil(F / 4), n_mels / 4] (for the 3-level presets)."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        c = self.config
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quant_conv = nn.Conv2d(2 * c.z_channels, 2 * c.z_channels, 1)
        self.post_quant_conv = nn.Conv2d(c.z_channels, c.z_channels, 1)

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def _to_image(self, mel: torch.Tensor) -> tuple[torch.Tensor, int]:
        if mel.dim() != 3 or mel.shape[1] != self.config.mel.n_mels:
            raise ValueError(f"MelVAE: expected log-mel [B, {self.config.mel.n_mels}, frames], got {tuple(mel.shape)}")
        frames = mel.shape[-1]
        pad = (-frames) % self.config.downsample
        if pad:  # pad with silence (the log floor), cropped back after decoding
            mel = F.pad(mel, (0, pad), value=math.log(self.config.mel.log_floor))
        mel = (mel - self.config.input_shift) / self.config.input_scale
        return mel.transpose(1, 2).unsqueeze(1), frames

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """log-mel [B, n_mels, F] -> posterior over [B, z, ceil(F / d), n_mels / d] (d = downsampling factor)."""
        x, _ = self._to_image(mel)
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """latents [B, z, H, W] -> log-mel [B, n_mels, frames] (``frames`` defaults to H * d)."""
        x = self.decoder(self.post_quant_conv(z))  # [B, 1, H*d, n_mels]
        mel = x.squeeze(1).transpose(1, 2) * self.config.input_scale + self.config.input_shift
        return mel if frames is None else mel[..., :frames]

    def forward(self, mel: torch.Tensor, noise: torch.Tensor | None = None, sample: bool = True):
        """Reconstruct: returns (log-mel [B, n_mels, F], posterior)."""
        post = self.encode(mel)
        z = post.sample(noise) if sample else post.mode()
        return self.decode(z.to(mel.dtype), mel.shape[-1]), post

    def save_pretrained(self, folder, overwrite: bool = False, dtype: torch.dtype | None = None):
        """Write ``folder/config.json`` + ``folder/model.safetensors`` atomically."""
        from .weights import save_component
        return save_component(folder, self, self.config, "vae", overwrite=overwrite, dtype=dtype)

    @classmethod
    def from_pretrained(cls, folder, device=None, dtype=None) -> "MelVAE":
        from .weights import load_component
        return load_component(folder, cls, VAEConfig, "vae", device=device, dtype=dtype)

    @torch.no_grad()
    def encode_latents(self, mel: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Scaled latents for diffusion: scale_factor * (mode or sample) of the posterior."""
        post = self.encode(mel)
        return self.config.scale_factor * (post.sample() if sample else post.mode())

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`encode_latents`: scaled latents -> log-mel [B, n_mels, frames]."""
        return self.decode(z / self.config.scale_factor, frames)
