"""python recipes/gm_notes/report.py --data data/gm_notes_fluid/manifest.jsonl [--model DIR] [--out report.json]
    [--gm-judge [FOLDER]] [--steps N] [--guidance W] [--sampler NAME]

The shared evaluation (audioldm.evaluation.report, the one recipes/audio_folder uses) on a GM-notes label model: a
judge trained on the training split's real notes recognises the instrument (--category), held-out notes are the
notes the manifest's `split` column held out of every training stage (prepare.py writes it; data/split.py), and their (instrument, pitch, velocity)
combinations, each of which is a single note of the grid, were never seen in U-Net training. Prints the markdown
table (stage decomposition, adherence vs ceiling vs chance, FD vs real-vs-real, memorisation, diversity).
--gm-judge adds the harder judge's decomposition (audioldm/evaluation/gm_judge.py; default: the shipped judge,
trained on every GM program from two soundfonts): family and program accuracy, pitch within 50 cents and FD of its
embeddings, stage by stage, on the same held-out label combinations (unseen in U-Net training), beside a row of
generations for combinations the U-Net was trained on (FD to those training clips; --no-training-row drops it).
--steps / --guidance / --sampler override the model's generation defaults (e.g. a few-step solver, or a distilled
student's one step).
"""

import argparse
import json
import sys

import torch

from audioldm.pretrained import default_model
from audioldm.config import save_json_atomic
from audioldm.data import load_clips, train_valid
from audioldm.evaluation.report import evaluate_model, report_table
from audioldm.pipeline import AudioLDM

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--data", required=True, help="the generator's training manifest")
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--category", default="instrument")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="hash split, for a manifest without a split column")
    p.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's default duration)")
    p.add_argument("--per-condition", type=int, default=2)
    p.add_argument("--max-conditions", type=int, default=48)
    p.add_argument("--judge-steps", type=int, default=600)
    p.add_argument("--out", default=None, help="write the report JSON here")
    p.add_argument("--gm-judge", nargs="?", const="", default=None, metavar="FOLDER",
                   help="also score with the GM judge (no FOLDER: the shipped one)")
    p.add_argument("--skip-own-judge", action="store_true", help="only the GM judge's decomposition")
    p.add_argument("--no-training-row", action="store_true",
                   help="GM judge: skip the row of generations for combinations the U-Net was trained on")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler (default: the model's)")
    args = p.parse_args()
    torch.set_num_threads(2)
    gen_settings = {k: v for k, v in (("steps", args.steps), ("guidance", args.guidance), ("sampler", args.sampler))
                    if v is not None}
    if gen_settings and not (args.gm_judge is not None and args.skip_own_judge):
        p.error("--steps / --guidance / --sampler apply to the GM judge's decomposition: add --gm-judge --skip-own-judge")

    pipe = AudioLDM.from_pretrained(args.model or default_model())
    args.seconds = args.seconds or pipe.defaults.duration
    fields = [f.name for f in pipe.conditioner.config.fields]
    train, valid = train_valid(load_clips(args.data), args.valid_fraction)


    def request(clip):
        labels = {k: clip.labels[k] for k in fields if k in clip.labels}
        return json.dumps(labels, sort_keys=True), {"labels": labels}


    seen = {request(c)[0] for c in train}
    if args.gm_judge is not None:
        from audioldm.evaluation.gm_judge import decomposition_table, gm_decomposition, load_gm_judge
        gm = gm_decomposition(pipe, valid, seen, load_gm_judge(args.gm_judge or None), args.seconds, fields,
                              per_condition=args.per_condition, max_conditions=args.max_conditions,
                              seen_clips=None if args.no_training_row else train, settings=gen_settings)
        print(decomposition_table(gm))
        if args.skip_own_judge:
            if args.out:
                save_json_atomic(args.out, {"gm_judge": gm})
            sys.exit(0)
    rep = evaluate_model(pipe, train, valid, lambda c: str(c.labels[args.category]), request, seen, args.seconds,
                         judge_steps=args.judge_steps, per_condition=args.per_condition,
                         max_conditions=args.max_conditions)
    if args.gm_judge is not None:
        rep["gm_judge"] = gm
    if args.out:
        save_json_atomic(args.out, rep)
    print(report_table(rep))
    print(json.dumps({"ceiling": rep["ceiling_heldout_real"], "wall_s": rep["wall_seconds"]}), file=sys.stderr)


if __name__ == "__main__":
    main()
