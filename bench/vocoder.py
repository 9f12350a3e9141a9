"""python bench/vocoder.py [--seconds 10.24] [--repeats 3] [--threads 2]

Seconds of audio produced per second of compute ("x real time") for our vocoders on CPU, and on CUDA when present,
side by side with transformers' SpeechT5HifiGan (random weights) built with the same configuration as each HiFi-GAN
preset; the Vocos-style vocoder is compared against the AudioLDM-S-shaped SpeechT5HifiGan (the vocoder AudioLDM ships).
Prints JSON. transformers is a dev/bench extra, not a runtime dependency.
"""

import argparse
import json

import torch

from audioldm.convert.diffusers import speecht5_hifigan
from audioldm.evaluation import real_time_factor
from audioldm.vocoders import HIFIGAN_PRESETS, build_vocoder

p = argparse.ArgumentParser()
p.add_argument("--seconds", type=float, default=10.24)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--models", nargs="+", default=["vocos:demo", "vocos:base", "hifigan:v2", "hifigan:audioldm-s"])
args = p.parse_args()
torch.set_num_threads(args.threads)


results = []
for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
    sync = torch.cuda.synchronize if dev == "cuda" else None
    for spec in args.models:
        kind, preset = spec.split(":")
        model = build_vocoder(kind, preset).to(dev).eval()
        frames = int(args.seconds * model.mel_config.sample_rate / model.mel_config.hop_length)
        mel = torch.randn(1, model.mel_config.n_mels, frames, device=dev) - 6
        with torch.no_grad():
            ours = 1 / real_time_factor(lambda: model(mel), args.seconds, args.repeats, sync)
        row = {"device": dev, "model": spec, "params_M": round(sum(x.numel() for x in model.parameters()) / 1e6, 2),
               "ours_x_real_time": round(ours, 2)}
        try:
            ref_preset = preset if kind == "hifigan" else "audioldm-s"
            ref = speecht5_hifigan(HIFIGAN_PRESETS[ref_preset]()).to(dev)
            spec_in = mel.transpose(1, 2)
            with torch.no_grad():
                theirs = 1 / real_time_factor(lambda: ref(spec_in), args.seconds, args.repeats, sync)
            row.update(reference=f"transformers SpeechT5HifiGan ({ref_preset} config)",
                       reference_x_real_time=round(theirs, 2), speedup=round(ours / theirs, 2))
        except ImportError:
            row.update(reference=None, note="pip install transformers for the reference")
        results.append(row)
        print(json.dumps(row), flush=True)
print(json.dumps({"bench": "vocoder", "seconds": args.seconds, "threads": args.threads, "results": results}, indent=2))
