"""python recipes/gm_notes/evaluate.py --classifier-data data/gm_notes_fluid_cls/manifest.jsonl --real data/gm_notes_fluid/manifest.jsonl [--model DIR]

Evaluate a (label-conditioned) GM-notes model as shipped: generate every instrument x a spread of pitches x seeds
through the full pipeline and report
- pitch accuracy: median YIN f0 over the held part within 50 cents of the requested pitch as the training
  soundfont sounds it (MIDI pitch + the instrument's whole-octave transposition measured on the real renders: 0 for
  all TimGM6mb instruments but the drawbar organ, a 16-foot stop that sounds an octave low), beside the same score
  against the bare MIDI pitch and both scores for the real renders themselves;
- instrument accuracy of a small CNN classifier trained here on real renders the generator never saw
  (--classifier-data: e.g. the demo grid rendered at other velocities), beside the same classifier's accuracy on
  held-out real notes of that set (the ceiling) and on the generator's held-out real notes (--real, valid split);
- Fréchet distance between the classifier's embeddings of generated notes and of the real notes (--real, all clips
  at the requested pitches), beside the real-vs-real value (classifier-set test notes vs the same real notes);
- CPU time per generated second.
Prints JSON (and a markdown table with --table).
"""

import argparse
import json
import time

import numpy as np
import torch

from audioldm.cli import default_model
from audioldm.data import ClipDataset, load_clips, split_by_hash
from audioldm.evaluation import NoteClassifier, NoteClassifierConfig, frechet_distance, pitch_error_cents, \
    render_pitch_errors, train_classifier
from audioldm.pipeline import AudioLDM
from audioldm.vocoders import GriffinLimVocoder, load_vocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
p.add_argument("--vocoder", default=None,
               help="replace the model's vocoder: a vocoder folder, 'griffinlim' or 'griffinlim:ITERATIONS'")
