"""The `audioldm` command line: `audioldm --version`, `audioldm info FILE...`, `audioldm generate PROMPT -o OUT`,
`audioldm export --prompts FILE --out DIR`, `audioldm ui [--model M]`. Exit codes: 0 success, 1 some samples/files failed, 2 bad usage or input."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import __version__
from .errors import DistilledRangeError
from .pretrained import DEFAULT_MODEL, TEACHER, default_model, shipped_model

DISTRIBUTION = "audioldm-toolkit"  # pyproject's name; AudioLDM's own PyPI package "audioldm" also installs `audioldm`


def _cmd_info(args) -> int:
    from .audio import AudioError, audio_info

    status = 0
    for path in args.files:
        try:
            info = audio_info(path)
        except AudioError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(info))
        else:
            peak_db = 20 * math.log10(max(info["peak"], 1e-12))
            rms_db = 20 * math.log10(max(info["rms"], 1e-12))
            print(f"{info['path']}: {info['duration']:.3f} s, {info['sample_rate']} Hz, {info['channels']} ch, "
                  f"{info['format']}, peak {info['peak']:.4f} ({peak_db:.1f} dBFS), "
                  f"RMS {info['rms']:.4f} ({rms_db:.1f} dBFS)")
    return status


def _teacher_hint() -> None:
    """After a DistilledRangeError from the default model: when that is the shipped student, name its teacher."""
    student, teacher = shipped_model(DEFAULT_MODEL), shipped_model(TEACHER)
    if student and teacher and default_model() == str(student):
        print(f"hint: the default model ({student}) is a distilled 2-evaluation student; for other steps, "
              f"guidance, samplers or a negative prompt use its teacher: --model {teacher}", file=sys.stderr)


def _parse_labels(items: list[str] | None) -> dict | None:
    from .export import parse_number

    if not items:
        return None
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise ValueError(f"--labels: expected KEY=VALUE, got {it!r}")
        out[k] = parse_number(v)
    return out


def _load_pipeline(args):
    import torch

    from .pipeline import AudioLDM

    model = args.model or default_model()
    if model is None:
        raise ValueError("no --model given and no model is shipped with this install (set --model or $AUDIOLDM_MODEL)")
    dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    # no --model: the default, which hands what its student cannot do to its teacher (AudioLDM.answering)
    pipe = AudioLDM.from_pretrained(args.model, device=args.device, dtype=dtype)
    for spec in args.lora or []:  # PATH or PATH:SCALE, merged in order
        path, _, scale = spec.rpartition(":") if ":" in spec else (spec, "", "1")
        try:
            scale = float(scale)
        except ValueError:
            path, scale = spec, 1.0  # a ':' inside the path itself
        pipe.load_lora(path, scale, force=args.force)
    return pipe, model


def _model_id(model: str) -> str:
    """How outputs record the model: a folder as NAME@CONTENT-HASH (no path of this machine), a hub id as it is."""
    from pathlib import Path

    from .files import portable_model_id
    return portable_model_id(model) if Path(model).is_dir() else model


def _cmd_continue(args) -> int:
    from pathlib import Path

    from .audio import save_audio

    labels = _parse_labels(args.labels)
    if args.loop:
        raise ValueError("continue: --loop is not supported (a continuation keeps its input's own start)")
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace")
    pipe, _ = _load_pipeline(args)
    res = pipe.continue_audio(args.input, args.seconds, prompt=args.prompt, labels=labels, steps=args.steps,
                              guidance=args.guidance, sampler=args.sampler, seed=args.seed,
                              negative_prompt=args.negative_prompt, progress=not args.quiet)
    save_audio(out, res.audio[0], res.sample_rate, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out} ({res.audio.shape[1] / res.sample_rate:.2f} s: {args.input} + {args.seconds:g} s)")
    return 0


def _cmd_generate(args) -> int:
    from pathlib import Path

    from .audio import save_audio

    labels = _parse_labels(args.labels)
    if args.prompt is None and labels is None:
        raise ValueError("give a PROMPT, --labels KEY=VALUE ..., or both (for a text + labels model)")
    out = Path(args.output)
    paths = [out] if args.num == 1 else [out.with_name(f"{out.stem}_{k + 1}{out.suffix}") for k in range(args.num)]
    clash = [str(p) for p in paths if p.exists()]
    if clash and not args.overwrite:
        raise FileExistsError(f"{', '.join(clash)}: already exists; pass --overwrite to replace")
    pipe, _ = _load_pipeline(args)
    res = pipe.generate(prompt=args.prompt, labels=labels, duration=args.duration, steps=args.steps,
                        guidance=args.guidance, sampler=args.sampler, seed=args.seed,
                        negative_prompt=args.negative_prompt, num_per_prompt=args.num, progress=not args.quiet,
                        loop=args.loop)
    for p, wav in zip(paths, res.audio):
        save_audio(p, wav, res.sample_rate, overwrite=args.overwrite)
        if not args.quiet:
            print(f"wrote {p} ({len(wav) / res.sample_rate:.2f} s, seed {res.seeds[paths.index(p)]})", file=sys.stderr)
    return 0


def _cmd_export(args) -> int:
    from .export import export_samples, read_prompt_file

    rows = read_prompt_file(args.prompts)
    pipe, model = _load_pipeline(args)
    man = export_samples(pipe, rows, args.out, duration=args.duration, steps=args.steps, guidance=args.guidance,
                         sampler=args.sampler, seed=args.seed, negative_prompt=args.negative_prompt,
                         num_per_prompt=args.num, fmt=args.format, overwrite=args.overwrite,
                         progress=not args.quiet, model_id=_model_id(model), loop=args.loop)
    for f in man["failures"]:
        print(f"error: row {f['row']} (line {f['line']}): {f['error']}", file=sys.stderr)
    if not args.quiet:
        print(f"exported {len(man['samples'])} sample(s) to {args.out} ({len(man['failures'])} row(s) failed); "
              f"open {args.out}/index.html", file=sys.stderr)
    return 1 if man["failures"] else 0


def _cmd_ui(args) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from .ui.session import Session, require_gradio

    if args.out is not None:
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"--out {out}: must be a new or empty folder")
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
    else:
        out, created = Path(tempfile.mkdtemp(prefix="audioldm-ui-")), True
    # Gradio's copies of served files go under OUT too (read when Gradio is imported)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(out / ".gradio"))
    try:
        require_gradio()  # before loading: a missing extra fails fast
        pipe, model = _load_pipeline(args)  # a bad model folder fails here, before any server starts
        from .ui.page import launch

        print(f"audioldm ui: {pipe.name} on http://{args.host}:{args.port} (requests are written to {out})",
              file=sys.stderr)
        launch(Session(pipe, out, _model_id(model)), args.host, args.port, quiet=args.quiet)
    except BaseException:
        if created and not [f for f in out.iterdir() if f.name != ".gradio"]:  # no request yet: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return 0


def _cmd_convert(args) -> int:
    import torch

    dtype = torch.float16 if args.fp16 else None
    if args.to == "diffusers":  # ours (or anything from_pretrained reads) -> a diffusers AudioLDM folder
        from .convert.to_diffusers import save_diffusers_audioldm
        from .pipeline import AudioLDM

        out = save_diffusers_audioldm(AudioLDM.from_pretrained(args.src), args.dst, overwrite=args.overwrite,
                                      dtype=dtype)
        print(f"wrote {out} (diffusers AudioLDMPipeline folder)", file=sys.stderr)
        return 0
    from .convert.diffusers import is_diffusers_folder
    from .pipeline import AudioLDM

    if not is_diffusers_folder(args.src):
        raise ValueError(f"{args.src}: not a diffusers AudioLDM folder (model_index.json with AudioLDMPipeline); "
                         f"to write one of our folders as diffusers, pass --to diffusers")
    out = AudioLDM.from_pretrained(args.src).save_pretrained(args.dst, overwrite=args.overwrite, dtype=dtype)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _generation_args(sp) -> None:
    sp.add_argument("--model", default=None, help="model folder or hub id (default: the model shipped with audioldm)")
    sp.add_argument("--lora", action="append", default=None, metavar="PATH[:SCALE]",
                    help="merge a LoRA adapter (folder or .safetensors) at SCALE (default 1); repeat to stack")
    sp.add_argument("--force", action="store_true", help="merge --lora adapters recorded for another base model")
    sp.add_argument("--duration", type=float, default=None, help="seconds (default: the model's)")
    sp.add_argument("--steps", type=int, default=None)
    sp.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    sp.add_argument("--sampler", default=None, help="ddim, ddpm, euler, heun or dpmpp_2m")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--negative-prompt", default=None)
    sp.add_argument("--num", type=int, default=1, help="samples per prompt")
    sp.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    sp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="compute precision of the U-Net and VAE")
    sp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sp.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    sp.add_argument("--loop", action="store_true", help="seamless loops: each clip's end joins its start")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audioldm", description="Audio latent diffusion toolkit.")
    p.add_argument("--version", action="version", version=f"audioldm {__version__} (distribution {DISTRIBUTION}, "
                   f"the audioldm toolkit, at {Path(__file__).resolve().parent})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="duration, sample rate, channels, peak and RMS of audio files")
    info.add_argument("files", nargs="+", metavar="FILE")
    info.add_argument("--json", action="store_true", help="one JSON object per file")
    info.set_defaults(func=_cmd_info)
    gen = sub.add_parser("generate", help="generate audio from a prompt or labels into one file")
    gen.add_argument("prompt", nargs="?", default=None)
    gen.add_argument("--labels", nargs="+", metavar="KEY=VALUE", help="label conditioning, e.g. instrument=flute pitch=60")
    gen.add_argument("-o", "--output", required=True, help="output audio file (.wav or .flac)")
    _generation_args(gen)
    gen.set_defaults(func=_cmd_generate)
    cont = sub.add_parser("continue", help="continue an audio file: it is kept exactly and new audio follows it")
    cont.add_argument("input", metavar="IN", help="the audio to continue (any rate: resampled, and said so)")
    cont.add_argument("--seconds", type=float, required=True, help="how many seconds to add")
    cont.add_argument("--prompt", default=None)
    cont.add_argument("--labels", nargs="+", metavar="KEY=VALUE", help="label conditioning")
    cont.add_argument("-o", "--output", required=True, help="output audio file (.wav or .flac)")
    _generation_args(cont)
    cont.set_defaults(func=_cmd_continue)
    exp = sub.add_parser("export", help="generate every row of a prompt file into a folder with an HTML gallery")
    exp.add_argument("--prompts", required=True, help=".txt (one prompt per line), .jsonl or .csv")
    exp.add_argument("--out", required=True, help="output folder")
    exp.add_argument("--format", default="wav", choices=["wav", "flac"])
    _generation_args(exp)
    exp.set_defaults(func=_cmd_export)
    ui = sub.add_parser("ui", help="a local web page for a model (needs the .[ui] extra: Gradio)")
    ui.add_argument("--model", default=None, help="model folder or hub id (default: the model shipped with audioldm)")
    ui.add_argument("--lora", action="append", default=None, metavar="PATH[:SCALE]",
                    help="merge a LoRA adapter (folder or .safetensors) at SCALE (default 1); repeat to stack")
    ui.add_argument("--force", action="store_true", help="merge --lora adapters recorded for another base model")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=7860)
    ui.add_argument("--out", default=None, help="a new or empty folder for the requests' files (default: a new "
                    "temporary folder)")
    ui.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    ui.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ui.add_argument("--quiet", action="store_true")
    ui.set_defaults(func=_cmd_ui)
    conv = sub.add_parser("convert", help="diffusers AudioLDM folder -> our model folder, or back with --to diffusers")
    conv.add_argument("src", help="the model to convert")
    conv.add_argument("dst", help="the folder to write")
    conv.add_argument("--to", default="ours", choices=["ours", "diffusers"],
                      help="ours (default: SRC is a diffusers folder) or diffusers (SRC is an AudioLDM-shaped model)")
    conv.add_argument("--fp16", action="store_true", help="store float16 weights")
    conv.add_argument("--overwrite", action="store_true")
    conv.set_defaults(func=_cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command in ("generate", "continue", "export", "convert", "ui"):
        try:
            return args.func(args)
        except (ValueError, FileExistsError, FileNotFoundError, OSError, ImportError) as e:
            print(f"error: {e}", file=sys.stderr)
            if isinstance(e, DistilledRangeError) and not getattr(args, "model", None):
                _teacher_hint()
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
