"""audioldm: audio latent diffusion (mel VAE, conditional U-Net, vocoders) with recipes and a generation API.

The public API is importable from the top level (``from audioldm import AudioLDM``); it is loaded lazily, on first
use, so ``audioldm --version`` and ``import audioldm`` do not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"AudioLDM": "pipeline", "GenerationResult": "pipeline", "load_audio": "audio", "save_audio": "audio",
         "MelConfig": "mel", "load_clips": "data"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'audioldm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
