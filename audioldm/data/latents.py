"""Latent cache: encode a clip dataset once with a trained VAE (posterior mean and std per clip) into one safetensors
file; U-Net training reads it and never runs the VAE. Normalisation (sampling with the std, the scale factor) happens
on the fly, so one cache serves any scale factor (EDM2's encoders.py does the same)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from ..files import atomic_path
from ..weights import WeightsError

__all__ = ["build_latent_cache", "cache_key", "cache_is_current", "LatentDataset", "collate_latents"]


def cache_key(vae, dataset, embed=None) -> str:
    """What a latent cache was made from: the VAE's weights and config, the clips (paths, regions, captions, labels),
    the clip length, and the embedder's name. A cache whose key differs is stale."""
    h = hashlib.sha256()
    for k, v in sorted(vae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    h.update(json.dumps(vae.config.mel.to_dict(), sort_keys=True).encode())
    h.update(str(vae.config.scale_factor).encode())
    h.update(str(dataset.num_samples).encode())
    h.update(str(getattr(embed, "name", None) if embed is not None else None).encode())
    for c in dataset.clips:
        h.update(json.dumps([c.key, c.start, c.duration, c.caption, c.captions, c.labels], sort_keys=True,
                            default=str).encode())
    return h.hexdigest()[:16]


def cache_is_current(path: str | Path, key: str) -> bool:
    """Whether the cache at ``path`` exists and was made from what ``key`` (:func:`cache_key`) describes."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("key") == key
    except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt
        return False


@torch.no_grad()
def build_latent_cache(vae, dataset, path: str | Path, device="cpu", batch_size: int = 16, progress=None,
                       embed=None) -> Path:
    """Encode every item of a (fixed-crop) ClipDataset: writes ``mean``/``std`` [N, C, H, W] (float16) plus the rows'
    captions and labels in the file's metadata. With ``embed(wavs [B, T], sample_rate) -> [B, D]`` (e.g. the CLAP
    audio tower: conditioning_clap.py) it also stores each clip's ``condition`` [N, D] (float32), and names the
    embedder (``embed.name``) in the metadata. Written atomically."""
    path = Path(path)
    vae = vae.to(device).eval()
    means, stds, rows, conds = [], [], [], []
    starts = range(0, len(dataset), batch_size)
    for s in (progress(starts) if progress else starts):
        items = [dataset[i] for i in range(s, min(len(dataset), s + batch_size))]
        post = vae.encode(torch.stack([it["mel"] for it in items]).to(device))
        means.append(post.mean.half().cpu())
        stds.append(post.std.half().cpu())
        if embed is not None:
            conds.append(embed(torch.stack([it["wav"] for it in items]), dataset.mel_config.sample_rate).float())
        for i, it in enumerate(items):
            clip = dataset.clips[s + i]
            rows.append({"path": clip.key, "caption": clip.caption, "captions": clip.captions, "labels": clip.labels})
    meta = {"rows": json.dumps(rows), "scale_factor": str(vae.config.scale_factor),
            "key": cache_key(vae, dataset, embed),
            "num_samples": str(dataset.num_samples), "mel": json.dumps(vae.config.mel.to_dict())}
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"mean": torch.cat(means).contiguous(), "std": torch.cat(stds).contiguous()}
    if embed is not None:
        tensors["condition"] = torch.cat(conds).contiguous()
        meta["condition"] = str(getattr(embed, "name", "embedding"))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


class LatentDataset(Dataset):
    """Items ``{"mean": [C, H, W], "std": [C, H, W], "caption": str | None, "labels": dict}`` (plus ``"condition"``
    [D] when the cache stores per-clip embeddings; ``condition_name`` names their embedder); with ``random_caption``
    a phrasing is drawn per (seed, epoch, index)."""

    def __init__(self, path: str | Path, random_caption: bool = True, seed: int = 0):
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: latent cache not found")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                self.mean, self.std = f.get_tensor("mean").float(), f.get_tensor("std").float()
                self.condition = f.get_tensor("condition").float() if "condition" in f.keys() else None
            self.condition_name = meta.get("condition")
            self.rows = json.loads(meta["rows"])
            self.scale_factor = float(meta["scale_factor"])
        except Exception as e:
            raise WeightsError(f"{path}: not a latent cache written by build_latent_cache ({e})") from None
        if len(self.rows) != len(self.mean):
            raise WeightsError(f"{path}: {len(self.rows)} rows but {len(self.mean)} latents")
        self.random_caption, self.seed, self.epoch = random_caption, seed, 0

    def __len__(self):
        return len(self.rows)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __getitem__(self, i):
        row = self.rows[i]
        caption = row["caption"] or ""
        if self.random_caption and len(row["captions"]) > 1:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            caption = row["captions"][int(rng.integers(len(row["captions"])))]
        item = {"mean": self.mean[i], "std": self.std[i], "caption": caption, "labels": dict(row["labels"])}
        if self.condition is not None:
            item["condition"] = self.condition[i]
        return item


def collate_latents(items: list[dict]) -> dict:
    out = {"mean": torch.stack([it["mean"] for it in items]), "std": torch.stack([it["std"] for it in items]),
           "caption": [it["caption"] for it in items], "labels": [it["labels"] for it in items]}
    if "condition" in items[0]:
        out["condition"] = torch.stack([it["condition"] for it in items])
    return out
