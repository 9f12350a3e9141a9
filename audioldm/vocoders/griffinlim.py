"""Griffin-Lim in the vocoder slot: no weights, log-mel [B, n_mels, F] -> waveform [B, F * hop]."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import config_from_dict, config_to_dict
from ..mel import MelConfig, griffin_lim


@dataclass
class GriffinLimConfig:
    n_iter: int = 60
    momentum: float = 0.99
    magnitude_iter: int = 300  # mel -> magnitude peak-fit updates (mel.mel_to_magnitude); 0 = pseudo-inverse
    mel: MelConfig = field(default_factory=MelConfig)


class GriffinLimVocoder(nn.Module):
    def __init__(self, config: GriffinLimConfig | None = None):
        super().__init__()
        self.config = config or GriffinLimConfig()

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return griffin_lim(mel, self.config.mel, n_iter=self.config.n_iter, momentum=self.config.momentum,
                           magnitude_iter=self.config.magnitude_iter)

    def save_pretrained(self, folder, overwrite: bool = False):
        """Write ``folder/config.json`` (there are no weights) atomically."""
        from ..weights import atomic_folder
        with atomic_folder(folder, overwrite) as tmp:
            (tmp / "config.json").write_text(json.dumps({"kind": "griffinlim", **config_to_dict(self.config)},
                                                        indent=2))
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder):
        d = json.loads((Path(folder) / "config.json").read_text())
        d.pop("kind", None)
        return cls(config_from_dict(GriffinLimConfig, d, str(Path(folder) / "config.json")))
