"""Prepare any collection of sounds for training: discover files (a folder or a manifest), read / downmix / resample
them, slice long files at silences, drop silent, corrupt and duplicate ones (each with its reason), split train /
held-out by source file or by a column, and derive the clip length from the data.

Output (``out`` folder): ``clips/*.wav`` (mono, at the target rate), ``manifest.jsonl`` (one row per clip: ``path``,
``caption``, label columns, ``source`` (the original file), ``group`` (what the split was made by), ``split``
("train" / "valid": a manifest's own ``split`` column when every row has one, else by hash of the group),
``duration``) and ``prepare.json`` (counts, the clip-length rule and its result, every dropped
file with its reason).

Captions, in this order of precedence: a manifest column, a sidecar ``NAME.txt``, the folder name (``kick/003.wav``
-> "kick"; underscores and dashes read as spaces). Library code: recipes pass a :class:`PrepareConfig`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import AudioError, _native, load_audio, save_audio
from ..files import save_json_atomic
from .manifest import AUDIO_EXTENSIONS, ManifestError, read_manifest, write_manifest
from .split import hash_split

__all__ = ["PrepareConfig", "PrepareError", "prepare_dataset", "discover", "slice_at_silences", "clip_seconds_rule"]


class PrepareError(ValueError):
    """The data cannot be used at all (empty folder, nothing readable, no captions or labels, ...)."""


@dataclass
class PrepareConfig:
    sample_rate: int = 16000
    max_seconds: float = 10.0  # longest clip: longer sounds are sliced at silences (or cut) to this length
    min_seconds: float = 0.05  # shorter slices are dropped
    silence_db: float = -60.0  # a file whose peak is below this (dBFS) is silent
    gap_db: float = 45.0  # frames this far below the file's loudest frame count as silence when slicing
    min_gap_seconds: float = 0.4  # a silence at least this long separates two sounds of one file
    tail_db: float = 20.0  # a piece after a cut at max_seconds this far below the file's peak is a decay tail
    max_file_seconds: float = 3600.0  # longer files are refused (reading them whole would be unreasonable)
    valid_fraction: float = 0.1
    group_by: str | None = None  # split by this manifest column (default: by source file)
    percentile: float = 90.0  # clip length = this percentile of clip durations ...
    latent_multiple_frames: int = 16  # ... rounded up to whole multiples of this many mel frames
    hop_length: int = 160
    caption_required: bool = True  # refuse data with no captions and no labels


def _display(name: str) -> str:
    """A printable name: bytes that are not UTF-8 (surrogate escapes from os.walk) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _folder_caption(rel: Path) -> str | None:
    parent = rel.parent.name
    return re.sub(r"[_\-]+", " ", _display(parent)).strip() or None if parent else None


def _has_caption_column(manifest: Path) -> bool:
    import json
    with open(manifest, encoding="utf-8") as f:
        if manifest.suffix.lower() in (".csv", ".tsv"):
            head = f.readline().strip().split("\t" if manifest.suffix.lower() == ".tsv" else ",")
            return "caption" in [h.strip() for h in head] or "captions" in [h.strip() for h in head]
        return any("caption" in (json.loads(ln) or {}) for ln in f if ln.strip())


