"""python recipes/gm_notes/evaluate_vocoder.py --data data/gm_notes_fluid/manifest.jsonl --vocoder runs/vocos/vocoder
    [--vocoder ...] [--vae MODEL/vae [--vae ...]] [--judge [FOLDER]]

Table of Griffin-Lim vs trained vocoders on the valid split (the same hash split the training recipes use), from real
mels and, with --vae (repeatable: the VAE sweep), from each VAE's reconstructions (what generation feeds the vocoder):
- VAE mel L1: the reconstruction's log-mel L1 to the real mel, in the mel domain (before any vocoder);
- MR-STFT distance and log-mel L1 of the vocoded audio against the real audio (lower is better);
- pitch: fraction of pitched clips whose YIN f0 (0.1-0.9 s) is within 50 cents of the clip's ``pitch`` label;
- family and program accuracy of the GM judge (--judge; default the shipped one), and the Frechet distance of its
  embeddings to the real clips', when the clips carry a ``program`` label;
- modulation depth of steady pure tones (MIDI 36-60) at half the frame rate and at the frame rate (a buzz;
  ~0 is clean; audioldm.evaluation.metrics.steady_tone_modulation);
- CPU speed (x real time, higher is better).
A "real audio" row gives the ceilings for pitch and family.
"""

import argparse

import numpy as np
import torch

from audioldm.data import ClipDataset, load_clips, split_by_hash
from audioldm.evaluation import frechet_distance, logmel_l1, mrstft_distance, pitch_error_cents, real_time_factor
from audioldm.evaluation.metrics import steady_tone_modulation
from audioldm.mel import MelFrontend
from audioldm.vae import MelVAE
from audioldm.vocoders import GriffinLimVocoder, load_vocoder

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", required=True)
p.add_argument("--vocoder", action="append", default=[], help="a trained vocoder folder (repeatable)")
p.add_argument("--vae", action="append", default=[], help="also score on this VAE's reconstructions (posterior mean; "
               "repeatable)")
p.add_argument("--judge", nargs="?", const="", default="", help="GM judge folder (default: the shipped one)")
p.add_argument("--no-judge", action="store_true")
p.add_argument("--valid-fraction", type=float, default=0.1)
p.add_argument("--max-items", type=int, default=None)
p.add_argument("--seconds", type=float, default=2.0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--out", default=None, help="write the rows as JSON here")
args = p.parse_args()
torch.set_num_threads(args.threads)

models = [("griffin-lim (60 it, peak fit)", GriffinLimVocoder())]
models += [(f"{load_vocoder(f).config.__class__.__name__[:-6]}: {f}", load_vocoder(f)) for f in args.vocoder]
mel_cfg = models[-1][1].mel_config
for name, m in models:
    mel_cfg.check_same(m.mel_config, f"{name} and the evaluation data")
_, valid = split_by_hash(load_clips(args.data), args.valid_fraction)
valid = valid[:args.max_items] if args.max_items else valid
ds = ClipDataset(valid, mel_cfg, args.seconds)
items = [ds[i] for i in range(len(ds))]
wav = torch.stack([it["wav"] for it in items])
mel = torch.stack([it["mel"] for it in items])
programs = [int(c.labels["program"]) if "program" in c.labels else None for c in valid]
pitched = [i for i, c in enumerate(valid) if "pitch" in c.labels and programs[i] != 128]
judge = None
if not args.no_judge and all(q is not None for q in programs):
    from audioldm.evaluation.gm_judge import load_gm_judge
    judge = load_gm_judge(args.judge or None)
sr = mel_cfg.sample_rate


def scores(audio: np.ndarray) -> dict:
    """Pitch, and the judge's family and program accuracy and FD to the real clips, of waveforms [N, T] of the valid
    clips."""
    out = {"pitch_50c": float(np.mean([abs(pitch_error_cents(audio[i], sr, valid[i].labels["pitch"])) <= 50
                                       for i in pitched])) if pitched else float("nan")}
    if judge is not None:
        m = MelFrontend(mel_cfg)(torch.from_numpy(np.ascontiguousarray(audio)))
        sc = judge.score(m, programs)
        out.update(family=sc["family_accuracy"], program=sc["program_accuracy"],
                   fd=frechet_distance(judge.embed(m), real_emb))
    return out


inputs, vae_l1 = {"real mels": mel}, {}
for folder in args.vae:
    vae = MelVAE.from_pretrained(folder).eval()
    mel_cfg.check_same(vae.config.mel, f"VAE {folder} and the evaluation data")
    with torch.no_grad():
        rec = torch.cat([vae(mel[s:s + 16], sample=False)[0].float() for s in range(0, len(mel), 16)])
    name = "VAE reconstructions" if len(args.vae) == 1 else f"VAE {folder}"
    inputs[name], vae_l1[name] = rec, round((rec - mel).abs().mean().item(), 4)
if judge is not None:
    real_emb = judge.embed(mel)
rows = [{"vocoder": "real audio", "input": "-", **scores(wav.numpy())}]
for name, m in models:
    with torch.no_grad():
        rtf = real_time_factor(lambda: m(mel[:1]), mel.shape[-1] * mel_cfg.hop_length / sr)
        mod = steady_tone_modulation(m)
    for inp_name, inp in inputs.items():
        with torch.no_grad():
            audio = torch.cat([m(inp[s:s + 8]).float()[:, :wav.shape[-1]] for s in range(0, len(inp), 8)])
        vae_row = {"vae_mel_l1": vae_l1[inp_name]} if inp_name in vae_l1 else {}
        rows.append({"vocoder": name, "input": inp_name, **vae_row,
                     "mrstft": round(mrstft_distance(audio, wav).mean().item(), 4),
                     "logmel_l1": round(logmel_l1(audio, wav, mel_cfg).mean().item(), 4), **scores(audio.numpy()),
                     "mod_half_frame_rate": round(mod["half_frame_rate"], 4),
                     "mod_frame_rate": round(mod["frame_rate"], 4), "x_real_time_cpu": round(1 / rtf, 1),
                     "items": len(valid)})
print("| vocoder | input | VAE mel L1 | MR-STFT | log-mel L1 | pitch ±50 c | family (judge) | program | FD to real | "
      "mod. 50 Hz | mod. 100 Hz | x real time |")
print("|---" * 12 + "|")
for r in rows:
    f = lambda k, fmt: (fmt.format(r[k]) if k in r and r[k] == r[k] else "–")  # noqa: E731
    print(f"| {r['vocoder']} | {r['input']} | {f('vae_mel_l1', '{:.3f}')} | {f('mrstft', '{:.3f}')} | "
          f"{f('logmel_l1', '{:.3f}')} | {f('pitch_50c', '{:.1%}')} | {f('family', '{:.1%}')} | "
          f"{f('program', '{:.1%}')} | {f('fd', '{:.1f}')} | {f('mod_half_frame_rate', '{:.3f}')} | "
          f"{f('mod_frame_rate', '{:.3f}')} | {f('x_real_time_cpu', '{}')} |")
if args.out:
    from audioldm.config import save_json_atomic
    save_json_atomic(args.out, rows)
