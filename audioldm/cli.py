"""The `audioldm` command line: `audioldm --version`, `audioldm info FILE...`."""

from __future__ import annotations

import argparse
import json
import math
import sys

from . import __version__


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audioldm", description="Audio latent diffusion toolkit.")
    p.add_argument("--version", action="version", version=f"audioldm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="duration, sample rate, channels, peak and RMS of audio files")
    info.add_argument("files", nargs="+", metavar="FILE")
    info.add_argument("--json", action="store_true", help="one JSON object per file")
    info.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
