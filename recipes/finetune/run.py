"""python recipes/finetune/run.py --model SRC --data DATA --out OUT [--lora-rank R] [--steps N] [--resume] [--overwrite]

Fine-tune a pretrained model on your own sounds, in full or with LoRA adapters:
  1. prepare   DATA (a folder or manifest, as in recipes/audio_folder) read and resampled to SRC's rate
  2. finetune  the U-Net from SRC on cached latents (SRC's VAE) and cached conditions (SRC's frozen conditioner: a
               CLAP / T5 text tower runs once per caption, not once per step); --lora-rank R trains LoRA adapters
               (peft) on the attention projections (--lora-targets adds resnet convs / film), else every U-Net weight
  3. package   OUT/lora (the adapter alone, peft format, naming its base as NAME@hash) and OUT/model (a standalone
               model folder, the adapter merged)
  4. evaluate  OUT/report.json + report.md: audioldm.evaluation.report on the held-out split for SRC and for the
               fine-tuned model, with one judge (trained on the training split; --category COLUMN, default the
               caption), so the two rows compare
--conditioning clap-audio --clap FOLDER trains a CLAP-text model (e.g. AudioLDM) on uncaptioned clips: each clip's
condition is its CLAP audio embedding (FOLDER: a local transformers ClapModel with both towers, whose text tower must
be SRC's text encoder), cached with the latents; generation then reads SRC's CLAP text tower as before
(audioldm/conditioning_clap.py documents unit norm and the null embedding).
SRC is one of our model folders or a diffusers AudioLDM folder (converted in memory); nothing is written into SRC.
Its conditioner, VAE, noise schedule and vocoder are kept (--vocoder keep, the default), or --vocoder universal (the
shipped 16 kHz slot), griffinlim, FOLDER, or train (the spectral vocoder trained on the training clips, into
OUT/vocoder/vocoder). --resume skips finished stages and resumes training from
its checkpoints; torchrun --nproc_per_node N runs the training on N processes.
"""

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/: the shared helper
import common  # noqa: E402
import torch  # noqa: E402

from audioldm.data import ClipDataset, read_manifest  # noqa: E402
from audioldm.data.latents import (LatentDataset, build_latent_cache, cache_is_current, cache_key,  # noqa: E402
                                   collate_latents)
from audioldm.data.prepare import PrepareConfig, PrepareError, prepare_dataset  # noqa: E402
from audioldm.diffusion import LatentDiffusion  # noqa: E402
from audioldm.files import portable_model_id  # noqa: E402
from audioldm.lora import TARGETS, add_lora, save_lora  # noqa: E402
from audioldm.pipeline import AudioLDM  # noqa: E402
from audioldm.training.cached_conditions import CachedConditioner  # noqa: E402
from audioldm.training.distributed import init_distributed  # noqa: E402
from audioldm.training.ldm_stage import LDMStage  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Preset:
    steps: int
    batch: int
    lr: float
    lora_lr: float
    eval_every: int
    judge_steps: int
    per_condition: int
    max_conditions: int
    max_heldout: int


def tiny() -> Preset:
    """Tests and a first look: minutes on 2 CPU cores."""
    return Preset(steps=100, batch=8, lr=5e-05, lora_lr=0.001, eval_every=50, judge_steps=200, per_condition=2,
                  max_conditions=8, max_heldout=64)


def small() -> Preset:
    """The CPU preset: about an hour on 2 CPU cores."""
    return Preset(steps=1000, batch=16, lr=5e-05, lora_lr=0.001, eval_every=250, judge_steps=600, per_condition=4,
                  max_conditions=16, max_heldout=200)


