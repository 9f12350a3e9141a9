"""Sample export: read a prompt file, generate every row with an :class:`~audioldm.pipeline.AudioLDM`, and write one
audio file + one spectrogram PNG per sample, ``manifest.json`` (every parameter) and a self-contained ``index.html``
gallery (inline CSS/JS, relative links to the files next to it). Nothing is overwritten unless asked; a row that fails
is recorded in the manifest and the others are still exported.

Prompt files: ``.txt`` (one prompt per line; blank lines and ``#`` comments skipped), ``.jsonl`` (objects with
``prompt`` and/or ``labels``, optional ``seed``, ``negative_prompt``, ``duration``) or ``.csv`` (columns ``prompt``,
``seed``, ``negative_prompt``, ``duration``, ``labels`` as a JSON object; any other column is a label field).
"""

from __future__ import annotations

import csv
import html
import json
import re
import time
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic

__all__ = ["ExportError", "read_prompt_file", "sanitize_name", "export_samples", "write_result", "make_manifest",
           "write_gallery", "save_spectrogram"]

RESERVED = ("prompt", "labels", "seed", "negative_prompt", "duration")


class ExportError(ValueError):
    """A prompt file or output folder that cannot be used; the message names the file (and row)."""


_NUMBER = re.compile(r"[+-]?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def parse_number(v: str):
    """A CSV label cell: '60' -> 60, '0.5' -> 0.5; anything that is not plainly a number stays text ('007' keeps its
    zeros, 'nan' / 'inf' are not numbers)."""
    if not isinstance(v, str) or not _NUMBER.fullmatch(v.strip()):
        return v
    v = v.strip()
    return int(v) if re.fullmatch(r"[+-]?(0|[1-9]\d*)", v) else float(v)


def _csv_number(v: str):
    """A CSV seed / duration cell: a number, or the text itself (refused by the checks that follow)."""
    for cast in (int, float):
        try:
            return cast(v)
        except (TypeError, ValueError):
            pass
    return v


def read_prompt_file(path) -> list[dict]:
    """Rows ``{"prompt": str | None, "labels": dict | None, "seed": int | None, ...}`` from a .txt/.jsonl/.csv."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: prompt file not found")
    text = path.read_text(encoding="utf-8")
    rows: list[dict] = []
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExportError(f"{path}:{i}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ExportError(f"{path}:{i}: expected a JSON object")
            row = {k: v for k, v in obj.items() if k in RESERVED}
            extra = {k: v for k, v in obj.items() if k not in RESERVED}  # as in a CSV: other keys are labels
            if extra:
                row["labels"] = {**extra, **(row.get("labels") or {})} if isinstance(row.get("labels"), dict) \
                    or row.get("labels") is None else row["labels"]
            rows.append({**row, "_line": i})
    elif suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ExportError(f"{path}: empty CSV (expected a header row with prompt/labels/seed columns)")
        for i, rec in enumerate(reader, 2):
            row = {"_line": i}
            labels = {}
            for k, v in rec.items():
                if k is None or v is None or v == "":
                    continue
                k = k.strip()
                if k == "labels":
                    try:
                        labels.update(json.loads(v))
                    except (json.JSONDecodeError, TypeError, ValueError):
                        raise ExportError(f"{path}:{i}: column labels must be a JSON object, got {v!r}") from None
                elif k in RESERVED:
                    row[k] = v if k in ("prompt", "negative_prompt") else _csv_number(v)
                else:
                    labels[k] = parse_number(v)
            if labels:
                row["labels"] = labels
            rows.append(row)
    else:  # plain text
        rows = [{"prompt": line.strip(), "_line": i} for i, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    for r in rows:
        for k in ("prompt", "negative_prompt"):
            if r.get(k) is not None and not isinstance(r[k], str):
                raise ExportError(f"{path}:{r['_line']}: {k} must be text, got {r[k]!r}")
        if r.get("prompt") is None and r.get("labels") is None:
            raise ExportError(f"{path}:{r['_line']}: row has neither a prompt nor labels")
        if "labels" in r and not isinstance(r["labels"], dict):
            raise ExportError(f"{path}:{r['_line']}: labels must be an object, got {r['labels']!r}")
        if r.get("seed") is not None and not isinstance(r["seed"], int):
            raise ExportError(f"{path}:{r['_line']}: seed must be an integer, got {r['seed']!r}")
    if not rows:
        raise ExportError(f"{path}: no prompts in the file")
    return rows


def sanitize_name(text: str, taken: set[str], max_len: int = 60) -> str:
    """A file-name stem from free text: lower-case [a-z0-9_-] only (no separators, no leading dots), at most
    ``max_len`` characters, unique against ``taken`` (adds -2, -3, ...); records the result in ``taken``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-_.")[:max_len].strip("-") or "sample"
    name, k = s, 2
    while name in taken:
        name = f"{s[:max_len - 1 - len(str(k))]}-{k}"
        k += 1
    taken.add(name)
    return name


def save_spectrogram(path, mel: np.ndarray, sample_rate: int, hop: int, title: str = "") -> Path:
    """Write a log-mel [n_mels, frames] as a PNG (matplotlib, Agg backend), atomically."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=80)
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=max(float(mel.min()), float(mel.max()) - 12),
              extent=(0, mel.shape[1] * hop / sample_rate, 0, mel.shape[0]))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title[:80].replace("$", r"\$"), fontsize=9)  # a prompt's "$" is text, not mathtext
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em}
.card h2{font-size:1em;margin:.2em 0 .5em}.card img{width:100%}audio{width:100%}
table{font-size:.8em;border-collapse:collapse}td{padding:1px 6px;border-bottom:1px solid #eee;vertical-align:top}
#status.bad{color:#b00;font-weight:bold}.failed{border-color:#b00}"""

# Marks each <audio>/<img> data-ok="1" once it has loaded (data-ok="0" on error) and sums it up in #status, so a
# broken reference is visible to the reader and to a headless browser test.
_JS = """(function(){var els=[].slice.call(document.querySelectorAll('audio,img')),left=els.length,bad=0;
function done(e,ok){if(e.dataset.ok)return;e.dataset.ok=ok?'1':'0';if(!ok)bad++;left--;
var s=document.getElementById('status');s.textContent=left?('loading '+left+' files'):(bad?(bad+' file(s) failed to load'):
'all '+els.length+' files loaded');s.className=bad?'bad':'';s.dataset.bad=bad;s.dataset.pending=left;}
els.forEach(function(e){if(e.tagName==='IMG'){if(e.complete){done(e,e.naturalWidth>0)}else{
e.addEventListener('load',function(){done(e,e.naturalWidth>0)});e.addEventListener('error',function(){done(e,false)})}}
else{if(e.readyState>=1){done(e,true)}else{e.addEventListener('loadedmetadata',function(){done(e,true)});
e.addEventListener('error',function(){done(e,false)},true);e.load()}}});
if(!els.length){document.getElementById('status').textContent='no samples';}})();"""


def write_gallery(out_dir, manifest: dict) -> Path:
    """Write ``out_dir/index.html`` for a manifest written by :func:`export_samples`."""
    esc = html.escape
    cards = []
    for s in manifest["samples"]:
        title = s["prompt"] if s["prompt"] is not None else ", ".join(f"{k}={v}" for k, v in s["labels"].items())
        rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(json.dumps(v))}</td></tr>"
                       for k, v in s.items() if k not in ("file", "spectrogram"))
        cards.append(f'<div class="card"><h2>{esc(title)}</h2>'
                     f'<audio controls preload="metadata" src="{esc(s["file"])}"></audio>'
                     f'<img src="{esc(s["spectrogram"])}" alt="spectrogram of {esc(s["file"])}">'
                     f"<table>{rows}</table></div>")
    for f in manifest["failures"]:
        cards.append(f'<div class="card failed"><h2>row {f["row"]} failed</h2><p>{esc(f["error"])}</p></div>')
    params = "".join(f"<tr><td>{esc(k)}</td><td>{esc(json.dumps(v))}</td></tr>"
                     for k, v in manifest.items() if k not in ("samples", "failures"))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(manifest["model"])} samples'
            f"</title><style>{_CSS}</style></head><body><h1>{esc(manifest['model'])}: "
            f"{len(manifest['samples'])} samples</h1><p id=\"status\">loading</p><table>{params}</table>"
            f'<div class="grid">{"".join(cards)}</div><script>{_JS}</script></body></html>\n')
    path = Path(out_dir) / "index.html"
    write_bytes_atomic(path, page.encode("utf-8"))
    return path


