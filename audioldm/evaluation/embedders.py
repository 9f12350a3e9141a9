"""Embedders that can replace the judge's embeddings in the generalisation report: ``embed(mels [N, n_mels, F]) ->
np.ndarray [N, D]``. The report works on log-mels, so an audio model gets them back as audio through Griffin-Lim
first (at the model's own rate after resampling); every set, the real ones included, goes through the same
inversion, so the comparison stays fair, though the absolute numbers carry Griffin-Lim's phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..mel import MelConfig
from ..vocoders.griffinlim import griffin_lim

__all__ = ["clap_judge_embedder"]


def clap_judge_embedder(folder: str | Path, mel_config: MelConfig, batch_size: int = 16):
    """The audio tower of a local transformers ``ClapModel`` folder (with its ``ClapFeatureExtractor``), projected
    and unit-normalised as CLAP compares audio (the same embedder as CLAP audio conditioning:
    :func:`audioldm.conditioning.clap.clap_audio_embedder`). Nothing is downloaded: ``folder`` must hold the files."""
    from ..conditioning.clap import ClapError
    from ..conditioning.clap import clap_audio_embedder as audio_embedder

    try:
        audio = audio_embedder(folder, batch_size=batch_size)
    except ClapError as e:
        raise FileNotFoundError(str(e)) from None

    def embed(mels: torch.Tensor) -> np.ndarray:
        out = [audio(torch.stack([griffin_lim(m.float(), mel_config) for m in mels[s:s + batch_size]]),
                     mel_config.sample_rate).numpy() for s in range(0, len(mels), batch_size)]
        return np.concatenate(out).astype(np.float64)

    embed.name = f"clap:{Path(folder).name}"
    return embed
