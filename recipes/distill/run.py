"""python recipes/distill/run.py --model SRC --data DATA --out OUT [--preset tiny|demo] [--steps N] [--pairs N]
    [--guidance-range LO HI] [--mid-sigma S] [--mel-weight W] [--adv-weight W] [--init STUDENT] [--resume]
    [--overwrite]

Distil a model into a student that generates in one or two network evaluations, guidance included
(audioldm/training/distill_stage.py explains the method):
  1. pairs     the teacher's samples (its default sampler and steps, with classifier-free guidance at a scale drawn
               from --guidance-range per pair) for the conditions of DATA's training split, from the same seeded
               noise generate() uses; a few pairs for held-out conditions validate the student
  2. distill   the student (the teacher's U-Net plus a guidance input) regressed on those samples along its own
               two-step DDIM path, with the shared trainer (EMA, checkpoints, --resume, torchrun)
  3. package   OUT/model: a normal model folder whose defaults use the student (2 steps, the teacher's guidance),
               refusing steps, guidance or samplers outside what it was distilled for
  4. evaluate  OUT/report.json: on held-out conditions, the latent distance of the student's sample (1 and 2 steps)
               to the teacher's for the same seed, beside the distance between two teacher samples of different
               seeds, and DPM-Solver++(2M) at 1, 2 and 4 steps; seconds per clip for each
DATA: the data the teacher was trained on (a folder or manifest). Its training split is the manifest's "split" column
when every row has one (recipes/audio_folder, recipes/finetune), else the one hash split (audioldm/data/split.py)
(--valid-fraction; data/split.py), so held-out conditions stay held out of distillation too. Only the conditions are read: the
teacher makes the targets. GM notes: recipes/gm_notes/report.py --model OUT/model --gm-judge scores it with the judge.
"""

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper
import common  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from audioldm.data import load_clips, train_valid  # noqa: E402
from audioldm.diffusion import LatentDiffusion  # noqa: E402
from audioldm.files import atomic_path, portable_model_id  # noqa: E402
from audioldm.pipeline import AudioLDM  # noqa: E402
from audioldm.pipeline.settings import DistilledRange  # noqa: E402
from audioldm.training.cached_conditions import CachedConditioner  # noqa: E402
from audioldm.training.distill_stage import DistillStage, LatentCritic, PairDataset, collate_pairs, \
    cond_vector, make_student, teacher_pairs  # noqa: E402
from audioldm.training.distributed import init_distributed  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Preset:
    pairs: int
    valid_pairs: int
    steps: int
    batch: int
    lr: float
    eval_every: int
    chunk: int
    eval_conditions: int


def tiny() -> Preset:
    """Tests and a first look: minutes on 2 CPU cores."""
    return Preset(pairs=64, valid_pairs=8, steps=60, batch=8, lr=0.0002, eval_every=30, chunk=32, eval_conditions=4)


def demo() -> Preset:
    """The shipped student (gm-notes-fast, round 1): ~1 h on 2 CPU cores."""
    return Preset(pairs=1536, valid_pairs=64, steps=2500, batch=16, lr=0.0002, eval_every=250, chunk=64,
                  eval_conditions=24)


