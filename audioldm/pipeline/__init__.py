"""Inference: the :class:`AudioLDM` object (model.py) and its satellites, requests.py (prompts and labels into
conditions), settings.py (generation defaults, the distilled range, seeds, the result type), editing.py
(audio-to-audio methods the class inherits) and accel.py (compilation and CUDA graphs). The folder format it reads
and writes is ../model_folder.py, below this package, because convert/ reads it too."""

from ..errors import PipelineError
from ..model_folder import FORMAT_VERSION, MODEL_INDEX
from .model import AudioLDM
from .settings import DistilledRange, GenerationDefaults, GenerationResult

__all__ = ["AudioLDM", "GenerationDefaults", "GenerationResult", "DistilledRange", "PipelineError", "MODEL_INDEX",
           "FORMAT_VERSION"]
