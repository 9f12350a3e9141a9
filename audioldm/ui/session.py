"""`audioldm ui`: a local web page (Gradio, the optional ``.[ui]`` extra) for one loaded model folder.

The page has a prompt and negative prompt, one widget per label field of the model's conditioner (a dropdown for a
categorical field, a slider for a numeric one), the generation settings, and an audio-to-audio tab (style transfer,
inpainting, super-resolution). Each request writes its samples as WAV + spectrogram PNG + ``manifest.json`` +
``index.html`` (the export format, :mod:`audioldm.export`) into its own folder under ``out_root`` and offers them as a
zip. Requests run one at a time (one queue for the model); a request that fails shows the model's error message in
the page and the server keeps serving. Analytics are off and the page loads nothing from outside the server.

This module is the request logic (:class:`Session`) and needs no Gradio; :mod:`audioldm.ui.page` builds the page
around it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
import zipfile
from pathlib import Path

from ..errors import UnknownWordsWarning
from ..files import atomic_path

__all__ = ["MAX_SAMPLES", "MAX_STEPS", "MAX_SECONDS", "MAX_UPLOAD_MB", "KEEP_REQUESTS", "EDIT_MODES", "Session",
           "label_fields", "describe_reads", "require_gradio"]

MAX_SAMPLES = 4  # audio + spectrogram slots on the page
EDIT_MODES = ("transform", "inpaint", "super_resolve", "continue")
# what one request may ask (README "Limits"): checked before any audio is read or any step is run
MAX_STEPS = 200
MAX_SECONDS = 60.0  # generated duration, and the length of an uploaded clip
MAX_UPLOAD_MB = 50
KEEP_REQUESTS = 200  # request folders kept under out_root; older ones are removed


def require_gradio():
    """Import Gradio with analytics off, or raise ImportError saying how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise ImportError("audioldm ui needs Gradio: pip install 'audioldm[ui]' (or pip install gradio)") from None
    return gradio


def label_fields(pipe) -> list:
    """The conditioner's label fields (LabelField: name, kind "categorical" / "numeric", values, low, high), or []
    for a text-only model."""
    if pipe.conditioning == "labels":
        return list(pipe.conditioner.config.fields)
    if pipe.conditioning == "both":
        return list(pipe.conditioner.labels.config.fields)
    return []


def _number(v):
    """A slider value as the label conditioner expects it: an int when it is whole."""
    return int(v) if float(v).is_integer() else float(v)


def _check_upload(path: Path) -> None:
    """Refuse an upload over the page's limits from its size and header alone, before reading its samples."""
    import soundfile as sf

    mb = path.stat().st_size / 2 ** 20
    if mb > MAX_UPLOAD_MB:
        raise ValueError(f"{path.name}: {mb:.0f} MB, over the {MAX_UPLOAD_MB} MB upload limit")
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - the message names the file; load_audio would say the same later
        raise ValueError(f"{path.name}: not an audio file soundfile can read ({e})") from None
    if info.duration > MAX_SECONDS:
        raise ValueError(f"{path.name}: {info.duration:.1f} s long, over the {MAX_SECONDS:g} s limit for "
                         f"audio-to-audio on this page; trim it first")