PRESETS = {"tiny": tiny, "demo": demo}  # name -> factory

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[3])
    common.add_common_args(p, PRESETS, conditioning=("text", "labels", "both"), default_conditioning=None)
    p.add_argument("--model", required=True, help="the teacher: one of our model folders or a diffusers AudioLDM one")
    p.add_argument("--pairs", type=common.positive_int, default=None,
                   help="teacher samples to distil from (default: the preset's)")
    p.add_argument("--guidance-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="guidance scales the student learns (default: the teacher's default guidance -1 .. +1)")
    p.add_argument("--mid-sigma", type=float, default=2.0, help="the student's second noise level (its first: the "
                   "teacher's first)")
    p.add_argument("--teacher-steps", type=int, default=None, help="the teacher's steps (default: its default)")
    p.add_argument("--mel-weight", type=float, default=0.0, help="weight of a log-mel L1 loss through the frozen VAE "
                   "decoder, beside the latent MSE (default 0: latent MSE alone)")
    p.add_argument("--adv-weight", type=float, default=0.0, help="weight of an adversarial loss from a conditional "
                   "patch critic on latents that learns to tell the teacher's samples from the student's (default 0)")
    p.add_argument("--init", default=None, help="start from this student folder (distilled from the same teacher) instead "
                   "of the teacher's U-Net")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="hash split, when DATA has no split column")
    p.add_argument("--lr", type=common.positive_float, default=None)
    p.add_argument("--batch-size", type=common.positive_int, default=None)
    p.add_argument("--name", default=None, help="the student's name (default: the teacher's name + '-distilled')")
    p.add_argument("--fp16", action="store_true", help="store the student's weights in float16")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    preset = PRESETS[args.preset]()
    info = init_distributed(args.device)
    src, data = Path(args.model), Path(args.data)
    try:
        teacher = AudioLDM.from_pretrained(src).to(info.device)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --model {src}: {e}") from None
    if teacher.distilled is not None:
        raise SystemExit(f"error: --model {src} is already a distilled student; distil from its teacher "
                         f"({teacher.distilled.teacher})")
    kind = teacher.conditioning
    if args.conditioning and args.conditioning != kind:
        raise SystemExit(f"error: --conditioning {args.conditioning}, but {src} is conditioned on {kind}")
    g0 = teacher.defaults.guidance
    lo, hi = args.guidance_range or (max(1.0, g0 - 1.0), g0 + 1.0)
    if not (0 < lo <= hi and math.isfinite(hi)):
        p.error(f"--guidance-range: need 0 < LO <= HI, got {lo} {hi}")
    t_steps = args.teacher_steps or teacher.defaults.steps
    sig_t = teacher.sampling_sigmas(t_steps)
    s_max = float(sig_t[0])
    if not 0 < args.mid_sigma < s_max:
        p.error(f"--mid-sigma must lie in (0, {s_max:.3g}) (the teacher's first sigma), got {args.mid_sigma}")
    sigmas2 = [s_max, args.mid_sigma, 0.0]
    for flag, v in (("--mel-weight", args.mel_weight), ("--adv-weight", args.adv_weight)):
        if not (v >= 0 and math.isfinite(v)):
            p.error(f"{flag} must be a finite number >= 0, got {v}")
    init_weights = None  # --init: a student of this teacher to continue from (checked before any work)
    if args.init:
        try:
            init = AudioLDM.from_pretrained(args.init)
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: --init {args.init}: {e}") from None
        want = dataclasses.replace(teacher.unet.config, guidance_embed=True, gradient_checkpointing=False)
        if init.distilled is None or dataclasses.replace(init.unet.config, gradient_checkpointing=False) != want:
            raise SystemExit(f"error: --init {args.init}: not a distilled student of --model {src} (its U-Net config "
                             f"must be the teacher's with guidance_embed=True)")
        if init.distilled.teacher != portable_model_id(src):
            raise SystemExit(f"error: --init {args.init}: distilled from {init.distilled.teacher}, not from --model "
                             f"{portable_model_id(src)}")
        init_weights = {k: v.float() for k, v in init.unet.state_dict().items()}
        del init

    # conditions: DATA's training and held-out splits
    try:
        clips = load_clips(data)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --data {data}: {e}") from None
    train, valid = train_valid(clips, args.valid_fraction)
    fields = [f.name for f in teacher.conditioner.config.fields] if kind != "text" else []


    def cond_input(c):
        """A clip's condition in the conditioner's input form (as LDMStage.inputs gives it)."""
        labels = {k: c.labels[k] for k in fields if k in c.labels}
        return {"text": c.caption, "labels": labels, "both": {"prompt": c.caption or None, "labels": labels or None}}[kind]


    train_clips = [c for c in train if kind == "labels" or c.caption]  # the clips carrying a condition the teacher reads
    valid_clips = [c for c in valid if kind == "labels" or c.caption]
    train_inputs, valid_inputs = [cond_input(c) for c in train_clips], [cond_input(c) for c in valid_clips]
    if not train_inputs:
        raise SystemExit(f"error: --data {data}: no training clip carries a condition the teacher reads ({kind})")
    settings = {"model": portable_model_id(src), "data": str(data.resolve()),
                "data_fingerprint": common.data_fingerprint(data, args.out), "preset": args.preset,
                "guidance_range": [lo, hi], "sigmas": sigmas2, "teacher_steps": t_steps, "pairs": args.pairs,
                **({"mel_weight": args.mel_weight} if args.mel_weight else {}), **({"init": args.init} if args.init else {}),
                **({"adv_weight": args.adv_weight} if args.adv_weight else {})}
    out = common.open_run(args.out, settings, args.resume, args.overwrite, info.is_main)
    common.barrier(info)
    duration = teacher.defaults.duration
    shape = teacher.latent_shape(teacher.mel_config.num_frames(int(round(duration * teacher.sample_rate))))


    # 1. teacher pairs, in chunks written atomically (a resumed run continues from the last whole chunk)
    def make_pairs(name: str, inputs: list, n: int, seed: int) -> dict:
        folder = out / "pairs" / name
        folder.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(seed)
        pick = torch.randint(len(inputs), (n,), generator=g).tolist()
        ws = lo + (hi - lo) * torch.rand(n, generator=g)
        t0 = time.time()
        for s in range(0, n, preset.chunk):
            f = folder / f"chunk_{s:07d}.safetensors"
            if f.exists():
                continue
            idx = list(range(s, min(n, s + preset.chunk)))
            ins = [inputs[pick[i]] for i in idx]
            with torch.no_grad():
                cond = teacher.conditioner(ins)
                uncond = teacher.conditioner.null_condition(len(idx))
            y, x0 = teacher_pairs(teacher.diffusion, cond, uncond, ws[idx].to(info.device),
                                  [seed * 1_000_003 + i for i in idx], shape, sig_t, teacher.defaults.sampler)
            with atomic_path(f) as tmp:
                save_file({"y": y.cpu().contiguous(), "x0": x0.cpu().contiguous(), "w": ws[idx].contiguous(),
                           "pick": torch.tensor([pick[i] for i in idx])}, str(tmp))
            print(f"[pairs:{name}] {idx[-1] + 1}/{n} ({time.time() - t0:.0f} s)", file=sys.stderr)
        return {"pairs": n, "conditions": len({json.dumps(inputs[i], sort_keys=True) for i in pick}),
                "seconds": round(time.time() - t0, 1)}


    def load_pairs(name: str, inputs: list) -> PairDataset:
        parts = [load_file(str(f)) for f in sorted((out / "pairs" / name).glob("chunk_*.safetensors"))]
        cat = lambda k: torch.cat([q[k] for q in parts])  # noqa: E731
        return PairDataset(cat("y"), cat("x0"), cat("w"), [inputs[i] for i in cat("pick").tolist()])


    def pairs():
        rec = {"train": make_pairs("train", train_inputs, common.pick(args.pairs, preset.pairs), args.seed)}
        if valid_inputs:
            rec["valid"] = make_pairs("valid", valid_inputs, preset.valid_pairs, args.seed + 1)
        return {**rec, "teacher_steps": t_steps, "teacher_sampler": teacher.defaults.sampler, "guidance_range": [lo, hi]}


    pr = common.run_stage(out, "pairs", pairs, info, everyone=False)


    # 2. distil
    def distill() -> dict:
        t0 = time.time()
        run = out / "distill"
        student = make_student(teacher.unet)
        if init_weights is not None:
            student.load_state_dict(init_weights)
        train_set = load_pairs("train", train_inputs)
        valid_set = load_pairs("valid", valid_inputs) if valid_inputs else None
        cond = CachedConditioner(teacher.conditioner, train_inputs + valid_inputs, device=info.device)
        vae = teacher.vae.requires_grad_(False)
        critic = None
        if args.adv_weight > 0:
            with torch.no_grad():
                dim = cond_vector(cond(train_inputs[:1])).shape[-1]
            torch.manual_seed(args.seed)
            critic = LatentCritic(student.config.in_channels, dim).to(info.device)
        stage = DistillStage(LatentDiffusion(student, teacher.schedule), cond, sigmas2, valid=valid_set,
                             decoder=lambda z: vae.decode(z / vae.config.scale_factor), mel_weight=args.mel_weight,
                             critic=critic, adv_weight=args.adv_weight)
        trainer = common.fit_unet(stage, student, train_set, collate_pairs, run, common.pick(args.steps, preset.steps),
                                  common.pick(args.batch_size, preset.batch), common.pick(args.lr, preset.lr),
                                  preset.eval_every, args)
        if not trainer.info.is_main:
            return {}
        trainer.ema.get("unet", student).float().save_pretrained(run / "unet", overwrite=True)
        last = stage.evaluate(trainer.context())
        return {"steps": trainer.step, "minutes": round((time.time() - t0) / 60, 2), **last.get("scalars", {})}


    ds = common.run_stage(out, "distill", distill, info)
    if info.enabled:
        common.barrier(info)
        torch.distributed.destroy_process_group()
    if not info.is_main:
        sys.exit(0)


    # 3. package: a normal model folder whose defaults use the student
    def package() -> dict:
        from audioldm.unet import UNet

        base = AudioLDM.from_pretrained(src)  # a fresh copy of the teacher's other parts
        distilled = DistilledRange(sigmas={"1": [s_max, 0.0], "2": sigmas2}, guidance_min=lo, guidance_max=hi,
                                   teacher=portable_model_id(src), teacher_steps=t_steps,
                                   teacher_sampler=teacher.defaults.sampler)
        defaults = dataclasses.replace(base.defaults, steps=2, sampler="ddim", guidance=min(max(g0, lo), hi))
        pipe = AudioLDM(base.vae, UNet.from_pretrained(out / "distill" / "unet"), base.schedule, base.conditioner,
                        base.vocoder, defaults, name=args.name or f"{teacher.name}-distilled",
                        info={**base.info, "distilled_from": portable_model_id(src), "distill": {**pr, **ds}},
                        distilled=distilled)
        pipe.save_pretrained(out / "model", overwrite=True, dtype=torch.float16 if args.fp16 else None)
        return {"model": str(out / "model")}


    pk = common.run_stage(out, "package", package, info)


    # 4. evaluate: the student against its teacher on held-out conditions, and plain few-step solving beside it
    def evaluate() -> dict:
        from audioldm.config import save_json_atomic

        student = AudioLDM.from_pretrained(out / "model")
        request = common.clip_request(kind, fields)  # one generate() request per distinct held-out condition
        conds = list(dict(request(c) for c in (valid_clips or train_clips)).values())[:preset.eval_conditions]
        g = student.defaults.guidance

        def run(pipe, seed, **s):
            t0 = time.time()
            lat = [pipe.generate(**r, seed=seed, duration=duration, guidance=g, progress=False, **s).latents
                   for r in conds]
            return torch.cat(lat), (time.time() - t0) / len(conds)

        ref, t_ref = run(teacher, 0)
        other, _ = run(teacher, 1000)
        dist = lambda a: float((a - ref).pow(2).mean())  # noqa: E731
        rows = {f"teacher ({t_steps} steps, CFG)": {"evals": 2 * t_steps, "mse_to_teacher": 0.0, "s_per_clip": t_ref},
                "teacher, another seed": {"evals": 2 * t_steps, "mse_to_teacher": dist(other), "s_per_clip": t_ref}}
        for k in (1, 2):
            lat, t = run(student, 0, steps=k)
            rows[f"student ({k} step{'s' * (k > 1)})"] = {"evals": k, "mse_to_teacher": dist(lat), "s_per_clip": t}
        for k in (1, 2, 4):
            lat, t = run(teacher, 0, steps=k, sampler="dpmpp_2m")
            rows[f"dpmpp_2m, {k} step{'s' * (k > 1)} (CFG)"] = {"evals": 2 * k, "mse_to_teacher": dist(lat),
                                                                 "s_per_clip": t}
        lines = ["| sampling | evaluations | latent MSE to the teacher's sample (same seed) | s per clip |", "|---|---|---|---|"]
        lines += [f"| {n} | {r['evals']} | {r['mse_to_teacher']:.4f} | {r['s_per_clip']:.3f} |" for n, r in rows.items()]
        rep = {"conditions": len(conds), "held_out": bool(valid_clips), "guidance": g, "rows": rows}
        save_json_atomic(out / "report.json", rep)
        (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(lines), file=sys.stderr)
        return {n: round(r["mse_to_teacher"], 5) for n, r in rows.items()}


    ev = common.run_stage(out, "evaluate", evaluate, info)
    print(json.dumps({"pairs": pr, "distill": ds, "package": pk, "evaluate": ev}, indent=2))


if __name__ == "__main__":
    main()