PRESETS = {"tiny": tiny, "small": small}  # name -> factory
KEY = {"text": "caption", "labels": "labels", "both": "both", "clap-audio": "condition"}

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    common.add_common_args(p, PRESETS, conditioning=("text", "labels", "both", "clap-audio"),
                            default_conditioning=None)
    p.add_argument("--clap", default=None, help="--conditioning clap-audio: a local transformers ClapModel folder")
    p.add_argument("--model", required=True, help="the model to start from: our model folder or a diffusers AudioLDM one")
    p.add_argument("--lora-rank", type=int, default=None, help="train LoRA adapters of this rank (default: full)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: the rank, i.e. scale 1)")
    p.add_argument("--lora-targets", nargs="+", default=["attention"], choices=sorted(TARGETS))
    p.add_argument("--lr", type=common.positive_float, default=None,
                   help="learning rate (default: the preset's, full or LoRA)")
    p.add_argument("--max-seconds", type=float, default=None, help="longest clip (default: SRC's default duration)")
    p.add_argument("--group-by", default=None)
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--name", default=None, help="the fine-tuned model's name (default: SRC name + data name)")
    p.add_argument("--licence", default=None)
    common.add_vocoder_arg(p, keep=True)
    p.add_argument("--category", default=None, help="column the evaluation judge recognises (default: the caption)")
    p.add_argument("--judge-steps", type=common.positive_int, default=None,
                   help="evaluation judge training steps (default: preset's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.lora_rank is not None and args.lora_rank <= 0:
        p.error(f"--lora-rank must be a positive integer, got {args.lora_rank}")
    src, data = Path(args.model), Path(args.data)
    torch.manual_seed(args.seed)
    info = init_distributed(args.device)
    preset = PRESETS[args.preset]()


    def load_src() -> AudioLDM:
        try:
            return AudioLDM.from_pretrained(src)
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: --model {src}: {e}") from None


    base = load_src()
    kind = base.conditioning
    clap = args.conditioning == "clap-audio"
    if clap:
        from audioldm.conditioning.clap import AudioEmbeddingConditioner, ClapError, check_text_tower, clap_audio_embedder
        if not args.clap:
            p.error("--conditioning clap-audio needs --clap FOLDER (a local transformers ClapModel with both towers)")
        text_cfg = getattr(base.conditioner, "config", None)
        if kind != "text" or getattr(text_cfg, "kind", None) != "clap" or text_cfg.tokens:
            raise SystemExit(f"error: --conditioning clap-audio needs a model conditioned on the pooled CLAP text "
                             f"embedding (as AudioLDM is); {src} is conditioned on {kind}"
                             f"{' through ' + type(base.conditioner).__name__ if kind == 'text' else ''}")
        try:
            check_text_tower(args.clap, base.conditioner.model)
        except ClapError as e:
            raise SystemExit(f"error: {e}") from None
    elif args.clap:
        p.error("--clap is only used with --conditioning clap-audio")
    elif args.conditioning and args.conditioning != kind:
        raise SystemExit(f"error: --conditioning {args.conditioning}, but {src} is conditioned on {kind}; fine-tuning "
                         f"keeps the source model's conditioner")
    key = KEY["clap-audio" if clap else kind]


    def done(name, make, everyone=True):
        return common.run_stage(out, name, make, info, everyone)


    base_id = portable_model_id(src)
    settings = {"model": base_id, "data": str(data.resolve()), "data_fingerprint": common.data_fingerprint(data, args.out),
                "preset": args.preset, "lora_rank": args.lora_rank, "lora_targets": sorted(args.lora_targets),
                "max_seconds": args.max_seconds, "group_by": args.group_by,
                "conditioning": "clap-audio" if clap else kind, "clap": portable_model_id(args.clap) if clap else None}
    out = common.open_run(args.out, settings, args.resume, args.overwrite, info.is_main)
    common.barrier(info)

    # 1. prepare, at SRC's rate
    mel = base.mel_config
    if args.vocoder != "keep":
        common.check_vocoder_arg(args.vocoder, mel)
    multiple = base.vae.config.downsample * base.unet.config.downsample
    pcfg = PrepareConfig(sample_rate=mel.sample_rate, max_seconds=args.max_seconds or base.defaults.duration,
                         group_by=args.group_by, valid_fraction=args.valid_fraction, latent_multiple_frames=multiple,
                         hop_length=mel.hop_length, caption_required=kind != "labels" and not clap)


    def prepare():
        try:
            rep = prepare_dataset(data, out / "data", pcfg, progress=None)
        except PrepareError as e:
            raise SystemExit(f"error: {e}") from None
        if rep.get("resampled_files"):
            print(f"[prepare] {rep['resampled_files']} file(s) resampled to {src.name}'s {mel.sample_rate} Hz",
                  file=sys.stderr)
        return {k: v for k, v in rep.items() if k != "dropped"} | {"dropped": len(rep["dropped"])}


    prep = done("prepare", prepare, everyone=False)
    clips = read_manifest(out / "data" / "manifest.jsonl")
    train = [c for c in clips if c.labels.get("split") == "train"]
    valid = [c for c in clips if c.labels.get("split") == "valid"]
    if kind != "labels" and not clap and not any(c.caption for c in train):
        raise SystemExit(f"error: {data}: {src.name} is text-conditioned, but no training clip has a caption; give "
                         f"captions (a manifest column, NAME.txt or folder names) or use --conditioning clap-audio")


    def condition_inputs(clips_) -> list:
        """Every input the U-Net stage can ask the conditioner for, to cache once."""
        fields = [f.name for f in base.conditioner.config.fields] if kind != "text" else []
        caps = sorted({t for c in clips_ for t in (c.captions or [c.caption]) if t})
        labs = [{k: v for k, v in c.labels.items() if k in fields} for c in clips_] if fields else []
        if kind == "text":
            return caps
        if kind == "labels":
            return labs
        return ([{"prompt": c.caption or None, "labels": lab or None} for c, lab in zip(clips_, labs)]
                + [{"prompt": t, "labels": None} for t in caps] + [{"prompt": None, "labels": lab} for lab in labs if lab])


    # 2. fine-tune
    def finetune() -> dict:
        run = out / "finetune"
        t0 = time.time()
        embed = None
        for split, cl in (("train", train), ("valid", valid)):
            cache = run / f"latents_{split}.safetensors"
            ds = ClipDataset(cl, mel, prep["clip_seconds"]) if cl else None
            named = SimpleNamespace(name=Path(args.clap).name) if clap else None  # the embedder's name, unloaded
            if ds is not None and info.is_main and not cache_is_current(cache, cache_key(base.vae, ds, named)):
                if clap and embed is None:  # CLAP's audio tower, only to cache each clip's condition with its latents
                    embed = clap_audio_embedder(args.clap, device=info.device)
                build_latent_cache(base.vae, ds, cache, device=info.device, embed=embed)
        common.barrier(info)
        if clap:  # the null condition: CLAP's text embedding of "" (SRC's own text tower, once)
            cond = AudioEmbeddingConditioner(base.conditioner.null_condition(1)["pooled"].cpu())
        else:
            cond = CachedConditioner(base.conditioner, condition_inputs(train), device=info.device)
        cache_s = time.time() - t0
        unet = base.unet.train()
        n_params = sum(q.numel() for q in unet.parameters())
        if args.lora_rank:
            add_lora(unet, args.lora_rank, args.lora_alpha, args.lora_targets)
        trainable = sum(q.numel() for q in unet.parameters() if q.requires_grad)
        latents = LatentDataset(run / "latents_train.safetensors", seed=args.seed)
        valid_lat = LatentDataset(run / "latents_valid.safetensors", random_caption=False) if valid else None
        stage = LDMStage(LatentDiffusion(unet, base.schedule), cond, latents.scale_factor, key, 0.1,
                         valid=valid_lat)
        lr = common.pick(args.lr, preset.lora_lr if args.lora_rank else preset.lr)
        trainer = common.fit_unet(stage, unet, latents, collate_latents, run, common.pick(args.steps, preset.steps),
                                  preset.batch, lr, preset.eval_every, args)
        rec = {}
        if trainer.info.is_main:
            final = trainer.ema.get("unet", unet).float()  # (bf16 weights: saved as float32)
            if args.lora_rank:
                save_lora(out / "lora", final, base_id, overwrite=True)
            else:
                final.save_pretrained(run / "unet", overwrite=True)
            rec = {"steps": trainer.step, "minutes": round((time.time() - t0) / 60, 2), "lr": lr,
                   "mode": f"lora r={args.lora_rank} {args.lora_targets}" if args.lora_rank else "full",
                   "trainable_params": trainable, "unet_params": n_params,
                   "cached_conditions": len(latents) if clap else len(cond),
                   "conditions": f"clap-audio ({latents.condition_name})" if clap else kind,
                   "condition_cache_seconds": round(cache_s, 2)}
        return rec


    ft = done("finetune", finetune)
    # the vocoder: --vocoder train trains the spectral vocoder on the training clips (on every rank, like the U-Net)
    vocoder_rec = {"vocoder": "keep"} if args.vocoder == "keep" else done(
        "vocoder", lambda: common.vocoder_for_model(args.vocoder, mel, train, valid, out / "vocoder", args.seed,
                                                    args.device, not args.no_progress)[1])
    vocoder_spec = str(out / "vocoder" / "vocoder") if vocoder_rec.get("vocoder") == "trained spectral" \
        else "universal" if args.vocoder == "train" else args.vocoder
    if info.enabled:
        torch.distributed.destroy_process_group()
    if not info.is_main:
        sys.exit(0)


    # 3. package: the adapter alone (OUT/lora) and a standalone model with it merged (OUT/model)
    def package() -> dict:
        from audioldm.unet import UNet

        pipe = load_src()  # a fresh copy of SRC's weights
        if args.lora_rank:
            pipe.load_lora(out / "lora")
            pipe.loras.clear()  # merged for good: OUT/model stands alone
        else:
            pipe.unet = UNet.from_pretrained(out / "finetune" / "unet")
            pipe.diffusion = LatentDiffusion(pipe.unet, pipe.schedule)
        if vocoder_spec != "keep":
            pipe.vocoder = common.vocoder_for_model(vocoder_spec, mel)[0].eval()
        pipe.name = args.name or f"{src.name}-{data.name if data.is_dir() else data.parent.name}"
        pipe.info = {**pipe.info, "base_model": base_id, "finetune": ft.get("mode"),
                     "data": {"name": data.name if data.is_dir() else data.parent.name, "clips": prep["clips"],
                              "hours": prep["hours"], "licence": args.licence, "sample_rate": mel.sample_rate}}
        pipe.save_pretrained(out / "model", overwrite=True)
        size = lambda d: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())  # noqa: E731
        return {"model": str(out / "model"), "model_MB": round(size(out / "model") / 2 ** 20, 2),
                **({"lora": str(out / "lora"), "lora_MB": round(size(out / "lora") / 2 ** 20, 3)} if args.lora_rank
                   else {})}


    pk = done("package", package)


    # 4. the same evaluation for SRC and for the fine-tuned model
    def evaluate() -> dict:
        from audioldm.config import save_json_atomic
        from audioldm.evaluation.report import evaluate_model, report_table

        fields = [f.name for f in base.conditioner.config.fields] if kind != "text" else []
        request = common.clip_request(kind, fields)
        heldout = valid if kind == "labels" else [c for c in valid if c.caption]
        seen = {request(c)[0] for c in train}
        if clap:  # training read no text, so every prompt is unseen; uncaptioned clips are prompted by their category
            seen = set()
            if not heldout and args.category:
                heldout = [dataclasses.replace(c, caption=str(c.labels[args.category])) for c in valid
                           if args.category in c.labels]
            if not heldout:
                print("[evaluate] skipped: no held-out clip has a caption to prompt with; give held-out captions or "
                      "--category COLUMN (its values become the prompts)", file=sys.stderr)
                return {"skipped": "no held-out captions or --category"}
        if not heldout:
            raise SystemExit("error: no held-out clip to evaluate on; add data or raise --valid-fraction")
        category = (lambda c: str(c.labels.get(args.category))) if args.category else (lambda c: c.caption or "")
        reps, lines = {}, []
        for name, folder in (("source", src), ("fine-tuned", out / "model")):
            reps[name] = evaluate_model(AudioLDM.from_pretrained(folder), train, heldout, category, request,
                                        seen, prep["clip_seconds"],
                                        judge_steps=common.pick(args.judge_steps, preset.judge_steps),
                                        per_condition=preset.per_condition, max_conditions=preset.max_conditions,
                                        max_heldout=preset.max_heldout, seed=args.seed)
            lines += [f"## {name}: {folder.name}", "", report_table(reps[name]), ""]
        save_json_atomic(out / "report.json", reps)
        (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
        print("\n".join(lines), file=sys.stderr)
        gen = "generated (all held-out conditions)"
        return {n: {"accuracy": r["rows"][gen]["accuracy"], "frechet": r["rows"][gen]["frechet_to_heldout_real"],
                    "spread_ratio": r["rows"][gen]["spread_ratio_to_real"]} for n, r in reps.items()}


    ev = done("evaluate", evaluate)
    print(json.dumps({"finetune": ft, "package": pk, "evaluate": ev}, indent=2))


if __name__ == "__main__":
    main()
