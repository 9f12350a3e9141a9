"""Shared fixtures: tiny audio files and a tiny GM-note data set rendered offline once per session."""

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(2)


def sine(freq=440.0, sr=16000, seconds=1.0, amp=0.5, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], 1)


@pytest.fixture
def write_sine(tmp_path):
    def _w(name="a.wav", **kw):
        sr = kw.get("sr", 16000)
        path = tmp_path / name
        sf.write(path, sine(**kw), sr)
        return path
    return _w


@pytest.fixture(scope="session")
def tiny_notes(tmp_path_factory):
    """The `tiny` GM-note preset rendered with the soundfont inside pretty_midi: (out dir, summary)."""
    from audioldm.data.gm_notes import GRID_PRESETS, render_grid

    out = tmp_path_factory.mktemp("gm_tiny")
    summary = render_grid(GRID_PRESETS["tiny"], out)
    return out, summary
