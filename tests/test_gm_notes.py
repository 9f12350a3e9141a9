import json
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest

from audioldm.audio import load_audio
from audioldm.data import read_manifest, split_by_hash
from audioldm.data.gm_notes import GRID_PRESETS, NoteGrid, captions_for, note_name, render_grid

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_preset_summary_and_manifest(tiny_notes):
    out, summary = tiny_notes
    assert summary["clips"] == 32 and summary["dropped_silent"] == 0
    assert summary["instruments"] == {"piano": 8, "violin": 8, "trumpet": 8, "flute": 8}
    clips = read_manifest(out / "manifest.jsonl")
    assert len(clips) == 32
    c = clips[0]
    assert set(c.labels) == {"instrument", "family", "program", "pitch", "velocity", "split"}
    held = {c.key for c in clips if c.labels["split"] == "valid"}  # the one hash split, by path
    assert held == {c.key for c in split_by_hash(clips, 0.1)[1]} and 0 < len(held) < 32
    assert len(c.captions) >= 4 and c.caption == c.captions[0]
    x = load_audio(c.path, 16000)
    assert x.shape == (32000,)
    assert 0.05 < np.abs(x).max() <= 0.99  # enough gain, no clipping
    # note held 1.0 s then released: the last 0.3 s is much quieter than the held part
    assert np.abs(x[-4800:]).max() < 0.1 * np.abs(x[:16000]).max()


def test_rendered_pitch_is_requested_pitch(tiny_notes):
    out, _ = tiny_notes
    errors = []
    for c in read_manifest(out / "manifest.jsonl"):
        x = load_audio(c.path, 16000)[1600:14400]  # the held part, after the attack
        f0 = librosa.yin(x, fmin=50, fmax=2000, sr=16000, frame_length=2048)
        cents = 1200 * np.log2(np.median(f0) / librosa.midi_to_hz(c.labels["pitch"]))
        errors.append((c.key, float(cents)))
    bad = [(k, round(e)) for k, e in errors if abs(e) > 50]
    assert not bad, bad


def test_captions_and_note_names():
    assert note_name(60) == "C4" and note_name(61) == "C#4" and note_name(48) == "C3" and note_name(83) == "B5"
    caps = captions_for("violin", 72, 120)
    assert caps[0] == "a violin playing C5, loud" and "violin, C5" in caps and "C5 on the violin" in caps
    assert captions_for("organ", 60, 30)[0] == "an organ playing C4, soft"


def test_presets_sizes():
    assert len(GRID_PRESETS["tiny"]().notes()) == 32
    assert len(GRID_PRESETS["demo"]().notes()) == 8 * 36 * 3
    full = GRID_PRESETS["full"]().notes()
    assert {p for p, _, _ in full} >= set(range(128)) and any(p == 128 for p, _, _ in full)


def test_silent_renders_dropped_and_reported(tmp_path):
    grid = NoteGrid(programs=[0], pitches=[60, 61], velocities=[1, 100], clip_seconds=0.5, hold_seconds=0.25)
    s = render_grid(grid, tmp_path, silence_peak=0.02)
    assert s["clips"] == 2 and s["dropped_silent"] == 2
    assert all("velocity 1" in m for m in s["silent"])
    with pytest.raises(FileExistsError, match="manifest.jsonl"):
        render_grid(grid, tmp_path)


def test_bad_soundfont(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.sf2"):
        render_grid(GRID_PRESETS["tiny"](), tmp_path, soundfont=tmp_path / "nope.sf2")
    (tmp_path / "junk.sf2").write_bytes(b"junk" * 100)
    with pytest.raises(ValueError, match="junk.sf2"):
        render_grid(GRID_PRESETS["tiny"](), tmp_path / "o", soundfont=tmp_path / "junk.sf2")


def test_prepare_recipe_cli(tmp_path):
    cmd = [sys.executable, str(ROOT / "recipes/gm_notes/prepare.py"), "--preset", "tiny", "--out", str(tmp_path),
           "--clip-seconds", "0.5", "--hold-seconds", "0.25"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["clips"] == 32 and summary["preset"] == "tiny"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and "already exists" in r.stderr
