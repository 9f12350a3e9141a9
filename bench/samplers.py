"""python bench/samplers.py [--model DIR] [--real MANIFEST] [--ddim 10 25 50 100 200] [--dpmpp 5 10 15 20 25]

Sampler efficiency on a label-conditioned GM-notes model (default: the shipped one): pitch accuracy (the demo
evaluation's: median YIN f0 within 50 cents of the pitch the training soundfont sounds for the requested note) against
the number of steps, for DDIM and DPM-Solver++(2M), on one grid (every instrument x --pitches x --seeds, velocity 80,
the same initial noise for every row), with CPU time per generated second. The sounding octave of each instrument is
measured on the real renders of --real. Prints one JSON line per run and a summary.
"""

import argparse
import json
import time

import numpy as np
import torch

from audioldm.pretrained import default_model
from audioldm.data import load_clips
from audioldm.evaluation import pitch_error_cents, render_pitch_errors
from audioldm.pipeline import AudioLDM

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--model", default=None)
p.add_argument("--real", default="data/gm_notes_fluid/manifest.jsonl",
               help="real renders of the model's training soundfont (sounding octave)")
p.add_argument("--ddim", type=int, nargs="*", default=[10, 25, 50, 100, 200])
p.add_argument("--dpmpp", type=int, nargs="*", default=[5, 10, 15, 20, 25])
p.add_argument("--pitches", type=int, nargs="+", default=[48, 53, 57, 60, 64, 67, 71, 76, 79, 83])
p.add_argument("--seeds", type=int, default=1)
p.add_argument("--seconds", type=float, default=1.28)
p.add_argument("--spacing", default=None, choices=["leading", "trailing", "linspace"],
               help="override the model's timestep spacing")
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

pipe = AudioLDM.from_pretrained(args.model or default_model())
if args.spacing:
    pipe.schedule.config.spacing = args.spacing
sr = pipe.sample_rate
instruments = next(f.values for f in pipe.conditioner.config.fields if f.name == "instrument")
real = [c for c in load_clips(args.real) if c.labels.get("instrument") in instruments
        and c.labels.get("pitch") in args.pitches and c.labels.get("velocity", 80) == 80]
real_cents, octaves = render_pitch_errors(real, sr)
grid = [{"instrument": i, "pitch": q, "velocity": 80} for i in instruments for q in args.pitches]
rows = []
for sampler, steps_list in (("ddim", args.ddim), ("dpmpp_2m", args.dpmpp)):
    for steps in steps_list:
        t0 = time.perf_counter()
        res = pipe.generate(labels=grid, duration=args.seconds, steps=steps, sampler=sampler, seed=0,
                            num_per_prompt=args.seeds, batch_size=40, progress=False)
        seconds = time.perf_counter() - t0
        cents = np.array([pitch_error_cents(w, sr, lab["pitch"]) - 1200 * octaves.get(lab["instrument"], 0)
                          for w, lab in zip(res.audio, res.labels)])
        row = {"sampler": sampler, "steps": steps, "n": len(cents),
               "pitch_accuracy": float(np.mean(np.abs(cents) <= 50)),
               "median_abs_cents": round(float(np.median(np.abs(cents))), 1),
               "cpu_s_per_generated_s": round(seconds / (len(cents) * args.seconds), 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
ddim_most = max((r for r in rows if r["sampler"] == "ddim"), key=lambda r: r["steps"], default=None)
dpm20 = next((r for r in rows if r["sampler"] == "dpmpp_2m" and r["steps"] == 20), None)
real_shifted = real_cents - [1200 * octaves[c.labels["instrument"]] for c in real]
summary = {"bench": "samplers", "model": pipe.name, "guidance": pipe.defaults.guidance,
           "spacing": pipe.schedule.config.spacing, "sounding_octaves": octaves,
           "real_renders_pitch_accuracy": float(np.mean(np.abs(real_shifted) <= 50)), "results": rows}
if dpm20 and ddim_most:  # DPM-Solver++ at 20 steps against DDIM at its most steps
    summary["dpmpp20_minus_ddim_max_points"] = round(100 * (dpm20["pitch_accuracy"] - ddim_most["pitch_accuracy"]), 2)
print(json.dumps(summary, indent=2))
