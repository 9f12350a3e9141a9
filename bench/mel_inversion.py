"""python bench/mel_inversion.py [--data data/gm_notes_fluid/manifest.jsonl] [--velocity 80] [--iters 0 300]

Mel -> linear magnitude for Griffin-Lim: our peak fit (audioldm.mel.mel_to_magnitude, one row per --iters value;
0 = the filterbank pseudo-inverse) against librosa's NNLS inverse (librosa.feature.inverse.mel_to_stft, the named
reference). For every real note of the manifest at --velocity and the listed pitches: log-mel -> magnitude ->
Griffin-Lim (60 iterations, seed 0) -> median YIN f0, scored within 50 cents of the MIDI pitch (the real audio's own
score printed beside it), plus the log-mel L1 of the result against the input and the CPU seconds per note for the
magnitude step alone. Prints JSON lines, one per method.
"""

import argparse
import json
import time

import numpy as np
import torch

from audioldm.audio import load_audio
from audioldm.data import load_clips
from audioldm.evaluation import pitch_error_cents
from audioldm.mel import MelConfig, MelFrontend, mel_to_magnitude
from audioldm.vocoders.griffinlim import phase_from_magnitude

p = argparse.ArgumentParser()
p.add_argument("--data", default="data/gm_notes_fluid/manifest.jsonl")
p.add_argument("--velocity", type=int, default=80)
p.add_argument("--pitches", type=int, nargs="+", default=[48, 50, 53, 57, 60, 64, 67, 72, 76, 79, 83])
p.add_argument("--iters", type=int, nargs="+", default=[0, 300])
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

cfg = MelConfig()
frontend = MelFrontend(cfg)
clips = [(c.labels, torch.from_numpy(load_audio(c.path, cfg.sample_rate))) for c in load_clips(args.data)
         if c.labels.get("velocity") == args.velocity and c.labels.get("pitch") in args.pitches]
if not clips:
    raise SystemExit(f"{args.data}: no notes at velocity {args.velocity} and pitches {args.pitches}")


def librosa_nnls(logmel):
    import librosa
    mag = librosa.feature.inverse.mel_to_stft(np.exp(logmel.numpy()), sr=cfg.sample_rate, n_fft=cfg.n_fft, power=1.0,
                                              fmin=cfg.fmin, fmax=cfg.fmax)
    return torch.from_numpy(mag).float()


def ours(n_iter):
    return lambda logmel: mel_to_magnitude(logmel, cfg, n_iter=n_iter)


methods = [(f"peak fit, {n} updates" if n else "pseudo-inverse", ours(n)) for n in args.iters]
methods.append(("librosa mel_to_stft (NNLS, reference)", librosa_nnls))
real = np.array([pitch_error_cents(wav.numpy(), cfg.sample_rate, r["pitch"]) for r, wav in clips])
print(json.dumps({"method": "real audio", "notes": len(clips),
                  "within_50_cents": round(float((abs(real) < 50).mean()), 4),
                  "median_abs_cents": round(float(np.median(abs(real))), 2)}))
for name, to_magnitude in methods:
    cents, l1, seconds = [], [], 0.0
    for r, wav in clips:
        logmel = frontend(wav)
        t = time.perf_counter()
        mag = to_magnitude(logmel)
        seconds += time.perf_counter() - t
        out = phase_from_magnitude(mag, cfg)[: wav.shape[-1]]
        cents.append(pitch_error_cents(out.numpy(), cfg.sample_rate, r["pitch"]))
        l1.append((frontend(out) - logmel).abs().mean().item())
    cents = np.array(cents)
    misses = [f"{r['instrument']} {r['pitch']}: {c:+.0f}" for (r, _), c in zip(clips, cents) if abs(c) >= 50]
    print(json.dumps({"method": name, "notes": len(clips), "within_50_cents": round(float((abs(cents) < 50).mean()), 4),
                      "median_abs_cents": round(float(np.median(abs(cents))), 2),
                      "logmel_l1_after_griffin_lim": round(float(np.mean(l1)), 4),
                      "magnitude_cpu_s_per_note": round(seconds / len(clips), 4), "misses": misses}), flush=True)
