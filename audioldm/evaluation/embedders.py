"""Embedders that can replace the judge's embeddings in the generalisation report: ``embed(mels [N, n_mels, F]) ->
np.ndarray [N, D]``. The report works on log-mels, so an audio model gets them back as audio through Griffin-Lim
first (at the model's own rate after resampling); every set, the real ones included, goes through the same
inversion, so the comparison stays fair, though the absolute numbers carry Griffin-Lim's phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..audio import resample
from ..mel import MelConfig, griffin_lim

__all__ = ["clap_audio_embedder"]


def clap_audio_embedder(folder: str | Path, mel_config: MelConfig, batch_size: int = 16):
    """The audio tower of a local transformers ``ClapModel`` folder (with its ``ClapFeatureExtractor``), projected
    and unit-normalised as CLAP compares audio. Nothing is downloaded: ``folder`` must hold the files."""
    import transformers

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a local transformers model folder (no config.json)")
    model = transformers.ClapModel.from_pretrained(str(folder)).eval()
    fe = transformers.ClapFeatureExtractor.from_pretrained(str(folder))

    @torch.no_grad()
    def embed(mels: torch.Tensor) -> np.ndarray:
        out = []
        for s in range(0, len(mels), batch_size):
            wavs = [resample(griffin_lim(m.float(), mel_config).numpy(), mel_config.sample_rate, fe.sampling_rate)
                    for m in mels[s:s + batch_size]]
            feats = fe(wavs, sampling_rate=fe.sampling_rate, return_tensors="pt")
            e = model.get_audio_features(**feats)
            e = e if torch.is_tensor(e) else e.pooler_output  # transformers 5 returns an output object
            out.append(torch.nn.functional.normalize(e.float(), dim=-1).numpy())
        return np.concatenate(out).astype(np.float64)

    embed.name = f"clap:{folder.name}"
    return embed
