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
import threading
import warnings
import zipfile
from pathlib import Path

from ..errors import UnknownWordsWarning
from ..files import atomic_path

__all__ = ["MAX_SAMPLES", "EDIT_MODES", "Session", "label_fields", "describe_reads", "require_gradio"]

MAX_SAMPLES = 4  # audio + spectrogram slots on the page
EDIT_MODES = ("transform", "inpaint", "super_resolve")


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


class Session:
    """The request logic behind the page, for one pipeline: turns form values into ``generate`` / editing calls and
    writes each result as an export folder + zip under ``out_root``. A lock keeps it to one request at a time
    (Gradio's queue already does; this guards direct callers too)."""

    def __init__(self, pipe, out_root, model_id: str | None = None):
        self.pipe, self.out_root, self.model_id = pipe, Path(out_root), model_id or pipe.name
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
    def settings(duration, steps, guidance, sampler, seed, random_seed: bool, num: int) -> dict:
        """Form settings -> generate() keyword arguments (the pipeline validates their ranges)."""
        import random
        if num is None or not 1 <= int(num) <= MAX_SAMPLES:
            raise ValueError(f"number of samples must be 1 to {MAX_SAMPLES}, got {num}")
        if random_seed or seed is None:
            seed = random.randrange(2**31)
        return {"duration": None if duration in (None, "") else float(duration),
                "steps": None if steps in (None, "") else int(steps),
                "guidance": None if guidance in (None, "") else float(guidance), "sampler": sampler or None,
                "seed": int(seed), "num": int(num)}

    # ---- running ---------------------------------------------------------------------------------------------------
    def generate(self, prompt, negative_prompt, use_labels, label_values, settings: dict) -> dict:
        """Generate; returns :meth:`_write`'s record. Raises the pipeline's own errors."""
        p, labels = self.request(prompt, use_labels, label_values)
        s = dict(settings)
        num = s.pop("num")
        return self._run(self.pipe.generate, p, labels, num, negative_prompt=(negative_prompt or "").strip() or None,
                         num_per_prompt=num, **s)

    def edit(self, mode: str, audio_path, prompt, negative_prompt, use_labels, label_values, settings: dict,
             strength: float = 0.6, start: float = 0.0, end: float = 1.0, cutoff_hz: float = 4000.0) -> dict:
        """Audio to audio: ``mode`` one of EDIT_MODES on the file ``audio_path`` (its own duration; the settings'
        duration is not used). Returns :meth:`_write`'s record."""
        if mode not in EDIT_MODES:
            raise ValueError(f"mode must be one of {EDIT_MODES}, got {mode!r}")
        if not audio_path:
            raise ValueError("upload an audio clip first")
        p, labels = self.request(prompt, use_labels, label_values)
        s = {k: v for k, v in settings.items() if k not in ("duration", "num")}
        neg = (negative_prompt or "").strip() or None
        extra = {"transform": {"strength": float(strength)}, "inpaint": {"start": float(start), "end": float(end)},
                 "super_resolve": {"cutoff_hz": float(cutoff_hz)}}[mode]
        return self._run(getattr(self.pipe, mode), p, labels, 1, str(audio_path), negative_prompt=neg, **extra, **s)

    def _run(self, method, prompt, labels, num: int, *args, **kw) -> dict:
        """``method(*args, prompt=, labels=, **kw)`` alone (the lock), then :meth:`_write`; the record gains
        "warnings": the unknown-word warnings the call gave."""
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = method(*args, prompt=prompt, labels=labels, **kw)
            said = sorted({str(w.message) for w in caught if issubclass(w.category, UnknownWordsWarning)})
            return {**self._write(res, prompt, labels, num), "warnings": said}

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

