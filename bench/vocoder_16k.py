"""python bench/vocoder_16k.py [--seconds 2.08] [--repeats 5] [--threads 2] [--spectral FOLDER]

The vocoders of issue 33 against the named reference, the shipped vocoder slot (audioldm/pretrained/vocoder-16k:
peak fit + 60 torchaudio Griffin-Lim iterations from a random phase), in one run on the same mel of a real note: the
phase-gradient start (peak fit + PGHI + 16 fast Griffin-Lim iterations) and, with --spectral, a trained spectral
vocoder (recipes/vocoder/run.py OUT/vocoder). x real time for one clip, the PGHI vocoder's time split into its parts
(peak fit, PGHI, fast Griffin-Lim), then `generate()` of one note with the default model end to end under each
vocoder. Prints JSON.
"""

import argparse
import json
import time

import torch

from audioldm.data.gm_notes import NoteRenderer
from audioldm.evaluation import real_time_factor
from audioldm.mel import MelFrontend, mel_to_magnitude
from audioldm.vocoders import GriffinLimVocoder, load_vocoder, universal_vocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig
from audioldm.vocoders.phase import fast_griffin_lim, pghi_phase

p = argparse.ArgumentParser()
p.add_argument("--seconds", type=float, default=2.08)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--spectral", default=None)
args = p.parse_args()
torch.set_num_threads(args.threads)

wav = torch.from_numpy(NoteRenderer(None).render(40, 67, 100, args.seconds, 1.0))[None].float()
mel = MelFrontend()(wav)
universal = universal_vocoder()
vocoders = {"shipped slot vocoder-16k: peak fit + Griffin-Lim 60 (random start)": universal,
            "phase-gradient start: peak fit + PGHI + 16 fast Griffin-Lim":
                GriffinLimVocoder(GriffinLimConfig(phase_init="pghi", n_iter=16))}
if args.spectral:
    vocoders["spectral (trained)"] = load_vocoder(args.spectral)
rows = []
with torch.no_grad():
    for name, v in vocoders.items():
        rtf = real_time_factor(lambda: v(mel), args.seconds, args.repeats)
        rows.append({"vocoder": name, "x_real_time": round(1 / rtf, 1), "ms_per_clip": round(rtf * args.seconds * 1e3, 1)})
    ref = rows[0]["ms_per_clip"]
    for r in rows:
        r["speed_vs_shipped"] = round(ref / r["ms_per_clip"], 2)
    cfg = universal.mel_config
    mag = mel_to_magnitude(mel, cfg)
    parts = {"peak fit (300 updates)": lambda: mel_to_magnitude(mel, cfg), "PGHI": lambda: pghi_phase(mag, cfg),
             "fast Griffin-Lim x16": lambda: fast_griffin_lim(mag, pghi_phase(mag, cfg), cfg, 16)}
    split = {k: round(real_time_factor(f, args.seconds, args.repeats) * args.seconds * 1e3, 1) for k, f in parts.items()}

from audioldm.pretrained import default_model  # noqa: E402
from audioldm.pipeline import AudioLDM  # noqa: E402

pipe = AudioLDM.from_pretrained(default_model())
gen = {}
for name, v in vocoders.items():
    pipe.vocoder = v
    pipe.generate("violin C5", seed=0, progress=False)  # warm-up
    t = time.perf_counter()
    for k in range(args.repeats):
        pipe.generate("violin C5", seed=k, progress=False)
    gen[name] = round((time.perf_counter() - t) / args.repeats, 4)
print(json.dumps({"clip_seconds": args.seconds, "threads": args.threads, "vocoders": rows,
                  "pghi_parts_ms": split, "generate_seconds_per_note": gen,
                  "default_model": default_model()}, indent=2))
