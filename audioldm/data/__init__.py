"""Datasets: manifests and audio folders, fixed-length clip datasets, train/valid splits, the GM-note renderer."""

from .dataset import ClipDataset, collate_clips, split_by_hash
from .manifest import AUDIO_EXTENSIONS, Clip, ManifestError, load_clips, read_manifest, scan_folder, write_manifest

__all__ = ["Clip", "ClipDataset", "ManifestError", "collate_clips", "load_clips", "read_manifest", "scan_folder",
           "split_by_hash", "write_manifest", "AUDIO_EXTENSIONS"]
