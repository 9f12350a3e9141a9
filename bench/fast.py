"""python bench/fast.py [--model STUDENT] [--teacher TEACHER] [--duration 2] [--repeats 5] [--threads 2] [--no-cli]

Few-step generation against its references, in one run (issue 21). ``--model``: a distilled student (default: the
shipped gm-notes-fast); ``--teacher``: its teacher (default: the shipped gm-notes). Prints JSON rows:
- ``generate()`` of one clip, the public call end to end, for the student (its default steps) and the teacher (its
  default 25 steps, CFG), with the split into denoise / VAE decode / vocoder;
- the reference a diffusers user would write: UNet2DConditionModel holding the teacher's weights, driven by diffusers'
  DPMSolverMultistepScheduler (the teacher's schedule, v-prediction, 25 steps, CFG as one batch of 2), then the same
  VAE and vocoder; and its per-evaluation cost (batch 1, no CFG) beside the student's;
- the CLI: ``audioldm generate`` wall time (start-up included) for 2 s and 8 s clips, and the marginal real-time
  factor (t(8 s) - t(2 s)) / 6 s; ``python -c "import torch"`` and ``audioldm --version`` for the start-up floor.
Times are medians over ``--repeats`` after one warm-up.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from audioldm.pipeline import AudioLDM

ROOT = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser()
p.add_argument("--model", default=str(ROOT / "audioldm" / "pretrained" / "gm-notes-fast"))
p.add_argument("--teacher", default=str(ROOT / "audioldm" / "pretrained" / "gm-notes"))
p.add_argument("--duration", type=float, default=2.0)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--no-cli", action="store_true")
args = p.parse_args()
torch.set_num_threads(args.threads)


def median_time(fn, repeats=args.repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def some_labels(pipe) -> dict:
    out = {}
    for f in pipe.conditioner.config.fields:
        out[f.name] = f.values[0] if f.kind == "categorical" else round((f.low + f.high) / 2)
    return out


def stages(pipe, labels, steps=None) -> dict:
    """Median seconds of generate() and of its parts for one clip."""
    s = pipe.settings(args.duration, steps, None, None)
    samples = int(round(args.duration * pipe.sample_rate))
    frames = pipe.mel_config.num_frames(samples)
    shape = pipe.latent_shape(frames)
    e2e = median_time(lambda: pipe.generate(labels=labels, duration=args.duration, steps=steps, seed=0,
                                            progress=False))
    den = median_time(lambda: pipe.sample_from_noise([None], [labels], s, [0], shape))
    z = pipe.sample_from_noise([None], [labels], s, [0], shape)
    with torch.no_grad():
        vae = median_time(lambda: pipe.vae.decode_latents(z, frames))
        mel = pipe.vae.decode_latents(z, frames)
        voc = median_time(lambda: pipe.vocoder(mel))
    evals = s["steps"] * (1 if pipe.distilled else 2)
    return {"model": pipe.name, "steps": s["steps"], "sampler": s["sampler"], "unet_evaluations": evals,
            "generate_s": round(e2e, 4), "denoise_s": round(den, 4), "vae_decode_s": round(vae, 4),
            "vocoder_s": round(voc, 4), "per_evaluation_ms": round(1000 * den / evals, 2)}


def diffusers_reference(teacher, labels, steps=25) -> dict:
    from diffusers import DPMSolverMultistepScheduler

    from audioldm.convert.diffusers import diffusers_unet

    unet = diffusers_unet(teacher.unet.config).eval()
    unet.load_state_dict(teacher.unet.state_dict(), strict=True)
    c = teacher.schedule.config
    sched = DPMSolverMultistepScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start,
                                        beta_end=c.beta_end, beta_schedule=c.kind,
                                        prediction_type="v_prediction" if c.prediction == "v" else "epsilon",
                                        timestep_spacing=c.spacing, steps_offset=c.steps_offset,
                                        algorithm_type="dpmsolver++", solver_order=2)
    samples = int(round(args.duration * teacher.sample_rate))
    frames = teacher.mel_config.num_frames(samples)
    shape = teacher.latent_shape(frames)
    cond, uncond = teacher.conditions([None], [labels])
    pooled = torch.cat([cond["pooled"], uncond["pooled"]])
    g = teacher.defaults.guidance

    @torch.no_grad()
    def run():
        sched.set_timesteps(steps)
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0)) * sched.init_noise_sigma
        for t in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([x, x]), t)
            out = unet(inp, t, encoder_hidden_states=None, class_labels=pooled).sample
            oc, ou = out.chunk(2)
            x = sched.step(ou + g * (oc - ou), t, x).prev_sample
        mel = teacher.vae.decode_latents(x, frames)
        return teacher.vocoder(mel)[:, :samples]

    e2e = median_time(run, max(1, args.repeats // 2))
    x1 = torch.randn(1, *shape)
    with torch.no_grad():
        one = median_time(lambda: unet(x1, torch.tensor([500]), encoder_hidden_states=None,
                                        class_labels=cond["pooled"]).sample)
    return {"reference": "diffusers UNet2DConditionModel (teacher's weights) + DPMSolverMultistepScheduler, "
                         f"{steps} steps, CFG batch 2, then our VAE + vocoder",
            "generate_s": round(e2e, 4), "per_evaluation_ms_batch1": round(1000 * one, 2)}


def cli_seconds(model, duration) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = ["audioldm", "generate", "--model", model, "--duration", str(duration), "--seed", "0", "--quiet",
               "-o", str(Path(d) / "x.wav"), "--overwrite"]
        for k, v in some_labels(student).items():
            cmd += ["--labels", f"{k}={v}"]

        def go():
            subprocess.run(cmd, check=True, capture_output=True)
        return median_time(go, max(1, args.repeats // 2 + 1))


student = AudioLDM.from_pretrained(args.model)
teacher = AudioLDM.from_pretrained(args.teacher) if Path(args.teacher).is_dir() else None
labels = some_labels(student)
rows = {"student": stages(student, labels)}
if teacher is not None:
    rows["teacher"] = stages(teacher, labels)
    try:
        rows["diffusers"] = diffusers_reference(teacher, labels)
    except ImportError:
        rows["diffusers"] = {"note": "pip install -e '.[bench]' for the diffusers reference"}
    d = rows["diffusers"]
    if "generate_s" in d:
        rows["ratios"] = {"diffusers_25_steps_over_student_generate": round(d["generate_s"] /
                                                                           rows["student"]["generate_s"], 2),
                          "student_per_evaluation_over_diffusers": round(
                              rows["student"]["per_evaluation_ms"] / d["per_evaluation_ms_batch1"], 3)}
if not args.no_cli:
    t_import = median_time(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True), 3)
    t_version = median_time(lambda: subprocess.run(["audioldm", "--version"], check=True, capture_output=True), 3)
    t2, t8 = cli_seconds(args.model, 2.0), cli_seconds(args.model, 8.0)
    rows["cli"] = {"import_torch_s": round(t_import, 3), "audioldm_version_s": round(t_version, 3),
                   "generate_2s_clip_s": round(t2, 3), "generate_8s_clip_s": round(t8, 3),
                   "marginal_rtf": round((t8 - t2) / 6.0, 4)}
print(json.dumps({"bench": "fast", "threads": args.threads, "duration_s": args.duration, **rows}, indent=2))
