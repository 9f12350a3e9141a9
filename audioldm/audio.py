"""Audio file I/O and simple waveform utilities: load / resample / downmix / pad-crop / normalise / save.

All file I/O goes through soundfile (libsndfile): WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3 (libsndfile >= 1.1), ...
Resampling uses soxr at "VHQ" quality, a band-limited polyphase resampler (the same library librosa uses by default).
Every failure is an :class:`AudioError` whose message names the file and the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .files import atomic_path

__all__ = ["AudioError", "load_audio", "save_audio", "audio_info", "resample", "to_mono",
           "peak_normalize", "pad_or_crop"]


_EXT_ALIASES = {"AIF": "AIFF", "OGA": "OGG", "OPUS": "OGG"}


class AudioError(ValueError):
    """A problem with an audio file or waveform; the message names the file (or field) and what was expected."""


def audio_info(path: str | os.PathLike) -> dict:
    """Header and level facts about an audio file: duration (s), sample_rate, channels, frames, format, peak, rms."""
    path = Path(path)
    wav, sr = _read(path)
    return {
        "path": str(path),
        "format": sf.info(str(path)).format,
        "sample_rate": sr,
        "channels": wav.shape[1],
        "frames": wav.shape[0],
        "duration": wav.shape[0] / sr,
        "peak": float(np.abs(wav).max()),
        "rms": float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))),
    }


def _native(path: Path):
    """The name libsndfile opens: bytes when the name is not valid UTF-8 (os.walk hands such names back with
    surrogate escapes, which soundfile cannot encode)."""
    try:
        str(path).encode("utf-8")
        return str(path)
    except UnicodeEncodeError:
        return os.fsencode(path)


def _info(path: Path):
    """soundfile's header info, validating everything that can go wrong before any sample is read."""
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(_native(path))
    except Exception as e:  # libsndfile: unknown container, or a known one with a broken header
        msg = _clean(e)
        if "not recognised" in msg.lower() or "unknown format" in msg.lower():
            raise AudioError(f"{path}: unsupported audio format ({msg}); readable formats: "
                             f"{', '.join(sorted(sf.available_formats()))}") from None
        raise AudioError(f"{path}: corrupt or unreadable audio header ({msg})") from None
    return info


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read all frames as float32 [T, C], validating everything that can go wrong."""
    info = _info(path)
    try:
        wav = sf.read(_native(path), dtype="float32", always_2d=True)[0]
    except Exception as e:
        raise AudioError(f"{path}: corrupt or truncated audio data ({_clean(e)})") from None
    if wav.shape[0] == 0:
        raise AudioError(f"{path}: zero-length audio (0 frames)")
    # libsndfile quietly returns the frames that are present when a WAV's data chunk is cut short.
    short = _wav_missing_bytes(path) if info.format in ("WAV", "WAVEX", "RF64") else 0
    if short > 0:
        raise AudioError(f"{path}: truncated file: its data chunk is {short} bytes shorter than its header says")
    if not np.isfinite(wav).all():
        bad = int((~np.isfinite(wav)).sum())
        raise AudioError(f"{path}: contains {bad} NaN/Inf samples; expected finite samples")
    return wav, int(info.samplerate)


def _wav_missing_bytes(path: Path) -> int:
    """Bytes missing from a RIFF/WAVE file's 'data' chunk (0 when complete or when it cannot tell)."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return 0
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, csize = struct.unpack(endian + "4sI", f.read(8))
            if cid == b"data":
                # 0 and 0xFFFFFFFF mean "unknown / streaming" in the wild: don't call those truncated
                return 0 if csize in (0, 0xFFFFFFFF) else max(0, pos + 8 + csize - size)
            pos += 8 + csize + (csize & 1)
    return 0