class Session:
    """The request logic behind the page, for one pipeline: turns form values into ``generate`` / editing calls and
    writes each result as an export folder + zip under ``out_root``. A lock keeps it to one request at a time
    (Gradio's queue already does; this guards direct callers too)."""

    def __init__(self, pipe, out_root, model_id: str | None = None, keep: int = KEEP_REQUESTS):
        self.pipe, self.out_root, self.model_id, self.keep = pipe, Path(out_root), model_id or pipe.name, keep
        self.fields = label_fields(pipe)
        self._lock = threading.Lock()
        self._count = 0

    # ---- form -> request -------------------------------------------------------------------------------------------
    def request(self, prompt: str | None, use_labels: bool, label_values: list) -> tuple[str | None, dict | None]:
        """(prompt, labels) for the pipeline. A label model that parses prompts uses the prompt when one is typed,
        else the label widgets; a joint model reads the prompt and, when ``use_labels``, the labels too."""
        prompt = (prompt or "").strip() or None
        labels = {f.name: (v if f.kind == "categorical" else _number(v))
                  for f, v in zip(self.fields, label_values) if v is not None and v != ""} if self.fields else None
        kind = self.pipe.conditioning
        if kind == "text":
            if prompt is None:
                raise ValueError("type a prompt: this model is text-conditioned")
            return prompt, None
        if kind == "labels":
            if prompt is not None and self.pipe.reads_prompts:
                return prompt, None
            if not use_labels:
                raise ValueError("type a prompt or tick 'use the label fields'")
            return None, labels
        if prompt is None and not use_labels:
            raise ValueError("type a prompt, tick 'use the label fields', or both")
        return prompt, (labels if use_labels else None)

    @staticmethod
    def settings(duration, steps, guidance, sampler, seed, random_seed: bool, num: int, loop: bool = False) -> dict:
        """Form settings -> generate() keyword arguments (the pipeline validates their ranges)."""
        import random
        if num is None or not 1 <= int(num) <= MAX_SAMPLES:
            raise ValueError(f"number of samples must be 1 to {MAX_SAMPLES}, got {num}")
        if random_seed or seed is None:
            seed = random.randrange(2**31)
        if steps not in (None, "") and not 1 <= int(steps) <= MAX_STEPS:
            raise ValueError(f"steps must be 1 to {MAX_STEPS} on this page, got {steps}")
        if duration not in (None, "") and not 0 < float(duration) <= MAX_SECONDS:
            raise ValueError(f"duration must be above 0 and at most {MAX_SECONDS:g} s on this page, got {duration}")
        return {"duration": None if duration in (None, "") else float(duration),
                "steps": None if steps in (None, "") else int(steps),
                "guidance": None if guidance in (None, "") else float(guidance), "sampler": sampler or None,
                "seed": int(seed), "num": int(num), "loop": bool(loop)}

    # ---- running ---------------------------------------------------------------------------------------------------
    def generate(self, prompt, negative_prompt, use_labels, label_values, settings: dict) -> dict:
        """Generate; returns :meth:`_write`'s record. Raises the pipeline's own errors."""
        p, labels = self.request(prompt, use_labels, label_values)
        s = dict(settings)
        num = s.pop("num")
        return self._run(self.pipe.generate, p, labels, num, negative_prompt=(negative_prompt or "").strip() or None,
                         num_per_prompt=num, **s)

    def edit(self, mode: str, audio_path, prompt, negative_prompt, use_labels, label_values, settings: dict,
             strength: float = 0.6, start: float = 0.0, end: float = 1.0, cutoff_hz: float = 4000.0,
             seconds: float = 2.0) -> dict:
        """Audio to audio: ``mode`` one of EDIT_MODES on the file ``audio_path`` (its own duration; the settings'
        duration is not used). Returns :meth:`_write`'s record."""
        if mode not in EDIT_MODES:
            raise ValueError(f"mode must be one of {EDIT_MODES}, got {mode!r}")
        if not audio_path:
            raise ValueError("upload an audio clip first")
        _check_upload(Path(audio_path))
        p, labels = self.request(prompt, use_labels, label_values)
        s = {k: v for k, v in settings.items() if k not in ("duration", "num", "loop")}
        if settings.get("loop"):
            raise ValueError(f"{mode}: the seamless-loop box applies to Generate; an edit keeps its input's ends")
        neg = (negative_prompt or "").strip() or None
        extra = {"transform": {"strength": float(strength)}, "inpaint": {"start": float(start), "end": float(end)},
                 "super_resolve": {"cutoff_hz": float(cutoff_hz)}, "continue": {"seconds": float(seconds)}}[mode]
        if mode == "continue" and not 0 < float(seconds) <= MAX_SECONDS:
            raise ValueError(f"seconds to add must be above 0 and at most {MAX_SECONDS:g}, got {seconds}")
        method = self.pipe.continue_audio if mode == "continue" else getattr(self.pipe, mode)
        return self._run(method, p, labels, 1, str(audio_path), negative_prompt=neg, **extra, **s)

    def _run(self, method, prompt, labels, num: int, *args, **kw) -> dict:
        """``method(*args, prompt=, labels=, **kw)`` alone (the lock), then :meth:`_write`; the record gains
        "warnings": the unknown-word warnings the call gave."""
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = method(*args, prompt=prompt, labels=labels, **kw)
            said = sorted({str(w.message) for w in caught if issubclass(w.category, UnknownWordsWarning)})
            return {**self._write(res, prompt, labels, num), "warnings": said}

    def _prune(self) -> None:
        """Keep the newest ``keep`` request folders (and their zips) under out_root; remove the older ones."""
        done = sorted((p for p in self.out_root.glob("request_*") if p.is_dir()), key=lambda p: p.name)
        for old in done[:-self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
            old.with_suffix(".zip").unlink(missing_ok=True)

    def _write(self, res, prompt, labels, num: int) -> dict:
        """Write ``res`` as an export folder ``out_root/request_NNNN`` and its zip. Returns {"folder", "zip",
        "samples": manifest records, "wavs": paths, "pngs": paths}."""
        from ..config import save_json_atomic
        from ..export import make_manifest, write_gallery, write_result

        self._count += 1
        folder = self.out_root / f"request_{self._count:04d}"
        while folder.exists():
            self._count += 1
            folder = self.out_root / f"request_{self._count:04d}"
        folder.mkdir(parents=True)
        samples = write_result(self.pipe, res, folder, [f"sample_{k + 1}" for k in range(len(res))], prompt, labels)
        manifest = make_manifest(self.pipe, samples, [], num, "wav", self.model_id)
        save_json_atomic(folder / "manifest.json", manifest)
        write_gallery(folder, manifest)
        zpath = folder.with_suffix(".zip")
        with atomic_path(zpath) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.iterdir()):
                z.write(f, f"{folder.name}/{f.name}")
        self._prune()
        return {"folder": folder, "zip": zpath, "samples": samples,
                "wavs": [folder / s["file"] for s in samples], "pngs": [folder / s["spectrogram"] for s in samples]}


def describe_reads(samples: list[dict]) -> str:
    """Markdown: per sample, the seed, what the model read (labels or tokens) and any warning."""
    lines = []
    for k, s in enumerate(samples, 1):
        read = {key: s[key] for key in ("labels", "tokens", "unknown_words") if s.get(key)}
        parts = [f"**sample {k}** · seed {s['seed']} · {s['duration_s']:.2f} s"]
        parts += [f"{key}: `{json.dumps(v)}`" for key, v in read.items()]
        lines.append(" · ".join(parts))
    return "\n\n".join(lines)

