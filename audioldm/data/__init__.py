"""Datasets: manifests and audio folders, fixed-length clip datasets, train/valid splits, the GM-note renderer."""

from .dataset import ClipDataset, collate_clips
from .manifest import (
           AUDIO_EXTENSIONS,
           Clip,
           ManifestError,
           load_clips,
           read_manifest,
           scan_folder,
           write_manifest,
)
from .split import hash_split, split_by_hash, train_valid

__all__ = ["Clip", "ClipDataset", "ManifestError", "collate_clips", "load_clips", "read_manifest", "scan_folder",
           "hash_split", "split_by_hash", "train_valid", "write_manifest", "AUDIO_EXTENSIONS"]
