"""python recipes/gm_notes/train_judge.py [--soundfonts SF2 ...] [--heldout-soundfonts SF ...] [--out DIR] [--steps 3000]
    [--cache FILE] [--eval-only] [--overwrite]

Trains the GM judge that evaluates GM-note models (audioldm/evaluation/gm_judge.py), and writes its small weights
into the package so tests and CI never train it:
  1. render  every GM program 0-127 and the drum kit from each soundfont (default: FluidR3_GM, Debian's
             fluid-soundfont-gm, and TimGM6mb, inside pretty_midi), at every 2nd semitone of each family's playable
             range (drums: keys 35-81) and velocities 64 and 112, as 2 s clips (note held 1 s, then its release);
  2. split   a quarter of the pitches (those with (pitch // 2) % 4 == 1) are held out of judge training;
  3. train   one CNN with two heads, family (16 GM families + drums) and program (128 programs + drum kit);
  4. report  accuracy on the held-out pitches per soundfont, and on every note of soundfonts never trained on
             (--heldout-soundfonts; default: MuseScore_General_Lite.sf3 from Debian's
             musescore-general-soundfont-small, when installed), into OUT/judge.json beside the weights.
--cache keeps the renders (log-mels, fp16) in FILE so a rerun skips step 1; --eval-only skips 1-3 and re-runs the
held-out-soundfont report for the judge already in OUT. OUT is replaced only with --overwrite.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audioldm.data.gm_notes import DRUM_PROGRAM, FAMILY_RANGES, NoteRenderer
from audioldm.evaluation.gm_judge import (FAMILIES, PROGRAMS, GMJudge, JudgeConfig, JudgeNet, family_of, load_gm_judge,
                                          program_class, train_judge)
from audioldm.mel import MelConfig, MelFrontend

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--soundfonts", nargs="+", default=["/usr/share/sounds/sf2/FluidR3_GM.sf2", "TimGM6mb"],
                   help="soundfont files; 'TimGM6mb' is the one inside pretty_midi")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "audioldm" / "pretrained" / "gm-judge"))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--time-pool", type=int, default=2)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout-soundfonts", nargs="*", default=None,
                   help="soundfonts only to test on (default: MuseScore General Lite when installed)")
    p.add_argument("--eval-only", action="store_true", help="only the held-out-soundfont report of the judge in --out")
    p.add_argument("--cache", default=None, help="keep / reuse the renders in this file (torch tensors, no pickle)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing judge in --out")
    args = p.parse_args()
    if args.heldout_soundfonts is None:
        lite = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
        args.heldout_soundfonts = [str(lite)] if lite.is_file() else []
    torch.set_num_threads(2)
    mel_cfg = MelConfig()
    frontend = MelFrontend(mel_cfg)
    CLIP, HOLD = 2.0, 1.0

    # 1. render
    notes = []
    for prog in range(128):
        lo, hi = FAMILY_RANGES[prog // 8]
        notes += [(prog, q) for q in range(lo + lo % 2, hi + 1, 2)]
    notes += [(DRUM_PROGRAM, k) for k in range(36, 82, 2)]


    def render(soundfonts):
        """Log-mels [N, n_mels, F] of every note x velocity (64, 112) of ``soundfonts``, with their labels."""
        mels, programs, pitches, fonts = [], [], [], []
        cache = load_cache()
        for sf in soundfonts:
            r = NoteRenderer(None if sf == "TimGM6mb" else sf, mel_cfg.sample_rate)
            name = r.soundfont.stem
            if name in cache:
                mels.append(cache[name]["mel"].float())
                programs += cache[name]["program"].tolist()
                pitches += cache[name]["pitch"].tolist()
                fonts += [name] * len(cache[name]["mel"])
                print(f"[render] {name}: {len(cache[name]['mel'])} clips from {args.cache}", file=sys.stderr)
                continue
            batch, start = [], len(programs)
            for prog, q in notes:
                for vel in (64, 112):
                    wav = r.render(prog, q, vel, CLIP, HOLD)
                    if np.abs(wav).max() < 1e-3:
                        continue  # a program this soundfont lacks, or a note out of its range
                    batch.append(torch.from_numpy(wav / max(1.0, float(np.abs(wav).max()) / 0.99)))
                    programs.append(prog)
                    pitches.append(q)
                    fonts.append(name)
            with torch.no_grad():
                m = torch.cat([frontend(torch.stack(batch[s:s + 256])) for s in range(0, len(batch), 256)])
            mels.append(m)
            print(f"[render] {name}: {len(batch)} clips", file=sys.stderr)
            if args.cache:
                cache[name] = {"mel": m.half(), "program": torch.tensor(programs[start:]),
                               "pitch": torch.tensor(pitches[start:])}
                save_cache(cache)
        return torch.cat(mels), programs, pitches, fonts


    def load_cache() -> dict:
        """{soundfont name: {"mel", "program", "pitch"}} from --cache (safetensors, so nothing is unpickled)."""
        if not args.cache or not Path(args.cache).is_file():
            return {}
        from safetensors.torch import load_file
        out = {}
        for key, t in load_file(args.cache).items():
            name, field = key.rsplit("/", 1)
            out.setdefault(name, {})[field] = t
        return out


    def save_cache(cache: dict):
        from safetensors.torch import save_file
        from audioldm.files import atomic_path
        with atomic_path(args.cache) as tmp:
            save_file({f"{n}/{k}": v.contiguous() for n, d in cache.items() for k, v in d.items()}, str(tmp))


    def heldout_soundfont_report(judge) -> dict:
        out = {}
        for sf in args.heldout_soundfonts:
            m, progs, _, fonts_ = render([sf])
            out[fonts_[0]] = judge.score(m, progs)
        return out


    if Path(args.out).exists() and not (args.overwrite or args.eval_only):
        sys.exit(f"train_judge.py: {args.out} already exists; pass --overwrite to replace it")
    if args.eval_only:
        judge = load_gm_judge(args.out)
        judge.info["heldout_soundfont_accuracy"] = heldout_soundfont_report(judge)
        judge.save(args.out, overwrite=True)
        print(json.dumps(judge.info, indent=2))
        sys.exit(0)
    t0 = time.time()
    mels, programs, pitches, fonts = render(args.soundfonts)
    render_s = time.time() - t0
    held = torch.tensor([(q // 2) % 4 == 1 for q in pitches])
    train_idx, test_idx = (~held).nonzero()[:, 0], held.nonzero()[:, 0]


    # 3. train one net with both heads
    torch.manual_seed(args.seed)
    net = JudgeNet(JudgeConfig(channels=args.channels, time_pool=args.time_pool))
    t1 = time.time()
    fam_t = torch.tensor([FAMILIES.index(family_of(q)) for q in programs])
    prog_t = torch.tensor([PROGRAMS.index(program_class(q)) for q in programs])
    losses = train_judge(net, mels[train_idx], fam_t[train_idx], prog_t[train_idx], steps=args.steps,
                         batch_size=args.batch, lr=args.lr, log_floor=float(np.log(mel_cfg.log_floor)), seed=args.seed,
                         log=lambda step, loss: print(f"[train] step {step}: loss {loss:.3f} ({time.time() - t1:.0f} s)",
                                                      file=sys.stderr))
    judge = GMJudge(net, frames=mels.shape[-1], log_floor=float(np.log(mel_cfg.log_floor)))

    # 4. held-out pitches, per soundfont
    report = {}
    for name in dict.fromkeys(fonts):
        idx = [int(i) for i in test_idx if fonts[i] == name]
        report[name] = judge.score(mels[idx], [programs[i] for i in idx])
    judge.info = {"soundfonts": list(dict.fromkeys(fonts)), "train_clips": len(train_idx), "heldout_clips": len(test_idx),
                  "heldout": "pitches with (pitch // 2) % 4 == 1", "clip_seconds": CLIP, "hold_seconds": HOLD,
                  "steps": args.steps, "final_loss": round(float(np.mean(losses[-100:])), 3), "heldout_accuracy": report, "render_seconds": round(render_s, 1),
                  "train_seconds": round(time.time() - t1, 1),
                  "command": "python recipes/gm_notes/train_judge.py " + " ".join(sys.argv[1:]),
                  "heldout_soundfont_accuracy": heldout_soundfont_report(judge)}
    judge.save(args.out, overwrite=args.overwrite)
    print(json.dumps(judge.info, indent=2))


if __name__ == "__main__":
    main()