def _plan(pipe, rows: list[dict], num_per_prompt: int, fmt: str, base_seed: int | None) -> list[dict]:
    """One entry per output sample: row index, request, seed, file names."""
    taken: set[str] = set()
    plan = []
    for i, r in enumerate(rows):
        label_text = "_".join(f"{k}-{v}" for k, v in (r.get("labels") or {}).items())
        stem_src = r.get("prompt") or label_text
        seed0 = r.get("seed")
        if seed0 is None:  # rows far enough apart that num_per_prompt seeds each never overlap
            seed0 = (base_seed if base_seed is not None else 0) + max(1000, num_per_prompt) * i
        for k in range(num_per_prompt):
            stem = sanitize_name(stem_src + (f" {k + 1}" if num_per_prompt > 1 else ""), taken)
            plan.append({"row": i, "k": k, "seed": seed0 + k, "file": f"{stem}.{fmt}", "spectrogram": f"{stem}.png"})
    return plan


def write_result(pipe, res, out: Path, stems: list[str], prompt=None, labels=None, fmt: str = "wav") -> list[dict]:
    """Write sample k of ``res`` (a GenerationResult) as ``out/stems[k].fmt`` + ``out/stems[k].png``; returns one
    manifest record per sample: files, the request (``prompt``, ``labels``), what the model read, seed and settings."""
    from .audio import save_audio

    records = []
    for stem, wav, mel, read, seed in zip(stems, res.audio, res.mels.numpy(), res.reads, res.seeds):
        file, spec = f"{stem}.{fmt}", f"{stem}.png"
        save_audio(out / file, wav, res.sample_rate, overwrite=True)
        save_spectrogram(out / spec, mel, res.sample_rate, pipe.mel_config.hop_length, prompt or file)
        prm = {k: v for k, v in res.params.items() if k not in ("seeds", "model", "audioldm_version")}
        if prm.get("mode") == "generate":
            del prm["mode"]
        # what the model was actually asked: parsed labels, or the tokens a text encoder kept (+ dropped)
        records.append({"file": file, "spectrogram": spec, "prompt": prompt,
                        "labels": read.get("labels", labels), **{k: v for k, v in read.items() if k != "labels"},
                        "seed": seed, **prm, "duration_s": round(len(wav) / res.sample_rate, 4)})
    return records