p.add_argument("--classifier-data", required=True, help="manifest of real renders kept out of generator training")
p.add_argument("--real", required=True, help="the generator's training manifest (its valid split is held out)")
p.add_argument("--valid-fraction", type=float, default=0.1, help="as used by train_ldm.py")
p.add_argument("--pitches", type=int, nargs="+", default=[48, 53, 57, 60, 64, 67, 71, 76, 79, 83])
p.add_argument("--velocity", type=int, default=80)
p.add_argument("--seeds", type=int, default=2)
p.add_argument("--steps", type=int, default=None)
p.add_argument("--guidance", type=float, default=None)
p.add_argument("--sampler", default=None)
p.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's default duration)")
p.add_argument("--classifier-steps", type=int, default=600)
p.add_argument("--classifier-seed", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--table", action="store_true")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

pipe = AudioLDM.from_pretrained(args.model or default_model())
args.seconds = args.seconds or pipe.defaults.duration
if args.vocoder:
    if args.vocoder.startswith("griffinlim"):
        n_iter = int(args.vocoder.partition(":")[2] or GriffinLimConfig.n_iter)
        pipe.vocoder = GriffinLimVocoder(GriffinLimConfig(n_iter=n_iter, mel=pipe.mel_config))
    else:
        pipe.vocoder = load_vocoder(args.vocoder)
    pipe._check()
sr = pipe.sample_rate
instruments = next(f.values for f in pipe.conditioner.config.fields if f.name == "instrument")


def mels_of(clips):
    ds = ClipDataset(clips, pipe.mel_config, args.seconds)
    return torch.stack([ds[i]["mel"] for i in range(len(ds))])


# 1. the instrument classifier, on real renders the generator never saw
cls_clips = [c for c in load_clips(args.classifier_data) if c.labels.get("instrument") in instruments]
cls_train, cls_test = split_by_hash(cls_clips, 0.2)
torch.manual_seed(args.classifier_seed)  # its init must not depend on what loading the model drew from the global RNG
clf = NoteClassifier(NoteClassifierConfig(classes=list(instruments), n_mels=pipe.mel_config.n_mels))
target = lambda cl: torch.tensor([instruments.index(c.labels["instrument"]) for c in cl])  # noqa: E731
train_classifier(clf, mels_of(cls_train), target(cls_train), steps=args.classifier_steps, seed=args.classifier_seed)


def classify(mels):
    with torch.no_grad():
        return clf(mels).argmax(-1), clf.embedding(mels).numpy()


pred, emb_cls_test = classify(mels_of(cls_test))
ceiling = float((pred == target(cls_test)).float().mean())
real_all = [c for c in load_clips(args.real) if c.labels.get("instrument") in instruments]
_, real_valid = split_by_hash(real_all, args.valid_fraction)
pred_v, _ = classify(mels_of(real_valid))
ceiling_valid = float((pred_v == target(real_valid)).float().mean())
real_ref = [c for c in real_all if c.labels.get("pitch") in args.pitches]
_, emb_real = classify(mels_of(real_ref))

# pitch as the real renders sound: their YIN error against the MIDI pitch, per instrument in whole octaves
real_pitch = [c for c in real_ref if c.labels.get("velocity", args.velocity) == args.velocity]
real_cents, octaves = render_pitch_errors(real_pitch, sr)
real_shifted = real_cents - np.array([1200 * octaves.get(c.labels["instrument"], 0) for c in real_pitch])

# 2. generate the grid through the pipeline (labels), in batches
grid = [{"instrument": i, "pitch": q, "velocity": args.velocity} for i in instruments for q in args.pitches]
t0 = time.perf_counter()
res = pipe.generate(labels=grid, duration=args.seconds, steps=args.steps, guidance=args.guidance,
                    sampler=args.sampler, seed=0, num_per_prompt=args.seeds, batch_size=16, progress=False)
gen_seconds = time.perf_counter() - t0
cents_midi = np.array([pitch_error_cents(w, sr, lab["pitch"]) for w, lab in zip(res.audio, res.labels)])
cents = cents_midi - np.array([1200 * octaves.get(lab["instrument"], 0) for lab in res.labels])
gen_mels = pipe.frontend(torch.from_numpy(res.audio))
pred_g, emb_gen = classify(gen_mels)
want = torch.tensor([instruments.index(lab["instrument"]) for lab in res.labels])
ok_pitch, ok_inst = np.abs(cents) <= 50, (pred_g == want).numpy()
per_inst = {i: {"pitch": float(ok_pitch[want.numpy() == k].mean()), "instrument": float(ok_inst[want.numpy() == k]
                                                                                            .mean())}
            for k, i in enumerate(instruments)}
summary = {
    "model": pipe.name, "vocoder": args.vocoder or type(pipe.vocoder).__name__, "n_generated": len(res.audio),
    "steps": res.params["steps"], "sampler": res.params["sampler"],
    "guidance": res.params["guidance"], "pitch_accuracy": float(ok_pitch.mean()),
    "pitch_accuracy_vs_midi_note": float((np.abs(cents_midi) <= 50).mean()),
    "sounding_octaves": {i: o for i, o in octaves.items() if o},
    "real_pitch_accuracy": float((np.abs(real_shifted) <= 50).mean()),
    "real_pitch_accuracy_vs_midi_note": float((np.abs(real_cents) <= 50).mean()), "n_real_pitch": len(real_pitch),
    "median_abs_cents": float(np.median(np.abs(cents))),
    "instrument_accuracy": float(ok_inst.mean()),
    "classifier": f"trained on {len(cls_train)} clips of {args.classifier_data}",
    "classifier_ceiling_heldout_real": ceiling, "classifier_on_generator_valid_real": ceiling_valid,
    "frechet_generated_vs_real": frechet_distance(emb_gen, emb_real),
    "frechet_real_vs_real": frechet_distance(emb_cls_test, emb_real),
    "cpu_seconds_per_generated_second": round(gen_seconds / (len(res.audio) * args.seconds), 4),
    "per_instrument": per_inst}
print(json.dumps(summary, indent=2))
if args.table:
    print("\n| metric | generated | real (ceiling / reference) |\n|---|---|---|")
    shifted = ", ".join(f"{i} {o:+d} octave" for i, o in summary["sounding_octaves"].items()) or "none"
    print(f"| pitch accuracy (YIN, ±50 cents of the pitch the soundfont sounds; transposed: {shifted}) | "
          f"{summary['pitch_accuracy']:.1%} | {summary['real_pitch_accuracy']:.1%} real renders |")
    print(f"| pitch accuracy against the bare MIDI note | {summary['pitch_accuracy_vs_midi_note']:.1%} | "
          f"{summary['real_pitch_accuracy_vs_midi_note']:.1%} real renders |")
    print(f"| median abs pitch error (cents) | {summary['median_abs_cents']:.1f} | |")
    print(f"| instrument accuracy | {summary['instrument_accuracy']:.1%} | {ceiling:.1%} held-out classifier-set "
          f"notes / {ceiling_valid:.1%} generator-valid notes |")
    print(f"| Fréchet distance (classifier embeddings) | {summary['frechet_generated_vs_real']:.2f} | "
          f"{summary['frechet_real_vs_real']:.2f} real vs real |")
    print(f"| CPU s per generated s | {summary['cpu_seconds_per_generated_second']} | |")
