"""Evaluation metrics (see metrics.py)."""

from .metrics import logmel_l1, mrstft_distance, real_time_factor

__all__ = ["logmel_l1", "mrstft_distance", "real_time_factor"]