def make_manifest(pipe, samples: list[dict], failures: list[dict], num_per_prompt: int, fmt: str,
                  model_id: str | None = None) -> dict:
    """The export manifest (``manifest.json``): model, version, time, rate, and the sample / failure records."""
    from . import __version__
    return {"model": pipe.name, "model_id": model_id or pipe.name, "audioldm_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sample_rate": pipe.sample_rate,
            "num_per_prompt": num_per_prompt, "format": fmt, "samples": samples, "failures": failures}


def export_samples(pipe, rows: list[dict], out_dir, duration=None, steps=None, guidance=None, sampler=None,
                   seed: int | None = None, negative_prompt=None, num_per_prompt: int = 1, fmt: str = "wav",
                   overwrite: bool = False, progress: bool = True, model_id: str | None = None,
                   loop: bool = False) -> dict:
    """Generate and write every row (``loop``: seamless loops); returns the manifest (``failures`` lists the rows
    that failed)."""
    if fmt not in ("wav", "flac"):
        raise ExportError(f"format must be wav or flac, got {fmt!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    plan = _plan(pipe, rows, num_per_prompt, fmt, seed)
    if not overwrite and out.exists():
        clash = [n for p in plan for n in (p["file"], p["spectrogram"]) if (out / n).exists()]
        clash += [n for n in ("manifest.json", "index.html") if (out / n).exists()]
        if clash:
            raise ExportError(f"{out}: would overwrite {len(clash)} existing file(s) ({', '.join(clash[:5])}"
                              f"{', ...' if len(clash) > 5 else ''}); pass --overwrite or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    samples, failures = [], []
    from tqdm import tqdm
    for i, r in enumerate(tqdm(rows, desc="export", unit="row", disable=not progress)):
        mine = [p for p in plan if p["row"] == i]
        try:
            use_prompt = r.get("labels") is None or pipe.conditioning == "both"  # a joint model reads both
            res = pipe.generate(prompt=r.get("prompt") if use_prompt else None, labels=r.get("labels"),
                                duration=r.get("duration", duration), steps=steps, guidance=guidance, sampler=sampler,
                                seed=[p["seed"] for p in mine], num_per_prompt=len(mine),
                                negative_prompt=r.get("negative_prompt", negative_prompt), progress=progress,
                                loop=loop)
            samples += write_result(pipe, res, out, [p["file"].rsplit(".", 1)[0] for p in mine], r.get("prompt"),
                                    r.get("labels"), fmt)
        except Exception as e:  # one bad row must not lose the others
            failures.append({"row": i, "line": r.get("_line"), "prompt": r.get("prompt"), "labels": r.get("labels"),
                             "error": f"{type(e).__name__}: {e}"})
    manifest = make_manifest(pipe, samples, failures, num_per_prompt, fmt, model_id)
    from .config import save_json_atomic
    save_json_atomic(out / "manifest.json", manifest)
    write_gallery(out, manifest)
    return manifest

