"""Evaluation: distances and signal checks (metrics.py), the judges (classifier.py: the network and the one judge
training loop; generalisation.py: a judge trained on a dataset's own categories; gm_judge.py: the shipped General-MIDI
judge), and the two reports built on them: report.py (a model on held-out conditions: adherence against ceiling and
chance, with balanced accuracy, FD, memorisation, diversity, the stage decomposition) and vocoder.py (a vocoder's
stage decomposition with the oracle rows). embedders.py plugs a CLAP audio tower in as the judge's embedding."""

from .classifier import NoteClassifier, NoteClassifierConfig, fit_classifier, frechet_distance, train_classifier
from .metrics import (envelope_modulation, logmel_l1, mrstft_distance, pitch_error_cents, real_time_factor,
                      render_pitch_errors, sounding_octaves)

__all__ = ["logmel_l1", "mrstft_distance", "real_time_factor", "pitch_error_cents", "sounding_octaves",
           "render_pitch_errors", "NoteClassifier", "NoteClassifierConfig", "fit_classifier", "train_classifier",
           "frechet_distance", "envelope_modulation"]
