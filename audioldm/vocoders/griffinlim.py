"""Griffin-Lim: the functions (:func:`griffin_lim`: log-mel -> waveform, :func:`phase_from_magnitude`: magnitude ->
waveform), and the vocoder slot built on them: no weights, log-mel [B, n_mels, F] -> waveform [B, F * hop].

The magnitude is the mel's sparse peak fit (``magnitude_iter`` updates, :func:`audioldm.mel.mel_to_magnitude`). The
phase starts from a seeded random phase (``phase_init="random"``: torchaudio's fast Griffin-Lim, what folders written
before the field hold) or from the phase-gradient heuristic (``"pghi"``: :mod:`audioldm.vocoders.phase`, which needs
far fewer iterations for the same consistency)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import config_from_dict, config_to_dict
from ..mel import MelConfig, as_batch, mel_to_magnitude
from .phase import fast_griffin_lim, pghi_phase


@dataclass
class GriffinLimConfig:
    n_iter: int = 60
    momentum: float = 0.99
    magnitude_iter: int = 300  # mel -> magnitude peak-fit updates (mel.mel_to_magnitude); 0 = pseudo-inverse
    mel: MelConfig = field(default_factory=MelConfig)
    phase_init: str = "random"  # "random" (torchaudio's Griffin-Lim from a seeded random phase) or "pghi"

    def __post_init__(self):
        if self.phase_init not in ("random", "pghi"):
            raise ValueError(f"GriffinLimConfig.phase_init={self.phase_init!r}: expected 'random' or 'pghi'")


class GriffinLimVocoder(nn.Module):
    def __init__(self, config: GriffinLimConfig | None = None):
        super().__init__()
        self.config = config or GriffinLimConfig()

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> waveform [B, F * hop]."""
        c = self.config
        if not torch.isfinite(mel).all():
            raise ValueError("GriffinLimVocoder: the log-mel holds NaN or Inf values (from the VAE or the caller)")
        if c.phase_init == "random":
            return griffin_lim(mel, c.mel, n_iter=c.n_iter, momentum=c.momentum, magnitude_iter=c.magnitude_iter)
        with torch.no_grad():
            mag = mel_to_magnitude(mel, c.mel, n_iter=c.magnitude_iter)
            return fast_griffin_lim(mag, pghi_phase(mag, c.mel), c.mel, n_iter=c.n_iter, momentum=c.momentum)

    def save_pretrained(self, folder, overwrite: bool = False):
        """Write ``folder/config.json`` (there are no weights) atomically."""
        from ..files import atomic_folder
        with atomic_folder(folder, overwrite) as tmp:
            (tmp / "config.json").write_text(json.dumps({"kind": "griffinlim", **config_to_dict(self.config)},
                                                        indent=2))
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder):
        d = json.loads((Path(folder) / "config.json").read_text())
        d.pop("kind", None)
        return cls(config_from_dict(GriffinLimConfig, d, str(Path(folder) / "config.json")))


def griffin_lim(logmel: torch.Tensor, config: MelConfig | None = None, n_iter: int = 60, momentum: float = 0.99,
                seed: int | None = 0, magnitude_iter: int = 300) -> torch.Tensor:
    """Invert log-mel [B, n_mels, F] (or [n_mels, F]) to a waveform [B, F * hop] (or [F * hop]): ``mel_to_magnitude``
    (``magnitude_iter`` updates; 0 = pseudo-inverse), then ``phase_from_magnitude``."""
    return phase_from_magnitude(mel_to_magnitude(logmel, config, n_iter=magnitude_iter), config, n_iter=n_iter,
                                momentum=momentum, seed=seed)


def phase_from_magnitude(mag: torch.Tensor, config: MelConfig | None = None, n_iter: int = 60, momentum: float = 0.99,
                         seed: int | None = 0) -> torch.Tensor:
    """Linear STFT magnitude [B, n_fft // 2 + 1, F] (or [n_freqs, F]) -> waveform [B, F * hop] (or [F * hop]) by
    torchaudio's fast Griffin-Lim (Perraudin et al. 2013) from a seeded random phase.

    torchaudio frames are centred (pad n_fft / 2), ours are not (pad (n_fft - hop) / 2): frame k is centred at sample
    k * hop + hop / 2, so we reconstruct the signal from hop / 2 on and shift it back.
    """
    import torchaudio.functional as AF

    cfg = config or MelConfig()
    mag, squeeze = as_batch(mag, cfg.n_freqs, "phase_from_magnitude", "magnitude")
    frames = mag.shape[-1]
    shift = (cfg.n_fft // 2) - cfg.pad  # = hop / 2 for the default convention
    length = frames * cfg.hop_length - shift
    window = torch.hann_window(cfg.win_length, periodic=True, device=mag.device)
    # griffinlim draws its random initial phase from the global RNG: seed it per row (so a row's output does not
    # depend on its batch) without disturbing the caller's RNG.
    rows = []
    with torch.random.fork_rng(devices=[mag.device] if mag.device.type == "cuda" else []):
        for m in mag:
            if seed is not None:
                torch.manual_seed(seed)
            rows.append(AF.griffinlim(m, window, cfg.n_fft, cfg.hop_length, cfg.win_length, power=1.0,
                                      n_iter=n_iter, momentum=momentum, length=length, rand_init=True))
    wav = torch.stack(rows)
    wav = F.pad(wav, (shift, 0))
    return wav[0] if squeeze else wav
