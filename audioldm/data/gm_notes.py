"""NSynth-like General-MIDI note renderer: one sustained note per clip from a SoundFont, with labels and captions.

Needs ``tinysoundfont`` (install with ``pip install --no-deps tinysoundfont``) and, for the default soundfont
(TimGM6mb.sf2, shipped inside the ``pretty_midi`` wheel) and GM instrument names, ``pretty_midi``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import preset

__all__ = ["NoteGrid", "GRID_PRESETS", "default_soundfont", "gm_instrument", "note_name", "captions_for",
           "NoteRenderer", "render_grid", "SHORT_NAMES"]

# Short, caption-friendly names for the programs the small presets use (GM program number, 0-based).
SHORT_NAMES = {0: "piano", 12: "marimba", 19: "organ", 24: "guitar", 40: "violin", 42: "cello", 56: "trumpet",
               71: "clarinet", 73: "flute", 33: "bass", 65: "saxophone", 46: "harp"}
DRUM_PROGRAM = 128  # our pseudo program number for the GM drum kit (channel 10)

# Rough playable MIDI ranges per GM family (program // 8), used by the `full` preset.
FAMILY_RANGES = [(21, 108), (60, 96), (36, 96), (40, 84), (28, 60), (36, 96), (36, 96), (40, 84),
                 (40, 84), (48, 96), (36, 96), (36, 84), (36, 84), (48, 84), (48, 84), (48, 72)]
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def note_name(pitch: int) -> str:
    """Scientific pitch name: 60 -> 'C4', 61 -> 'C#4'."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def default_soundfont() -> Path:
    """TimGM6mb.sf2 from the pretty_midi package."""
    try:
        import pretty_midi
    except ImportError:
        raise ImportError("the default soundfont ships with pretty_midi: pip install pretty_midi "
                          "(or pass a .sf2/.sf3 file)") from None
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def gm_instrument(program: int) -> tuple[str, str]:
    """(short instrument name, family name) for a GM program number (0-127) or DRUM_PROGRAM."""
    if program == DRUM_PROGRAM:
        return "drum kit", "drums"
    from pretty_midi.constants import INSTRUMENT_CLASSES, INSTRUMENT_MAP
    family = INSTRUMENT_CLASSES[program // 8].lower()
    if program in SHORT_NAMES:
        return SHORT_NAMES[program], family
    name = INSTRUMENT_MAP[program].lower().replace("(", "").replace(")", "")
    return " ".join(name.split()), family


def velocity_word(velocity: int) -> str:
    return "soft" if velocity < 56 else ("medium" if velocity < 96 else "loud")


def captions_for(instrument: str, pitch: int, velocity: int) -> list[str]:
    """Several phrasings of one note's description (the first is the canonical one)."""
    n, v = note_name(pitch), velocity_word(velocity)
    art = "an" if instrument[0] in "aeiou" else "a"
    return [f"{art} {instrument} playing {n}, {v}", f"{instrument}, {n}", f"{n} on the {instrument}",
            f"a {v} {instrument} note, {n}", f"{instrument} {n} {v}"]


@dataclass
class NoteGrid:
    """Which notes to render: programs x pitches x velocities, and the clip timing."""

    programs: list[int]
    pitches: list[int] | None  # None = each family's playable range (FAMILY_RANGES)
    velocities: list[int]
    clip_seconds: float = 2.0
    hold_seconds: float = 1.0
    drum_keys: list[int] = field(default_factory=list)  # rendered with the GM drum kit when non-empty

    def notes(self) -> list[tuple[int, int, int]]:
        out = []
        for prog in self.programs:
            lo, hi = FAMILY_RANGES[prog // 8]
            for p in (self.pitches if self.pitches is not None else range(lo, hi + 1)):
                out += [(prog, p, v) for v in self.velocities]
        out += [(DRUM_PROGRAM, k, v) for k in self.drum_keys for v in self.velocities]
        return out


GRID_PRESETS = {  # name -> factory (config.preset)
    "tiny": preset(NoteGrid, programs=[0, 40, 56, 73], pitches=[48, 52, 55, 60, 64, 67, 72, 76], velocities=[100]),
    # 2.08 s: onset to the end of the release tail, and 52 latent frames (the demo U-Net needs a multiple of 4)
    "demo": preset(NoteGrid, programs=[0, 12, 19, 24, 40, 56, 71, 73], pitches=list(range(48, 84)),
                   velocities=[40, 80, 120], clip_seconds=2.08),
    "full": preset(NoteGrid, programs=list(range(128)), pitches=None, velocities=[25, 50, 75, 100, 127],
                   drum_keys=list(range(35, 82))),
}


class NoteRenderer:
    """Renders single notes from one SoundFont at ``sample_rate`` into mono float32 [T]."""

    def __init__(self, soundfont: str | os.PathLike | None = None, sample_rate: int = 16000, gain_db: float = 6.0):
        try:
            import tinysoundfont
        except ImportError:
            raise ImportError("rendering notes needs tinysoundfont: pip install --no-deps tinysoundfont") from None
        self.soundfont = Path(soundfont) if soundfont else default_soundfont()
        if not self.soundfont.is_file():
            raise FileNotFoundError(f"{self.soundfont}: soundfont not found (expected a .sf2/.sf3 file)")
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(gain=gain_db, samplerate=sample_rate)
        try:
            self.sfid = self.synth.sfload(str(self.soundfont))
        except Exception as e:
            raise ValueError(f"{self.soundfont}: not a readable SoundFont ({e})") from None

    def render(self, program: int, pitch: int, velocity: int, clip_seconds: float = 2.0,
               hold_seconds: float = 1.0) -> np.ndarray:
        """One note held ``hold_seconds`` then released, in a clip of ``clip_seconds``: float32 [T]."""
        sr, s = self.sample_rate, self.synth
        total, hold = int(round(clip_seconds * sr)), int(round(min(hold_seconds, clip_seconds) * sr))
        drums = program == DRUM_PROGRAM
        s.sounds_off()
        try:
            s.program_select(0, self.sfid, 0, 0 if drums else program, is_drums=drums)
        except Exception:
            return np.zeros(total, np.float32)  # preset missing from this soundfont: reported as silent
        s.noteon(0, pitch, velocity)
        a = np.frombuffer(s.generate(hold), dtype=np.float32)
        s.noteoff(0, pitch)
        b = np.frombuffer(s.generate(total - hold), dtype=np.float32) if total > hold else np.zeros(0, np.float32)
        s.sounds_off()
        return np.concatenate([a, b]).reshape(-1, 2).mean(axis=1).astype(np.float32)


def render_grid(grid: NoteGrid, out_dir: str | os.PathLike, soundfont=None, sample_rate: int = 16000,
                gain_db: float = 6.0, silence_peak: float = 1e-3, overwrite: bool = False, progress=None,
                valid_fraction: float = 0.1) -> dict:
    """Render every note of ``grid`` into ``out_dir/audio/*.wav`` and write ``out_dir/manifest.jsonl``, whose
    ``split`` column holds ``valid_fraction`` of the notes out (the one hash split, by path: data/split.py).

    Silent renders (peak < ``silence_peak``) are dropped and reported; clips that would clip are scaled to a peak
    of 0.99 and counted. Returns a summary dict. Refuses to touch an existing manifest unless ``overwrite``.
    """
    from ..audio import save_audio
    from .manifest import write_manifest
    from .split import hash_split

    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.jsonl"
    if manifest.exists() and not overwrite:
        raise FileExistsError(f"{manifest}: already exists; pass --overwrite to render again")
    renderer = NoteRenderer(soundfont, sample_rate, gain_db)
    t0 = time.time()
    rows, silent, limited = [], [], 0
    notes = grid.notes()
    for prog, pitch, vel in (progress(notes) if progress else notes):
        wav = renderer.render(prog, pitch, vel, grid.clip_seconds, grid.hold_seconds)
        instrument, family = gm_instrument(prog)
        peak = float(np.abs(wav).max())
        if peak < silence_peak:
            silent.append(f"{instrument} pitch {pitch} velocity {vel}")
            continue
        if peak > 0.99:
            wav, limited = wav * (0.99 / peak), limited + 1
        name = f"{instrument.replace(' ', '-')}_{pitch:03d}_{vel:03d}.wav"
        save_audio(out_dir / "audio" / name, wav, sample_rate, overwrite=True, subtype="PCM_16")
        caps = captions_for(instrument, pitch, vel)
        rows.append({"path": f"audio/{name}", "caption": caps[0], "captions": caps, "instrument": instrument,
                     "family": family, "program": prog, "pitch": pitch, "velocity": vel})
    if not rows:
        raise RuntimeError(f"{renderer.soundfont}: every note rendered silent; is it a General-MIDI soundfont?")
    held = hash_split([r["path"] for r in rows], valid_fraction)
    for r in rows:
        r["split"] = "valid" if r["path"] in held else "train"
    write_manifest(manifest, rows)
    per_instrument = {}
    for r in rows:
        per_instrument[r["instrument"]] = per_instrument.get(r["instrument"], 0) + 1
    return {"manifest": str(manifest), "soundfont": str(renderer.soundfont), "clips": len(rows),
            "hours": round(len(rows) * grid.clip_seconds / 3600, 4), "sample_rate": sample_rate,
            "instruments": per_instrument, "dropped_silent": len(silent), "silent": silent,
            "peak_limited": limited, "valid_clips": len(held), "seconds": round(time.time() - t0, 2)}
