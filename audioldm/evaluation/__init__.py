"""Evaluation metrics (see metrics.py)."""

from .classifier import (
           NoteClassifier,
           NoteClassifierConfig,
           frechet_distance,
           train_classifier,
)
from .metrics import (
           envelope_modulation,
           logmel_l1,
           mrstft_distance,
           pitch_error_cents,
           real_time_factor,
           render_pitch_errors,
           sounding_octaves,
)

__all__ = ["logmel_l1", "mrstft_distance", "real_time_factor", "pitch_error_cents", "sounding_octaves",
           "render_pitch_errors", "NoteClassifier", "NoteClassifierConfig", "train_classifier", "frechet_distance",
           "envelope_modulation"]
