"""python recipes/gm_notes/evaluate_vocoder.py --data data/gm_notes_fluid/manifest.jsonl [--vocoder FOLDER ...]
    [--vae MODEL/vae [--vae ...]] [--seconds 2.08] [--out rows.json]

The vocoder stage's decomposition (audioldm.evaluation.vocoder) on the GM notes' valid split (the same hash split the
training recipes use): real audio, the oracle rows (true magnitude + Griffin-Lim phase; peak-fit / pseudo-inverse
magnitude + true phase; each learned vocoder's own magnitude + true phase), then the shipped vocoder slot
(audioldm/pretrained/vocoder-16k: peak fit + 60 Griffin-Lim iterations), the same peak fit with the phase-gradient
start and 16 iterations (docs/vocoder.md) and every --vocoder, on real mels and on each --vae's reconstructions (what generation hands the vocoder), scored by MR-STFT, log-mel L1, pitch within 50
cents, the GM judge's family / program accuracy and FD, steady-tone modulation (buzz) and CPU speed.
"""

import argparse

import torch

from audioldm.data import ClipDataset, load_clips, train_valid
from audioldm.evaluation.gm_judge import load_gm_judge
from audioldm.evaluation.vocoder import decomposition_markdown, vocoder_decomposition
from audioldm.vae import MelVAE
from audioldm.vocoders import GriffinLimVocoder, load_vocoder, universal_vocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--vocoder", action="append", default=[], help="a trained vocoder folder (repeatable)")
    p.add_argument("--vae", action="append", default=[], help="also score on this VAE's reconstructions (posterior mean; "
                   "repeatable)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--max-items", type=int, default=None)
    p.add_argument("--seconds", type=float, default=2.08)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    vocoders = {"shipped slot vocoder-16k (peak fit + Griffin-Lim 60)": universal_vocoder(),
                "peak fit + PGHI + Griffin-Lim 16": GriffinLimVocoder(GriffinLimConfig(phase_init="pghi", n_iter=16))}
    vocoders.update({f: load_vocoder(f) for f in args.vocoder})
    _, valid = train_valid(load_clips(args.data), args.valid_fraction)
    valid = valid[:args.max_items] if args.max_items else valid
    ds = ClipDataset(valid, next(iter(vocoders.values())).mel_config, args.seconds)
    items = [ds[i] for i in range(len(ds))]
    wav, mel = torch.stack([it["wav"] for it in items]), torch.stack([it["mel"] for it in items])
    programs = [int(c.labels["program"]) for c in valid]
    pitches = [int(c.labels["pitch"]) if int(c.labels["program"]) < 128 else None for c in valid]
    inputs = {}
    for folder in args.vae:
        vae = MelVAE.from_pretrained(folder).eval()
        with torch.no_grad():
            inputs[f"VAE {folder}"] = torch.cat([vae(mel[s:s + 16], sample=False)[0].float()
                                                 for s in range(0, len(mel), 16)])
    rows = vocoder_decomposition(vocoders, wav, mel, ["valid"] * len(valid), inputs=inputs, pitches=pitches,
                                 programs=programs, judge=load_gm_judge(), buzz=True)
    print(f"{len(valid)} valid clips of {args.seconds} s\n")
    print(decomposition_markdown(rows))
    if args.out:
        from audioldm.config import save_json_atomic
        save_json_atomic(args.out, rows)


if __name__ == "__main__":
    main()
