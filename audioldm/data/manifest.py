"""Dataset manifests: read JSONL / CSV manifests or discover a folder of audio files, validating every row.

A manifest has one row per clip: ``path`` (relative to the manifest's folder, or absolute), optional ``caption``
(or ``captions``, a list of alternative phrasings), optional label fields (any other column, e.g. ``instrument``,
``pitch``), optional ``start`` / ``duration`` in seconds. Bad rows are reported with their row number and path:
by default loading refuses and lists all of them; with ``skip_bad=True`` they are dropped and counted.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..files import write_text_atomic

__all__ = ["Clip", "ManifestError", "read_manifest", "scan_folder", "load_clips", "write_manifest", "AUDIO_EXTENSIONS"]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".mp3")
RESERVED = ("path", "caption", "captions", "start", "duration")


class ManifestError(ValueError):
    """A manifest (or audio folder) has bad rows; ``problems`` lists (row, path, message)."""

    def __init__(self, source, problems: list[tuple[int, str, str]]):
        self.source, self.problems = str(source), problems
        shown = "\n".join(f"  row {r} ({p}): {m}" for r, p, m in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} bad row(s); fix them or pass skip_bad=True "
                         f"(--skip-bad) to drop them:\n{shown}{more}")


@dataclass
class Clip:
    """One dataset row, resolved: absolute ``path``, captions, labels, and the region to read (seconds)."""

    path: Path
    caption: str | None = None
    captions: list[str] = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    start: float = 0.0
    duration: float | None = None
    key: str = ""  # stable identity used for hashing splits (path relative to the manifest)
    row: int = 0


def _parse_scalar(v):
    """CSV cells are strings: turn numeric-looking ones into int/float, empty into None."""
    if not isinstance(v, str):
        return v
    s = v.strip()
    if s == "":
        return None
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _read_rows(path: Path) -> list[tuple[int, dict | None, str | None]]:
    """Rows as (row number, dict or None, parse error or None). Row numbers are 1-based data rows."""
    suffix = path.suffix.lower()
    rows = []
    if suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            n = 0
            for line in f:
                if not line.strip():
                    continue
                n += 1
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    rows.append((n, None, f"invalid JSON ({e.msg})"))
                    continue
                rows.append((n, obj, None) if isinstance(obj, dict) else (n, None, "expected a JSON object"))
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ManifestError(path, [(0, "-", f"header must have a 'path' column, got {reader.fieldnames}")])
            for n, rec in enumerate(reader, 1):
                if None in rec:  # more cells than header columns
                    rows.append((n, None, f"{len(rec[None])} more cell(s) than header columns"))
                    continue
                obj = {k: _parse_scalar(v) for k, v in rec.items()}
                obj["path"] = rec["path"]  # never cast the path
                rows.append((n, obj, None))
    else:
        raise ManifestError(path, [(0, "-", f"unknown manifest extension '{path.suffix}'; expected .jsonl or .csv")])
    return rows


def _as_seconds(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"column '{name}' must be a finite number >= 0, got {v!r}")
    return float(v)


def _check_clip(clip: Clip, check_audio: bool) -> None:
    if not clip.path.exists():
        raise ValueError("file not found")
    if not check_audio:
        return
    try:
        info = sf.info(str(clip.path))
    except Exception as e:
        raise ValueError(f"unreadable audio ({str(e).splitlines()[0]})") from None
    if info.frames == 0:
        raise ValueError("zero-length audio")
    total = info.frames / info.samplerate
    if clip.start >= total:
        raise ValueError(f"start={clip.start} s is past the end of the audio ({total:.3f} s)")


def read_manifest(manifest: str | Path, skip_bad: bool = False, check_audio: bool = True) -> list[Clip]:
    """Read and validate a JSONL or CSV manifest; returns clips in file order.

    Raises :class:`ManifestError` listing every bad row unless ``skip_bad`` (then they are dropped, with a warning
    that says how many). ``check_audio`` opens each file's header to catch unreadable audio up front.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(manifest, [(0, "-", "manifest file not found")])
    root = manifest.parent
    clips, problems, seen = [], [], {}
    for n, obj, err in _read_rows(manifest):
        if err:
            problems.append((n, "-", err))
            continue
        p = obj.get("path")
        if not isinstance(p, str) or not p.strip():
            problems.append((n, "-", f"column 'path' must be a non-empty string, got {p!r}"))
            continue
        try:
            start = _as_seconds(obj["start"], "start") if obj.get("start") is not None else 0.0
            dur = _as_seconds(obj["duration"], "duration") if obj.get("duration") is not None else None
            if dur is not None and dur == 0:
                raise ValueError("column 'duration' must be > 0")
            captions = obj.get("captions") or []
            if isinstance(captions, str):
                captions = [c for c in captions.split("|") if c.strip()]
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise ValueError(f"column 'captions' must be a list of strings, got {captions!r}")
            caption = obj.get("caption")
            if caption is not None and not isinstance(caption, str):
                raise ValueError(f"column 'caption' must be a string, got {caption!r}")
            labels = {k: v for k, v in obj.items() if k not in RESERVED and v is not None}
            for k, v in labels.items():
                if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                    raise ValueError(f"label column '{k}' must be a string or number, got {v!r}")
            clip = Clip(path=(root / p).resolve(), caption=caption or (captions[0] if captions else None),
                        captions=captions, labels=labels, start=start, duration=dur, key=p, row=n)
            dup_key = (p, start, dur)
            if dup_key in seen:
                raise ValueError(f"duplicate of row {seen[dup_key]}")
            seen[dup_key] = n
            _check_clip(clip, check_audio)
        except ValueError as e:
            problems.append((n, p, str(e)))
            continue
        clips.append(clip)
    if problems and not skip_bad:
        raise ManifestError(manifest, problems)
    if problems:
        log.warning("%s: skipped %d bad row(s) of %d", manifest, len(problems), len(problems) + len(clips))
    if not clips:
        raise ManifestError(manifest, problems or [(0, "-", "manifest has no rows")])
    return clips


def scan_folder(folder: str | Path, skip_bad: bool = False, check_audio: bool = True) -> list[Clip]:
    """Every audio file under ``folder`` (recursive, sorted). A sidecar ``<name>.txt`` holds the caption."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(folder, [(0, "-", "audio folder not found")])
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    clips, problems = [], []
    for n, p in enumerate(files, 1):
        side = p.with_suffix(".txt")
        caption = side.read_text(encoding="utf-8").strip() if side.exists() else None
        clip = Clip(path=p.resolve(), caption=caption or None, captions=[caption] if caption else [],
                    key=str(p.relative_to(folder)), row=n)
        try:
            _check_clip(clip, check_audio)
        except ValueError as e:
            problems.append((n, clip.key, str(e)))
            continue
        clips.append(clip)
    if problems and not skip_bad:
        raise ManifestError(folder, problems)
    if problems:
        log.warning("%s: skipped %d unreadable file(s)", folder, len(problems))
    if not clips:
        raise ManifestError(folder, problems or [(0, "-", f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")])
    return clips


def load_clips(source: str | Path, skip_bad: bool = False, check_audio: bool = True) -> list[Clip]:
    """A manifest file (.jsonl / .csv) or a folder of audio files."""
    source = Path(source)
    if source.is_dir():
        return scan_folder(source, skip_bad, check_audio)
    return read_manifest(source, skip_bad, check_audio)


def write_manifest(path: str | Path, rows: list[dict]) -> Path:
    """Write rows as JSONL atomically (temp file + rename)."""
    path = Path(path)
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
