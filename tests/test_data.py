import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audioldm.data import ClipDataset, ManifestError, collate_clips, load_clips, read_manifest, split_by_hash
from conftest import sine


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a").mkdir()
    for i, f in enumerate([220, 330, 440]):
        sf.write(tmp_path / "a" / f"s{i}.wav", sine(f, 16000, 1.0 + i * 0.5), 16000)
    sf.write(tmp_path / "a" / "st44.flac", sine(550, 44100, 1.0, channels=2), 44100)
    (tmp_path / "a" / "s0.txt").write_text("a low sine\n")
    return tmp_path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_manifest(folder):
    m = write_jsonl(folder / "m.jsonl", [
        {"path": "a/s0.wav", "caption": "low", "instrument": "sine", "pitch": 57},
        {"path": "a/s1.wav", "captions": ["mid", "middle"], "start": 0.25, "duration": 0.5},
        {"path": "a/st44.flac"}])
    clips = read_manifest(m)
    assert [c.row for c in clips] == [1, 2, 3]
    assert clips[0].labels == {"instrument": "sine", "pitch": 57} and clips[0].caption == "low"
    assert clips[1].caption == "mid" and clips[1].captions == ["mid", "middle"]
    assert clips[1].start == 0.25 and clips[1].duration == 0.5
    assert clips[2].caption is None and clips[2].path.is_absolute()


def test_csv_manifest_typed_labels(folder):
    (folder / "m.csv").write_text("path,caption,pitch,velocity,instrument\n"
                                  "a/s0.wav,low,57,0.5,sine\na/s1.wav,,60,1,sine\n")
    clips = load_clips(folder / "m.csv")
    assert clips[0].labels == {"pitch": 57, "velocity": 0.5, "instrument": "sine"}
    assert clips[1].caption is None and clips[1].labels["pitch"] == 60


