"""python recipes/gm_notes/evaluate_vocoder.py --data data/gm_notes_demo/manifest.jsonl --vocoder runs/vocos_demo/vocoder [--vocoder runs/hifigan_demo/vocoder]

Table of Griffin-Lim vs trained vocoders on the valid split (the same hash split the training recipes use):
multi-resolution STFT distance, log-mel L1 (both lower is better) and CPU speed (x real time, higher is better).
"""

import argparse
import json

import torch

from audioldm.data import ClipDataset, load_clips, split_by_hash
from audioldm.evaluation import real_time_factor
from audioldm.training.vocoder_stage import evaluate_vocoder
from audioldm.vocoders import GriffinLimVocoder, load_vocoder

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", required=True)
p.add_argument("--vocoder", action="append", default=[], help="a trained vocoder folder (repeatable)")
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--max-items", type=int, default=None)
p.add_argument("--threads", type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

models = [("griffin-lim (60 it)", GriffinLimVocoder())] + [(f"{load_vocoder(f).config.__class__.__name__[:-6]}: {f}",
                                                             load_vocoder(f)) for f in args.vocoder]
mel_cfg = models[-1][1].mel_config
for name, m in models:
    mel_cfg.check_same(m.mel_config, f"{name} and the evaluation data")
_, valid = split_by_hash(load_clips(args.data), args.valid_fraction)
ds = ClipDataset(valid, mel_cfg, 2.0)
mel = ds[0]["mel"][None]
rows = []
for name, m in models:
    r = evaluate_vocoder(m, ds, "cpu", args.max_items)
    with torch.no_grad():
        rtf = real_time_factor(lambda: m(mel), mel.shape[-1] * mel_cfg.hop_length / mel_cfg.sample_rate)
    rows.append({"vocoder": name, "mrstft": round(r["mrstft"], 4), "logmel_l1": round(r["logmel_l1"], 4),
                 "x_real_time_cpu": round(1 / rtf, 1), "items": r["items"]})
print("| vocoder | MR-STFT | log-mel L1 | x real time (CPU) |\n|---|---|---|---|")
for r in rows:
    print(f"| {r['vocoder']} | {r['mrstft']:.4f} | {r['logmel_l1']:.4f} | {r['x_real_time_cpu']} |")
print(json.dumps(rows))
