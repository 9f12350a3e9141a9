"""Property-based tests (hypothesis): audio loader, mel front-end, export names, manifest parsing."""

import json
import re

import numpy as np
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioldm.audio import load_audio
from audioldm.data import read_manifest
from audioldm.export import sanitize_name
from audioldm.mel import MelFrontend

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(frames=st.integers(1, 3000), channels=st.integers(1, 4), sr=st.sampled_from([8000, 11025, 16000, 22050,
                                                                                     44100, 48000]),
       target=st.sampled_from([None, 16000]))
def test_loader_any_length_rate_channels(tmp_path, frames, channels, sr, target):
    x = np.random.default_rng(frames).uniform(-0.9, 0.9, (frames, channels)).astype(np.float32)
    path = tmp_path / f"a_{frames}_{channels}_{sr}.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    y = load_audio(path, target)
    expect = frames if target is None else round(frames * target / sr)
    assert y.ndim == 1 and y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(len(y) - expect) <= 1
    if target is None:
        np.testing.assert_allclose(y, x.mean(1), atol=1e-6)


FE = MelFrontend()


@FAST
@given(n=st.integers(1, 4000), amp=st.floats(0.0, 1.0))
def test_mel_frontend_any_length(n, amp):
    wav = amp * torch.sin(torch.arange(n) * 0.1)
    mel = FE(wav)
    assert mel.shape == (64, -(-n // 160)) and torch.isfinite(mel).all()
    assert float(mel.min()) >= np.log(1e-5) - 1e-4


@FAST
@given(text=st.text(max_size=300))
def test_export_names_are_safe_and_unique(text):
    taken = set()
    a, b = sanitize_name(text, taken), sanitize_name(text, taken)
    for s in (a, b):
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,59}", s), s
    assert a != b


labels = st.dictionaries(st.sampled_from(["instrument", "pitch", "velocity", "mood"]),
                         st.one_of(st.integers(-1000, 1000), st.text(alphabet="abcxyz ", min_size=1, max_size=8)),
                         max_size=4)


@FAST
@given(rows=st.lists(st.tuples(st.text(alphabet="abcdefgh ,.", max_size=40), labels), min_size=1, max_size=6))
def test_manifest_round_trip(tmp_path, rows):
    sf.write(tmp_path / "x.wav", np.zeros(160, np.float32), 16000)
    name = f"m{abs(hash(str(rows)))}.jsonl"
    lines = []
    for i, (caption, lab) in enumerate(rows):
        sf.write(tmp_path / f"c{i}.wav", np.full(160 + i, 0.1, np.float32), 16000)
        lines.append(json.dumps({"path": f"c{i}.wav", "caption": caption, **lab}))
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    clips = read_manifest(tmp_path / name)
    assert len(clips) == len(rows)
    for c, (caption, lab) in zip(clips, rows):
        assert c.labels == lab
        assert c.caption == (caption or None)  # an empty caption means "no caption"
