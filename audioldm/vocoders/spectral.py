"""The spectral vocoder: a learned mel -> STFT-magnitude network, then phase by the phase-gradient heuristic and a
few fast Griffin-Lim iterations.

log-mel [B, n_mels, F] -> log|S| [B, n_fft // 2 + 1, F] -> waveform [B, F * hop], in the mel front-end's framing.

**Why this split.** Sixty Griffin-Lim iterations from a random phase keep the timbre of a *real* STFT magnitude
(GM judge family 97.8% on real FluidR3 notes, the same as the real audio) but not of one estimated from the mel
(89.0% with the sparse peak fit), and the estimate itself caps the timbre (94.5% even with the true phase). So the
magnitude is what is learned: a ConvNeXt stack at the frame rate (Vocos' backbone, Siuzdak 2023) sees the log-mel and
a quick peak fit of it and predicts a correction, which a few multiplicative updates then hold to the input mel's
band energies. It is trained by log-magnitude L1, spectral convergence and log-mel L1 against the true STFT magnitude
(no waveform loss, no discriminator: it trains in minutes on a CPU). Phase then comes from
:func:`audioldm.vocoders.phase.pghi_phase`, refined by ``phase_iter`` fast Griffin-Lim iterations (with the true
magnitude, PGHI + 8 iterations keeps 96.7% family against 97.8% for 60 from a random phase). Everything runs at the
frame rate or as FFTs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import preset
from ..mel import MelConfig, mel_filterbank, mel_to_magnitude
from .phase import fast_griffin_lim, pghi_phase
from .vocos import ConvNeXtBlock

__all__ = ["SpectralVocoderConfig", "SPECTRAL_PRESETS", "SpectralVocoder"]

LOG_FLOOR = 1e-5  # the starting magnitude is clamped here before its logarithm


@dataclass
class SpectralVocoderConfig:
    dim: int = 256
    intermediate_dim: int = 768
    num_layers: int = 6
    kernel_size: int = 7
    base_iter: int = 300  # peak-fit updates of the starting magnitude (audioldm.mel.mel_to_magnitude); 0 = pseudo-inverse
    mel_fit_iter: int = 8  # multiplicative updates that fit the predicted magnitude's mel energies to the input mel
    phase_iter: int = 16  # fast Griffin-Lim iterations after PGHI at inference (0 = PGHI alone)
    train_phase_iter: int = 4  # ... and in training, where the loss is taken on the waveform they make
    momentum: float = 0.99
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self):
        if self.kernel_size % 2 == 0:
            raise ValueError(f"SpectralVocoderConfig.kernel_size={self.kernel_size}: must be odd")
        for name in ("phase_iter", "mel_fit_iter", "base_iter", "train_phase_iter"):
            if getattr(self, name) < 0:
                raise ValueError(f"SpectralVocoderConfig.{name}={getattr(self, name)}: must be >= 0")


SPECTRAL_PRESETS = {  # name -> factory (config.preset)
    "base": preset(SpectralVocoderConfig),
    "tiny": preset(SpectralVocoderConfig, dim=32, intermediate_dim=64, num_layers=1),
}


class SpectralVocoder(nn.Module):
    learns_magnitude = True  # the training stage calls forward(mel, output="train") and fits both outputs

    def __init__(self, config: SpectralVocoderConfig | None = None):
        super().__init__()
        self.config = c = config or SpectralVocoderConfig()
        # input: the log-mel and the starting log-magnitude, so the correction knows where the base put each partial
        self.embed = nn.Conv1d(c.mel.n_mels + c.mel.n_freqs, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size, 1.0 / c.num_layers)
                                     for _ in range(c.num_layers)])
        self.final_norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Linear(c.dim, c.mel.n_freqs)
        with torch.no_grad():  # start from the base magnitude
            self.head.weight.zero_()
            self.head.bias.zero_()
        basis = torch.from_numpy(mel_filterbank(c.mel))
        self.register_buffer("basis", basis, persistent=False)

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def log_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> predicted log STFT magnitude [B, n_fft // 2 + 1, F] (differentiable).

        The network sees the log-mel and a starting log-magnitude (``base_iter`` updates of the mel's sparse peak
        fit, :func:`audioldm.mel.mel_to_magnitude`, which places each partial within its band; not differentiated)
        and predicts a correction to the latter; ``mel_fit_iter`` multiplicative updates
        (Lee & Seung 2000, eq. 4, on the bins) then rescale it so that its mel energies match the input mel: the
        network supplies the shape within each band (where the partials sit, how deep the valleys are), the update
        the energy per band."""
        target = torch.exp(mel)
        base = torch.log(torch.clamp(mel_to_magnitude(mel.detach().float(), self.config.mel, self.config.base_iter),
                                     min=LOG_FLOOR)).to(mel.dtype)
        x = self.norm(self.embed(torch.cat([mel, base], dim=1)).transpose(1, 2))
        x = x.transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        log_mag = base + self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)
        if self.config.mel_fit_iter:
            mag = torch.exp(log_mag.clamp(max=10.0))
            basis = self.basis.to(mel.dtype)
            numerator = basis.T @ target
            for _ in range(self.config.mel_fit_iter):
                mag = mag * numerator / (basis.T @ (basis @ mag) + 1e-12)
            log_mag = torch.log(mag.clamp(min=1e-12))
        return log_mag

    def forward(self, mel: torch.Tensor, output: str = "wave"):
        """log-mel [B, n_mels, F] -> waveform [B, F * hop]. ``output="train"``: (log-magnitude [B, n_fft // 2 + 1,
        F], waveform) both differentiable, the waveform made with ``train_phase_iter`` Griffin-Lim iterations from the
        (not differentiated) PGHI phase, which is what the training stage's losses see."""
        n_mels = self.config.mel.n_mels
        if mel.dim() != 3 or mel.shape[1] != n_mels:
            raise ValueError(f"SpectralVocoder: expected log-mel [B, {n_mels}, frames], got {tuple(mel.shape)}")
        if not torch.isfinite(mel).all():
            raise ValueError("SpectralVocoder: the log-mel holds NaN or Inf values (from the VAE or the caller)")
        if output not in ("wave", "train"):
            raise ValueError(f"SpectralVocoder: output={output!r}; expected 'wave' or 'train'")
        train = output == "train"
        with torch.set_grad_enabled(train and torch.is_grad_enabled()):
            log_mag = self.log_magnitude(mel.float())
            mag = torch.exp(log_mag.float().clamp(max=10.0))  # (after the mel fit no bin comes near e^10)
            wav = fast_griffin_lim(mag, pghi_phase(mag.detach(), self.config.mel), self.config.mel,
                                   n_iter=self.config.train_phase_iter if train else self.config.phase_iter,
                                   momentum=self.config.momentum)
        return (log_mag, wav) if train else wav

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None):
        from ..weights import save_component
        return save_component(folder, self, self.config, "spectral", overwrite=overwrite, dtype=dtype)
