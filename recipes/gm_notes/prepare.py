"""python recipes/gm_notes/prepare.py --preset tiny --out data/gm_notes_tiny

Render an NSynth-like set of General-MIDI notes offline (one held note per clip, 16 kHz mono WAV) and write
`manifest.jsonl` with label fields instrument / family / program / pitch / velocity and captions in several phrasings.

Presets: tiny (4 instruments x 8 pitches, for tests), demo (8 instruments, pitches 48-83, 3 velocities),
full (all 128 melodic programs over rough playable ranges x 5 velocities, plus the GM drum kit).
The default soundfont is TimGM6mb.sf2 from the pretty_midi wheel; --soundfont takes any .sf2/.sf3, e.g. Debian's
fluid-soundfont-gm (/usr/share/sounds/sf2/FluidR3_GM.sf2) or musescore-general-soundfont-small.
"""

import argparse
import dataclasses
import json
import sys

from tqdm import tqdm

from audioldm.data.gm_notes import GRID_PRESETS, render_grid

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=sorted(GRID_PRESETS))
    p.add_argument("--out", required=True, help="output folder (audio/ + manifest.jsonl)")
    p.add_argument("--soundfont", default=None, help=".sf2/.sf3 file (default: TimGM6mb from pretty_midi)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--gain-db", type=float, default=6.0, help="synth gain; 0 dB gives peaks of only ~0.2")
    p.add_argument("--clip-seconds", type=float, default=None,
                   help="override the preset's clip length (demo: 2.08 s, others 2.0 s)")
    p.add_argument("--hold-seconds", type=float, default=None, help="override how long the note is held (1.0 s)")
    p.add_argument("--velocities", type=int, nargs="+", default=None, help="override the preset's velocities")
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest in --out")
    args = p.parse_args()

    grid = GRID_PRESETS[args.preset]()
    if args.velocities is not None:
        grid = dataclasses.replace(grid, velocities=args.velocities)
    if args.clip_seconds is not None:
        grid = dataclasses.replace(grid, clip_seconds=args.clip_seconds)
    if args.hold_seconds is not None:
        grid = dataclasses.replace(grid, hold_seconds=args.hold_seconds)

    try:
        summary = render_grid(grid, args.out, soundfont=args.soundfont, sample_rate=args.sample_rate,
                              gain_db=args.gain_db, overwrite=args.overwrite,
                              progress=lambda it: tqdm(it, desc=f"render {args.preset}", file=sys.stderr))
    except (FileExistsError, FileNotFoundError, ValueError, ImportError) as e:
        sys.exit(f"error: {e}")

    summary["preset"] = args.preset
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
