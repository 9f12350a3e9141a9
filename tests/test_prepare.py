"""Preparing any collection of sounds (audioldm.data.prepare): formats, rates, channels, captions by precedence,
slicing at silences, dropped files with reasons, splits, the clip-length rule, and the errors before training."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audioldm.data import read_manifest
from audioldm.data.prepare import PrepareConfig, PrepareError, clip_seconds_rule, discover, prepare_dataset, \
    slice_at_silences


def hit(sr, seconds=0.5, freq=None, seed=0):
    """A decaying tone (freq) or noise burst (freq None), [T] float32."""
    t = np.arange(int(sr * seconds)) / sr
    env = np.exp(-t * 8)
    x = np.sin(2 * np.pi * freq * t) if freq else np.random.default_rng(seed).standard_normal(len(t))
    return (0.5 * env * x).astype(np.float32)


@pytest.fixture
def messy(tmp_path):
    """Nested folders, mixed formats / rates / channels, a sidecar caption, a corrupt, a silent and a duplicate
    file, and a long file holding two sounds separated by silence."""
    d = tmp_path / "sounds"
    (d / "kick").mkdir(parents=True)
    (d / "hats" / "open_hat").mkdir(parents=True)
    sf.write(d / "kick" / "k1.wav", np.stack([hit(44100, freq=60)] * 2, 1), 44100)  # stereo 44.1k
    sf.write(d / "kick" / "k2.flac", hit(48000, freq=70), 48000)
    sf.write(d / "kick" / "k3.aiff", hit(22050, freq=80), 22050)
    sf.write(d / "hats" / "open_hat" / "h1.wav", hit(96000, seed=1), 96000)
    sf.write(d / "hats" / "open_hat" / "h2.ogg", hit(8000, seed=2), 8000)
    (d / "hats" / "open_hat" / "h2.txt").write_text("a bright open hi-hat\n")
    shutil.copy(d / "kick" / "k1.wav", d / "kick" / "k1_copy.wav")
    sf.write(d / "kick" / "silent.wav", np.zeros(8000, np.float32), 16000)
    (d / "kick" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    two = np.concatenate([hit(16000, freq=90), np.zeros(16000, np.float32), hit(16000, seed=3)])
    sf.write(d / "kick" / "two_hits.wav", two, 16000)
    (d / "notes.txt").write_text("not audio")
    return d


def test_folder_end_to_end(messy, tmp_path):
    rep = prepare_dataset(messy, tmp_path / "prep", PrepareConfig(valid_fraction=0.3))
    reasons = {d["path"]: d["reason"] for d in rep["dropped"]}
    assert reasons["kick/silent.wav"].startswith("silent")
    assert reasons["kick/broken.wav"].startswith("unreadable")
    assert reasons["kick/k1_copy.wav"] == "duplicate of kick/k1.wav"
    clips = read_manifest(tmp_path / "prep" / "manifest.jsonl")
    by_src = {}
    for c in clips:
        by_src.setdefault(c.labels["source"], []).append(c)
    assert len(by_src["kick/two_hits.wav"]) == 2  # sliced at the silence
    assert by_src["kick/k2.flac"][0].caption == "kick"  # folder name
    assert by_src["hats/open_hat/h1.wav"][0].caption == "open hat"  # underscores read as spaces
    assert by_src["hats/open_hat/h2.ogg"][0].caption == "a bright open hi-hat"  # sidecar beats folder
    for c in clips:  # every clip mono at the target rate, never truncated to nothing
        info = sf.info(str(c.path))
        assert info.samplerate == 16000 and info.channels == 1 and info.frames > 0.3 * 16000
    # a 96 kHz file resampled, not truncated: same duration
    assert abs(sf.info(str(by_src["hats/open_hat/h1.wav"][0].path)).duration - 0.5) < 0.06
    # split by source file: both slices of one file on the same side
    assert len({c.labels["split"] for c in by_src["kick/two_hits.wav"]}) == 1
    assert {c.labels["split"] for c in clips} == {"train", "valid"}
    frame = 16 * 160 / 16000
    assert rep["clip_seconds"] >= rep["duration_percentile_s"] and abs(rep["clip_seconds"] / frame
                                                                       - round(rep["clip_seconds"] / frame)) < 1e-6
    assert json.loads((tmp_path / "prep" / "prepare.json").read_text())["clips"] == len(clips)


def test_manifest_captions_labels_split_and_group(messy, tmp_path):
    rows = ["path,caption,kit", "kick/k1.wav,deep kick,a", "kick/k2.flac,,b", "kick/k3.aiff,,a",
            "hats/open_hat/h1.wav,,c", "hats/open_hat/h2.ogg,,b"]
    (messy / "m.csv").write_text("\n".join(rows) + "\n")
    rep = prepare_dataset(messy / "m.csv", tmp_path / "p", PrepareConfig(group_by="kit", valid_fraction=0.3))
    clips = {c.labels["source"]: c for c in read_manifest(tmp_path / "p" / "manifest.jsonl")}
    assert clips["kick/k1.wav"].caption == "deep kick"  # manifest column first
    assert clips["hats/open_hat/h2.ogg"].caption == "a bright open hi-hat"  # then sidecar
    assert clips["kick/k2.flac"].caption == "kick"  # then folder name
    assert clips["kick/k1.wav"].labels["kit"] == "a"
    for kit in "abc":  # a whole group on one side
        assert len({c.labels["split"] for c in clips.values() if c.labels["kit"] == kit}) == 1
    assert rep["split_by"] == "kit"
    with pytest.raises(PrepareError, match="--group-by 'nope'"):
        prepare_dataset(messy / "m.csv", tmp_path / "q", PrepareConfig(group_by="nope"))


def test_slicing_and_long_files(tmp_path):
    sr = 16000
    x = np.concatenate([hit(sr, 0.3, freq=200), np.zeros(sr // 2, np.float32), hit(sr, 0.3, seed=1),
                        np.zeros(sr // 10, np.float32), hit(sr, 0.3, freq=300)])
    ranges = slice_at_silences(x, sr, PrepareConfig())
    assert len(ranges) == 2  # the 0.1 s gap is not a separation, the 0.5 s one is
    drone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(5 * sr) / sr)).astype(np.float32)
    pieces = slice_at_silences(drone, sr, PrepareConfig(max_seconds=2.0))
    assert all(b - a <= 2 * sr for a, b in pieces) and pieces[0][0] == 0 and pieces[-1][1] == len(drone)
    d = tmp_path / "d" / "drone"
    d.mkdir(parents=True)
    sf.write(d / "long.wav", drone, sr)
    sf.write(d / "short.wav", hit(sr, freq=330), sr)
    rep = prepare_dataset(tmp_path / "d", tmp_path / "o", PrepareConfig(max_file_seconds=3.0))
    assert "over the 3 s limit" in {x["path"]: x["reason"] for x in rep["dropped"]}["drone/long.wav"]
    assert clip_seconds_rule([0.2, 0.3, 5.0], PrepareConfig(max_seconds=1.0)) == pytest.approx(1.12)


def test_links_loops_unreadable_folders_and_odd_names(messy, tmp_path, monkeypatch):
    os.symlink(messy / "kick", messy / "hats" / "loop")  # a link to a folder walked anyway
    os.symlink(messy, messy / "hats" / "up")  # a loop back to the root
    odd = os.fsencode(messy / "kick") + b"/caf\xe9.wav"  # Latin-1 bytes: not UTF-8
    sf.write(odd, hit(16000, freq=100, seconds=0.4), 16000)
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("open_hat"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rows, dropped = discover(messy)
    reasons = " | ".join(f"{d['path']}: {d['reason']}" for d in dropped)
    assert "unreadable folder" in reasons and "symlink loop" in reasons
    monkeypatch.setattr(os, "scandir", real_scandir)
    rep = prepare_dataset(messy, tmp_path / "o", PrepareConfig())
    sources = {json.loads(ln)["source"] for ln in (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()}
    assert "kick/caf\ufffd.wav" in sources  # read and named printably
    assert rep["clips"] == len(sources) + 1  # (+1: two_hits.wav gives two clips)


def test_bad_inputs_fail_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no audio files"):
        prepare_dataset(tmp_path / "empty", tmp_path / "o", PrepareConfig())
    (tmp_path / "junk" / "x").mkdir(parents=True)
    (tmp_path / "junk" / "x" / "a.wav").write_bytes(b"not a wav at all")
    (tmp_path / "junk" / "x" / "b.flac").write_bytes(b"")
    with pytest.raises(PrepareError, match="no readable, non-silent audio.*a.wav"):
        prepare_dataset(tmp_path / "junk", tmp_path / "o", PrepareConfig())
    sf.write(tmp_path / "flat.wav", hit(16000, freq=200), 16000)  # at the root: no folder name, no sidecar
    (tmp_path / "flat").mkdir()
    shutil.move(tmp_path / "flat.wav", tmp_path / "flat" / "a.wav")
    with pytest.raises(PrepareError, match="no captions and no labels"):
        prepare_dataset(tmp_path / "flat", tmp_path / "o", PrepareConfig())
    (tmp_path / "flat" / "m.csv").write_text("path,caption\na.wav,\n")
    with pytest.raises(PrepareError, match="column 'caption' is empty in every row"):
        prepare_dataset(tmp_path / "flat" / "m.csv", tmp_path / "o", PrepareConfig())
    with pytest.raises(PrepareError, match="no such folder or manifest"):
        prepare_dataset(tmp_path / "missing", tmp_path / "o", PrepareConfig())