def test_bad_rows_listed_with_row_and_path(folder):
    (folder / "a" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    m = write_jsonl(folder / "bad.jsonl", [
        {"path": "a/s0.wav"},
        {"path": "a/missing.wav"},
        {"path": "a/broken.wav"},
        {"path": "a/s1.wav", "start": "abc"},
        {"caption": "no path"},
        {"path": "a/s2.wav", "start": 99.0},
        {"path": "a/s0.wav"},
    ])
    with pytest.raises(ManifestError) as e:
        read_manifest(m)
    msg = str(e.value)
    assert str(m) in msg and "6 bad row(s)" in msg
    assert "row 2 (a/missing.wav): file not found" in msg
    assert "row 3 (a/broken.wav): unreadable audio" in msg
    assert "row 4 (a/s1.wav): column 'start' must be a finite number" in msg
    assert "row 5 (-): column 'path' must be a non-empty string" in msg
    assert "row 6 (a/s2.wav): start=99.0 s is past the end" in msg
    assert "row 7 (a/s0.wav): duplicate of row 1" in msg
    clips = read_manifest(m, skip_bad=True)
    assert [c.row for c in clips] == [1]


def test_bad_json_line_and_csv_header(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"path": "x.wav"\n[1, 2]\n')
    with pytest.raises(ManifestError, match=r"row 1 \(-\): invalid JSON(.|\n)*row 2 \(-\): expected a JSON object"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.csv").write_text("file,caption\nx.wav,hi\n")
    with pytest.raises(ManifestError, match="'path' column"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(tmp_path / "empty.jsonl")
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.yaml").write_text("x")
    with pytest.raises(ManifestError, match="extension"):
        read_manifest(tmp_path / "m.yaml")


def test_folder_discovery_with_sidecar_captions(folder):
    clips = load_clips(folder / "a")
    assert [c.key for c in clips] == ["s0.wav", "s1.wav", "s2.wav", "st44.flac"]
    assert clips[0].caption == "a low sine" and clips[1].caption is None
    (folder / "a" / "bad.wav").write_bytes(b"garbage")
    with pytest.raises(ManifestError, match="bad.wav"):
        load_clips(folder / "a")
    assert len(load_clips(folder / "a", skip_bad=True)) == 4


def test_split_is_deterministic_and_order_free(folder):
    clips = load_clips(folder / "a")
    many = [type(clips[0])(path=clips[0].path, key=f"k{i}.wav") for i in range(2000)]
    tr, va = split_by_hash(many, 0.1)
    assert len(tr) + len(va) == 2000 and 150 < len(va) < 250
    tr2, va2 = split_by_hash(list(reversed(many)), 0.1)
    assert {c.key for c in va} == {c.key for c in va2}
    assert not {c.key for c in tr} & {c.key for c in va}
    with pytest.raises(ValueError):
        split_by_hash(many, 1.5)


def test_clip_dataset_items(folder):
    m = write_jsonl(folder / "m.jsonl", [
        {"path": "a/s0.wav", "captions": ["x", "y", "z"], "pitch": 57},
        {"path": "a/s2.wav", "start": 0.5, "duration": 1.0},
        {"path": "a/st44.flac"}])
    clips = read_manifest(m)
    ds = ClipDataset(clips, clip_seconds=0.75, random_crop=False)
    item = ds[0]
    assert item["wav"].shape == (12000,) and item["mel"].shape == (64, 75)
    assert item["caption"] == "x" and item["labels"] == {"pitch": 57}
    # region read: starts 0.5 s into s2 (a 440 Hz sine) -> same as the file from sample 8000
    full, _ = sf.read(clips[1].path, dtype="float32")
    np.testing.assert_allclose(ds[1]["wav"].numpy(), full[8000:20000], atol=1e-6)
    # 44.1 kHz stereo resampled and downmixed
    assert ds[2]["wav"].shape == (12000,)
    batch = collate_clips([ds[i] for i in range(3)])
    assert batch["wav"].shape == (3, 12000) and batch["mel"].shape == (3, 64, 75)
    assert batch["labels"][0]["pitch"] == 57 and len(batch["caption"]) == 3


def test_random_crop_reproducible_per_epoch(folder):
    clips = load_clips(folder / "a")
    ds = ClipDataset(clips, clip_seconds=0.2, random_crop=True, seed=3)
    a, b = ds[2]["wav"], ds[2]["wav"]
    torch.testing.assert_close(a, b)
    seen = set()
    for e in range(6):
        ds.set_epoch(e)
        seen.add(float(ds[2]["wav"][0]))
    assert len(seen) > 1
    with pytest.raises(ValueError):
        ClipDataset([], clip_seconds=1.0)


def test_dataset_reports_file_broken_after_indexing(folder):
    clips = load_clips(folder / "a")
    clips[1].path.write_bytes(b"now corrupt")
    ds = ClipDataset(clips)
    from audioldm.audio import AudioError
    with pytest.raises(AudioError, match="s1.wav"):
        ds[1]


def test_balanced_sampling_evens_categories_and_sources():
    """One category cut from a single long recording (80 slices) beside two categories of 10 files each: balanced
    draws give each category about a third, and the long recording's slices count as one source."""
    from collections import Counter

    from audioldm.data.balance import BalancedView, balanced_indices

    cats = ["rain"] * 80 + ["kick"] * 10 + ["snare"] * 10
    srcs = ["rain.flac"] * 80 + [f"k{i}" for i in range(10)] + [f"s{i}" for i in range(10)]
    idx = balanced_indices(cats, srcs, n=6000, seed=0)
    share = Counter(cats[i] for i in idx)
    assert all(abs(share[c] / 6000 - 1 / 3) < 0.03 for c in ("rain", "kick", "snare")), share
    assert balanced_indices(cats, srcs, n=50, seed=3) == balanced_indices(cats, srcs, n=50, seed=3)
    view = BalancedView(list(range(100)), idx[:7])
    assert len(view) == 7 and [view[i] for i in range(7)] == idx[:7]
    with pytest.raises(ValueError, match="one category and one source"):
        balanced_indices(["a"], [])