def _clean(e: Exception) -> str:
    return str(e).replace("\n", " ").strip()


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True, start: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Load an audio file as float32.

    Returns [T] when ``mono`` (channels averaged) else [C, T]; resampled to ``sample_rate`` when given
    (None keeps the file's rate). Mono reads of long files, or of a region (``start``, ``duration`` in seconds),
    stream the file in blocks: only the region is read, and memory holds the mono output. Raises
    :class:`AudioError` naming the file for missing, empty, corrupt, truncated, zero-length, non-finite or
    unsupported input.
    """
    path = Path(path)
    if sample_rate is not None and sample_rate <= 0:
        raise AudioError(f"sample_rate: expected a positive integer, got {sample_rate}")
    if mono and (start or duration is not None or _info(path).frames > STREAM_FRAMES):
        return _read_mono_region(path, sample_rate, start, duration)
    wav, sr = _read(path)
    wav = wav.T  # [C, T]
    if mono:
        wav = to_mono(wav)
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


STREAM_FRAMES = 1 << 21  # longer files (~44 s at 48 kHz) are read in blocks: downmixed and resampled as they come
_BLOCK = 1 << 18


def _read_mono_region(path: Path, sample_rate: int | None, start: float, duration: float | None) -> np.ndarray:
    """Seconds [start, start + duration) of ``path`` (all of it by default) as mono float32 at ``sample_rate``, read
    in blocks so that memory holds the mono output, not the whole multichannel file at its own rate."""
    info = _info(path)
    sr = int(info.samplerate)
    a = int(round(start * sr))
    if start < 0 or a > info.frames:
        raise AudioError(f"{path}: start={start} s is outside the file ({info.frames / sr:.3f} s)")
    n = info.frames - a if duration is None else min(info.frames - a, int(round(duration * sr)))
    stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="VHQ") \
        if sample_rate is not None and sample_rate != sr else None
    out, done = [], 0
    try:
        with sf.SoundFile(_native(path)) as f:
            f.seek(a)
            while done < n:
                block = f.read(min(_BLOCK, n - done), dtype="float32", always_2d=True)
                if not len(block):
                    break
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: contains {int((~np.isfinite(block)).sum())} NaN/Inf samples; "
                                     f"expected finite samples")
                done += len(block)
                mono = block.mean(axis=1)
                out.append(stream.resample_chunk(mono, last=done >= n) if stream is not None else mono)
            if stream is not None and done < n:
                out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: corrupt or truncated audio data ({_clean(e)})") from None
    if done == 0:
        raise AudioError(f"{path}: zero-length audio (0 frames)" if not info.frames else
                         f"{path}: no samples in [{start}, {start + (duration or 0)}) s")
    short = _wav_missing_bytes(path) if info.format in ("WAV", "WAVEX", "RF64") else 0
    if short > 0:
        raise AudioError(f"{path}: truncated file: its data chunk is {short} bytes shorter than its header says")
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """[C, T] or [T] -> [T] by averaging channels."""
    return wav if wav.ndim == 1 else wav.mean(axis=0)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr VHQ) along the last axis of [T] or [C, T] float32."""
    if orig_sr == target_sr:
        return wav
    if wav.ndim == 1:
        return soxr.resample(wav, orig_sr, target_sr, quality="VHQ").astype(np.float32)
    # soxr wants [T, C]
    return soxr.resample(wav.T, orig_sr, target_sr, quality="VHQ").T.astype(np.float32)


def peak_normalize(wav: np.ndarray, peak: float = 0.95, eps: float = 1e-8) -> np.ndarray:
    """Scale so that max |wav| == ``peak`` (silence stays silence). Any shape."""
    m = float(np.abs(wav).max()) if wav.size else 0.0
    return wav if m < eps else (wav * (peak / m)).astype(wav.dtype)


def pad_or_crop(wav: np.ndarray, length: int, offset: int | None = 0,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Return exactly ``length`` samples of [..., T] audio.

    Longer input is cropped at ``offset`` (``offset=None`` draws a uniformly random offset from ``rng``);
    shorter input is zero-padded at the end.
    """
    t = wav.shape[-1]
    if t >= length:
        if offset is None:
            offset = int((rng or np.random.default_rng()).integers(0, t - length + 1))
        offset = max(0, min(offset, t - length))
        return wav[..., offset:offset + length]
    pad = [(0, 0)] * (wav.ndim - 1) + [(0, length - t)]
    return np.pad(wav, pad)


def save_audio(path: str | os.PathLike, wav, sample_rate: int, overwrite: bool = False,
               subtype: str | None = None) -> Path:
    """Write [T] or [C, T] audio atomically (temp file in the same folder, then rename).

    The format comes from the extension (.wav, .flac, .ogg, ...). Refuses to replace an existing file unless
    ``overwrite``. Non-finite samples are an error; values are clipped to [-1, 1] by the encoder for integer formats.
    """
    path = Path(path)
    wav = np.asarray(wav.detach().cpu() if hasattr(wav, "detach") else wav, dtype=np.float32)
    if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
        raise AudioError(f"{path}: expected a non-empty [T] or [C, T] waveform, got shape {tuple(wav.shape)}")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: refusing to write a waveform containing NaN/Inf")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")
    fmt = _EXT_ALIASES.get(path.suffix.lstrip(".").upper(), path.suffix.lstrip(".").upper())
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: unsupported output extension '{path.suffix}'; use one of "
                         f"{', '.join('.' + f.lower() for f in sorted(sf.available_formats()))}")
    with atomic_path(path) as tmp:
        sf.write(tmp, wav.T if wav.ndim == 2 else wav, sample_rate, format=fmt, subtype=subtype)
    return path
