"""Evaluation helpers: Fréchet distance, the note classifier, YIN pitch error."""

import numpy as np
import torch

from audioldm.evaluation import NoteClassifier, NoteClassifierConfig, frechet_distance, pitch_error_cents, \
    train_classifier
from audioldm.mel import MelFrontend


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert frechet_distance(a, a) < 1e-6
    assert abs(frechet_distance(a, a + 1.0) - 4.0) < 0.05  # |dmu|^2 = 4, same covariance
    assert abs(frechet_distance(a, 2 * a) - 4 * (1 - 2) ** 2) < 0.2  # tr(S + 4S - 2*2S) = 4 for S = I


def test_classifier_learns_two_timbres_and_pitch_error():
    sr, t = 16000, np.arange(8000) / 16000
    rng = np.random.default_rng(0)
    fe = MelFrontend()
    sines = [0.3 * np.sin(2 * np.pi * f * t) for f in rng.uniform(200, 800, 24)]
    saws = [0.3 * (2 * ((f * t) % 1) - 1) for f in rng.uniform(200, 800, 24)]
    mels = fe(torch.tensor(np.stack(sines + saws), dtype=torch.float32))
    y = torch.tensor([0] * 24 + [1] * 24)
    clf = NoteClassifier(NoteClassifierConfig(classes=["sine", "saw"], channels=[8, 16]))
    losses = train_classifier(clf, mels[::2], y[::2], steps=60, batch_size=16)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        acc = (clf(mels[1::2]).argmax(-1) == y[1::2]).float().mean()
    assert acc >= 0.9 and clf.embedding(mels[:3]).shape == (3, 64)
    a4 = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / sr)
    assert abs(pitch_error_cents(a4, sr, 69)) < 10 and abs(pitch_error_cents(a4, sr, 70) + 100) < 10


def test_sounding_octaves_from_renders(tmp_path):
    """An 'organ' whose renders sound an octave below their MIDI pitch is scored an octave down; others at pitch."""
    import soundfile as sf

    from audioldm.data import load_clips
    from audioldm.evaluation import render_pitch_errors, sounding_octaves

    sr, t = 16000, np.arange(16000) / 16000
    rows = []
    for inst, octave in (("organ", -1), ("flute", 0)):
        for midi in (60, 67):
            f = 440 * 2 ** ((midi - 69) / 12 + octave)
            sf.write(tmp_path / f"{inst}{midi}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
            rows.append(f'{{"path": "{inst}{midi}.wav", "instrument": "{inst}", "pitch": {midi}}}\n')
    (tmp_path / "m.jsonl").write_text("".join(rows))
    cents, octaves = render_pitch_errors(load_clips(tmp_path / "m.jsonl"), sr)
    assert octaves == {"organ": -1, "flute": 0}
    assert np.all(np.abs(cents[:2] + 1200) < 10) and np.all(np.abs(cents[2:]) < 10)
    assert sounding_octaves({"a": [2390, 2410, 30], "b": []}) == {"a": 2}  # median, whole octaves; empty dropped
