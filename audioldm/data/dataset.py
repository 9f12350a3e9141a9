"""Fixed-length clip dataset (waveform + log-mel + conditioning fields) and its collate function."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..audio import AudioError, load_audio, pad_or_crop, resample, to_mono
from ..mel import MelConfig, MelFrontend
from .manifest import Clip

__all__ = ["ClipDataset", "collate_clips"]


class ClipDataset(Dataset):
    """Clips of exactly ``clip_seconds`` (rounded to whole mel frames) from a list of :class:`Clip`.

    Item: ``{"wav": float32 [T], "mel": float32 [n_mels, T / hop], "caption": str | None, "labels": dict,
    "path": str}``. With ``random_crop`` the offset inside the clip's region and the caption (among its phrasings) are
    drawn from an RNG seeded by (seed, epoch, index), so a run is reproducible and resumable; otherwise the clip starts
    at its ``start`` and uses its first caption. Regions shorter than the clip are zero-padded at the end.
    """

    def __init__(self, clips: list[Clip], mel_config: MelConfig | None = None, clip_seconds: float = 2.0,
                 random_crop: bool = False, seed: int = 0, compute_mel: bool = True):
        if not clips:
            raise ValueError("ClipDataset: no clips")
        if clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be > 0, got {clip_seconds}")
        self.clips = clips
        self.mel_config = mel_config or MelConfig()
        hop = self.mel_config.hop_length
        self.num_samples = max(hop, int(round(clip_seconds * self.mel_config.sample_rate / hop)) * hop)
        self.random_crop, self.seed, self.epoch = random_crop, seed, 0
        self.frontend = MelFrontend(self.mel_config) if compute_mel else None

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read_region(self, clip: Clip, rng: np.random.Generator) -> np.ndarray:
        sr = self.mel_config.sample_rate
        if clip.start == 0 and clip.duration is None:
            wav = load_audio(clip.path, sr)
        else:  # read only the region, at the file's rate, then resample
            try:
                info = sf.info(str(clip.path))
                a = int(clip.start * info.samplerate)
                b = a + int(clip.duration * info.samplerate) if clip.duration is not None else info.frames
                data, fsr = sf.read(str(clip.path), start=a, stop=min(b, info.frames), dtype="float32",
                                    always_2d=True)
            except Exception as e:
                raise AudioError(f"{clip.path}: unreadable audio ({e})") from None
            if data.shape[0] == 0 or not np.isfinite(data).all():
                raise AudioError(f"{clip.path}: region start={clip.start} duration={clip.duration} is empty "
                                 f"or has NaN/Inf samples")
            wav = resample(to_mono(data.T), fsr, sr)
        return pad_or_crop(wav, self.num_samples, offset=None if self.random_crop else 0, rng=rng)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        wav = torch.from_numpy(np.ascontiguousarray(self._read_region(clip, rng)))
        caption = clip.caption
        if self.random_crop and len(clip.captions) > 1:
            caption = clip.captions[int(rng.integers(len(clip.captions)))]
        item = {"wav": wav, "caption": caption, "labels": dict(clip.labels), "path": str(clip.path)}
        if self.frontend is not None:
            item["mel"] = self.frontend(wav)
        return item


def collate_clips(items: list[dict]) -> dict:
    """Stack tensors ("wav" [B, T], "mel" [B, n_mels, F]); keep captions/paths as lists and labels as a list of dicts."""
    out = {"wav": torch.stack([it["wav"] for it in items]),
           "caption": [it["caption"] for it in items],
           "labels": [it["labels"] for it in items],
           "path": [it["path"] for it in items]}
    if "mel" in items[0]:
        out["mel"] = torch.stack([it["mel"] for it in items])
    return out