def discover(source: str | Path) -> tuple[list[dict], list[dict]]:
    """Candidate files of a folder (recursive; symlinked folders followed once, loops cut) or a manifest.

    Returns (rows, dropped): rows ``{"file": Path, "source": display name, "caption": str | None, "labels": dict,
    "start", "duration"}``; dropped ``{"path", "reason"}`` for unreadable folders, symlink loops, missing files.
    """
    source = Path(source)
    rows, dropped = [], []
    if source.is_file():
        try:
            clips = read_manifest(source, check_audio=False)
        except ManifestError as e:
            raise PrepareError(str(e)) from None
        for c in clips:
            if not c.path.exists():
                dropped.append({"path": c.key, "reason": "file not found"})
                continue
            caption = c.caption
            if not caption:
                side = c.path.with_suffix(".txt")
                caption = side.read_text(encoding="utf-8", errors="replace").strip() if side.is_file() else ""
            rows.append({"file": c.path, "source": c.key, "caption": caption or _folder_caption(Path(c.key)),
                         "manifest_caption": c.caption, "labels": dict(c.labels), "start": c.start,
                         "duration": c.duration})
        return rows, dropped
    if not source.is_dir():
        raise PrepareError(f"{source}: no such folder or manifest file")
    seen_dirs, root = set(), source.resolve()

    def onerror(e: OSError):
        dropped.append({"path": _display(str(Path(e.filename).relative_to(source))
                                         if e.filename and str(e.filename).startswith(str(source)) else
                                         str(e.filename)), "reason": f"unreadable folder ({e.strerror})"})

    for dirpath, dirnames, filenames in os.walk(source, onerror=onerror, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink back into a folder already walked
            dropped.append({"path": _display(os.path.relpath(dirpath, source)),
                            "reason": "symlink loop (folder already visited); skipped"})
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        keep = []
        for d in sorted(dirnames):  # a link to a folder inside the data is walked at its own place, not twice
            sub = Path(dirpath) / d
            if sub.is_symlink():
                target = sub.resolve()
                if target == root or root in target.parents:
                    loop = target == Path(dirpath).resolve() or target in Path(dirpath).resolve().parents
                    dropped.append({"path": _display(str(sub.relative_to(source))),
                                    "reason": "symlink loop; skipped" if loop else
                                    "symlink to a folder inside the data; read at its own place"})
                    continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            rel = p.relative_to(source)
            if not p.is_file():
                dropped.append({"path": _display(str(rel)), "reason": "not a regular file (broken link?)"})
                continue
            side = p.with_suffix(".txt")
            caption = side.read_text(encoding="utf-8", errors="replace").strip() if side.is_file() else ""
            rows.append({"file": p, "source": _display(str(rel)), "caption": caption or _folder_caption(rel),
                         "labels": {}, "start": 0.0, "duration": None})
    return rows, dropped


def _frame_db(wav: np.ndarray, hop: int, win: int) -> np.ndarray:
    """RMS level (dBFS) of frames every ``hop`` samples, ``win`` long."""
    n = max(1, 1 + (len(wav) - win) // hop) if len(wav) >= win else 1
    if len(wav) < win:
        wav = np.pad(wav, (0, win - len(wav)))
    idx = np.arange(win)[None] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(np.square(wav[idx], dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def slice_at_silences(wav: np.ndarray, sr: int, cfg: PrepareConfig, with_cuts: bool = False) -> list[tuple]:
    """Sample ranges [a, b) of the sounds in ``wav`` [T]: frames quieter than the loudest one by ``gap_db`` for at
    least ``min_gap_seconds`` separate sounds, which are trimmed to their sounding part (+ 20 ms) and cut into pieces
    of at most ``max_seconds`` (at the quietest frame of the last half of each piece). With ``with_cuts`` each range
    also says whether it starts at such a cut (a, b, True) rather than at a sound's onset."""
    hop, win = max(1, sr // 100), max(1, sr // 25)
    db = _frame_db(wav, hop, win)
    loud = db > max(db.max() - cfg.gap_db, cfg.silence_db)
    gap = int(round(cfg.min_gap_seconds * 100))
    pad, maxlen = sr // 50, int(cfg.max_seconds * sr)
    segments, start, quiet = [], None, 0
    for i, on in enumerate(loud):
        if on:
            if start is None:
                start = i
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= gap:
                segments.append((start, i - quiet + 1))
                start, quiet = None, 0
    if start is not None:
        segments.append((start, len(loud) - quiet))
    out = []
    for s, e in segments:
        a, b = max(0, s * hop - pad), min(len(wav), e * hop + win + pad)
        after_cut = False
        while b - a > maxlen:  # too long: cut at the quietest frame in the second half of the allowed span
            lo, hi = (a + maxlen // 2) // hop, (a + maxlen - win) // hop
            cut = (lo + int(np.argmin(db[lo:hi]))) * hop if hi > lo else a + maxlen
            cut = min(max(cut, a + hop), a + maxlen)
            out.append((a, cut, after_cut))
            a, after_cut = cut, True
        out.append((a, b, after_cut))
    return out if with_cuts else [(a, b) for a, b, _ in out]


def clip_seconds_rule(durations: list[float], cfg: PrepareConfig) -> float:
    """The training clip length: the ``percentile`` of clip durations, capped by ``max_seconds``, rounded up to
    whole multiples of ``latent_multiple_frames`` mel frames (so the U-Net can downsample the latent)."""
    if not durations:
        raise PrepareError("no clips to derive a clip length from")
    p = min(float(np.percentile(durations, cfg.percentile)), cfg.max_seconds)
    frame_s = cfg.hop_length / cfg.sample_rate
    block = cfg.latent_multiple_frames * frame_s
    return round(max(1, math.ceil(p / block - 1e-9)) * block, 6)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", Path(_display(name)).stem).strip("_")[:40] or "clip"


def _check_rows(source: Path, rows: list[dict], dropped: list[dict], cfg: PrepareConfig) -> None:
    """Refuse, before reading any audio, data that cannot train anything: no files, an empty caption column, neither
    captions nor labels (when required), a --group-by column no row has."""
    if not rows:
        what = "audio files" if source.is_dir() else "rows"
        raise PrepareError(f"{source}: no {what} ({', '.join(AUDIO_EXTENSIONS)}) found"
                           + (f"; {len(dropped)} problem(s): {dropped[:3]}" if dropped else ""))
    if source.is_file() and _has_caption_column(source) and not any(r["manifest_caption"] for r in rows):
        raise PrepareError(f"{source}: column 'caption' is empty in every row; fill it in, or drop the column to "
                           f"use sidecar NAME.txt files or folder names")
    if cfg.caption_required and not any(r["caption"] or r["labels"] for r in rows):
        raise PrepareError(f"{source}: no captions and no labels: give a manifest caption column, sidecar NAME.txt "
                           f"files, label columns, or put the files in folders named by what they are "
                           f"(kick/001.wav -> 'kick')")
    if cfg.group_by and not any(cfg.group_by in r["labels"] for r in rows):
        raise PrepareError(f"--group-by {cfg.group_by!r}: no such column in {source}")


def _read_row(r: dict, cfg: PrepareConfig, hashes: dict, rates: dict, dropped: list[dict]):
    """One candidate file read at the target rate: its waveform and the (start, end) samples of its sounds, or None
    with the reason appended to ``dropped`` (unreadable, too long, silent, a duplicate, nothing long enough)."""
    name = r["source"]
    try:
        info = sf.info(_native(r["file"]))
        if info.frames / max(info.samplerate, 1) > cfg.max_file_seconds:
            raise AudioError(f"{info.frames / info.samplerate:.0f} s long, over the {cfg.max_file_seconds:g} s "
                             f"limit per file (max_file_seconds)")
        # downmixed, resampled (soxr VHQ), only the row's region, long files in blocks; errors name the file
        wav = load_audio(r["file"], cfg.sample_rate, start=r["start"] or 0.0, duration=r["duration"] or None)
        rates[info.samplerate] = rates.get(info.samplerate, 0) + 1
    except (AudioError, RuntimeError, OSError) as e:
        dropped.append({"path": name, "reason": f"unreadable: {str(e).replace(str(r['file']) + ': ', '')}"})
        return None
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak <= 10 ** (cfg.silence_db / 20):
        dropped.append({"path": name, "reason": f"silent (peak {20 * math.log10(max(peak, 1e-10)):.1f} dBFS, "
                                                f"threshold {cfg.silence_db:g})"})
        return None
    digest = hashlib.sha1(np.round(wav * 32767).astype(np.int16).tobytes()).hexdigest()
    if digest in hashes:
        dropped.append({"path": name, "reason": f"duplicate of {hashes[digest]}"})
        return None
    hashes[digest] = name
    pieces, tails = [], 0
    for a, b, cut in slice_at_silences(wav, cfg.sample_rate, cfg, with_cuts=True):
        if (b - a) < cfg.min_seconds * cfg.sample_rate:
            continue
        if cut and np.abs(wav[a:b]).max() < peak * 10 ** (-cfg.tail_db / 20):
            tails += 1  # the decay of a sound cut at max_seconds, not a sound of its own
            continue
        pieces.append((a, b))
    if tails:
        dropped.append({"path": name, "reason": f"{tails} decay tail(s) after a cut at max_seconds dropped "
                                                f"(more than {cfg.tail_db:g} dB below the file's peak)",
                        "partial": True})
    if not pieces:
        dropped.append({"path": name, "reason": f"no sound longer than {cfg.min_seconds:g} s"})
        return None
    return wav, pieces


def _report(source: Path, cfg: PrepareConfig, rows: list, clips: list, rates: dict, given: bool,
            dropped: list) -> dict:
    durations = [c["duration"] for c in clips]
    return {"source": _display(str(source)), "config": asdict(cfg), "files_found": len(rows),
            "source_rates": {str(k): v for k, v in sorted(rates.items())},
            "resampled_files": sum(v for k, v in rates.items() if k != cfg.sample_rate),
            "clips": len(clips), "train_clips": sum(c["split"] == "train" for c in clips),
            "valid_clips": sum(c["split"] == "valid" for c in clips),
            "split_by": "manifest column 'split'" if given else (cfg.group_by or "source file"),
            "valid_groups": len({c["group"] for c in clips if c["split"] == "valid"}),
            "train_groups": len({c["group"] for c in clips if c["split"] == "train"}),
            "captions": len({c["caption"] for c in clips if c["caption"]}),
            "hours": round(sum(durations) / 3600, 4),
            "clip_seconds_rule": f"p{cfg.percentile:g} of {len(durations)} clip durations, capped at "
                                 f"{cfg.max_seconds:g} s, rounded up to {cfg.latent_multiple_frames} mel frames",
            "duration_percentile_s": round(float(np.percentile(durations, cfg.percentile)), 4),
            "clip_seconds": clip_seconds_rule(durations, cfg), "dropped": dropped}


def prepare_dataset(source: str | Path, out: str | Path, cfg: PrepareConfig, progress=None) -> dict:
    """Prepare ``source`` into ``out`` (see the module docstring); returns the prepare.json report.
    Raises :class:`PrepareError` when nothing usable is left, before any training."""
    source, out = Path(source), Path(out)
    rows, dropped = discover(source)
    _check_rows(source, rows, dropped, cfg)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    clips, hashes, rates = [], {}, {}
    for r in (progress(rows) if progress else rows):
        read = _read_row(r, cfg, hashes, rates, dropped)
        if read is None:
            continue
        wav, pieces = read
        for k, (a, b) in enumerate(pieces):
            fname = f"clips/{len(clips):05d}_{_stem(r['source'])}" + (f"_{k}" if len(pieces) > 1 else "") + ".wav"
            save_audio(out / fname, wav[a:b], cfg.sample_rate, overwrite=True, subtype="PCM_16")
            row = {"path": fname, "caption": r["caption"], **r["labels"], "source": r["source"],
                   "duration": round((b - a) / cfg.sample_rate, 4)}
            if len(pieces) > 1:
                row["slice"] = k
            clips.append(row)
    if not clips:
        raise PrepareError(f"{source}: no readable, non-silent audio; {len(dropped)} file(s) dropped: "
                           + "; ".join(f"{d['path']}: {d['reason']}" for d in dropped[:5]))
    for c in clips:
        c["group"] = str(c.get(cfg.group_by)) if cfg.group_by else c["source"]
    given = all(c.get("split") in ("train", "valid") for c in clips)
    if given and not any(c["split"] == "valid" for c in clips):
        raise PrepareError(f"{source}: column 'split' holds no 'valid' row; nothing would be held out")
    if not given:  # a manifest's own split column (train / valid in every row) is kept as it is
        held = hash_split([c["group"] for c in clips], cfg.valid_fraction)
        for c in clips:
            c["split"] = "valid" if c["group"] in held else "train"
    write_manifest(out / "manifest.jsonl", clips)
    report = _report(source, cfg, rows, clips, rates, given, dropped)
    save_json_atomic(out / "prepare.json", report)
    return report
