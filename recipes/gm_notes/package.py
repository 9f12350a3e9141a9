"""python recipes/gm_notes/package.py --vae runs/vae_demo/vae --ldm runs/ldm_demo --vocoder runs/vocos_demo/vocoder --out audioldm/pretrained/gm-notes --fp16

Assemble trained parts into one model folder (model_index.json + vae/ unet/ conditioner/ vocoder/) for
``AudioLDM.from_pretrained`` and the CLI. For a label model the conditioner is set to read text prompts too: note
names for pitch (C4 = 60), velocity words (soft / medium / loud), instrument names. ``--fp16`` stores the weights as
float16 (they load as float32). Prints the folder size.

--base MODEL takes every part not given (VAE, U-Net + conditioner + schedule, vocoder) from an existing model folder,
e.g. to swap the shipped model's vocoder:
  python recipes/gm_notes/package.py --base audioldm/pretrained/gm-notes --vocoder runs/vocos_fluid/vocoder \
      --out audioldm/pretrained/gm-notes --fp16 --overwrite
"""

import argparse
import json
from pathlib import Path

import torch

from audioldm.conditioner_io import load_conditioner
from audioldm.conditioning import LabelConditioner
from audioldm.config import load_config
from audioldm.diffusion import NoiseSchedule, ScheduleConfig
from audioldm.pipeline import AudioLDM, GenerationDefaults
from audioldm.unet import UNet
from audioldm.vae import MelVAE
from audioldm.shipped import UNIVERSAL_VOCODER
from audioldm.vocoders import GriffinLimVocoder, load_vocoder, universal_vocoder

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--base", default=None, help="model folder to take the parts not given from")
p.add_argument("--vae", default=None)
p.add_argument("--ldm", default=None, help="run dir of train_ldm.py (unet/, conditioner/, schedule.json)")
p.add_argument("--vocoder", default=None, help="trained vocoder folder, 'griffinlim', or 'universal' (the shipped "
               "audioldm/pretrained/vocoder-16k, named in model_index.json instead of copied)")
p.add_argument("--out", required=True)
p.add_argument("--name", default=None, help="the model's name (default: --base's, else gm-notes-demo)")
p.add_argument("--duration", type=float, default=None,
               help="default generation length (seconds; default: the clip length --ldm was trained on, else "
                    "--base's, else 1.28)")
p.add_argument("--steps", type=int, default=None)
p.add_argument("--guidance", type=float, default=None)
p.add_argument("--sampler", default=None)
p.add_argument("--fp16", action="store_true")
p.add_argument("--overwrite", action="store_true")
args = p.parse_args()
base = None
if args.base:
    base = AudioLDM.from_pretrained(args.base)
missing = [f"--{k}" for k in ("vae", "ldm", "vocoder") if getattr(args, k) is None]
if missing and base is None:
    p.error(f"{', '.join(missing)} required without --base")
if args.ldm is None:
    cond, unet, schedule = base.conditioner, base.unet, base.schedule
else:
    run = Path(args.ldm)
    cond = load_conditioner(run / "conditioner")
    unet, schedule = UNet.from_pretrained(run / "unet"), NoiseSchedule(load_config(ScheduleConfig, run / "schedule.json"))
if isinstance(cond, LabelConditioner) and args.ldm is not None:  # let the label model read prompts too
    for f in cond.config.fields:
        if f.name == "pitch":
            f.note_names = True
        elif f.name == "velocity":
            f.aliases = {w: v for w, v in [("soft", 40), ("quiet", 40), ("gentle", 40), ("medium", 80),
                                           ("moderate", 80), ("loud", 120), ("strong", 120), ("forte", 120)]
                         if f.low <= v <= f.high}
    cond.config.parse_prompts = True
if args.vocoder is None:
    vocoder = base.vocoder
else:
    vocoder = GriffinLimVocoder() if args.vocoder == "griffinlim" else universal_vocoder() \
        if args.vocoder == "universal" else load_vocoder(args.vocoder)
vae = base.vae if args.vae is None else MelVAE.from_pretrained(args.vae)
d = base.defaults if base is not None else GenerationDefaults(1.28, 25, 3.0, "dpmpp_2m")
if args.duration is None and args.ldm is not None and (Path(args.ldm) / "training.json").is_file():
    # generate by default what the U-Net was trained on
    args.duration = float(json.loads((Path(args.ldm) / "training.json").read_text(encoding="utf-8"))["clip_seconds"])
defaults = GenerationDefaults(*(getattr(d, k) if getattr(args, k) is None else getattr(args, k)
                                for k in ("duration", "steps", "guidance", "sampler")))
# a distilled --base keeps its range and sigmas while its U-Net is kept (recipes/distill)
distilled = base.distilled if base is not None and args.ldm is None else None
name = args.name or (base.name if base is not None else "gm-notes-demo")
pipe = AudioLDM(vae, unet, schedule, cond, vocoder, defaults, name=name, info=getattr(base, "info", None),
                distilled=distilled)
out = pipe.save_pretrained(args.out, overwrite=args.overwrite, dtype=torch.float16 if args.fp16 else None,
                           vocoder_ref=f"shipped:{UNIVERSAL_VOCODER}" if args.vocoder == "universal" else None)
size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
print(json.dumps({"model": str(out), "size_MB": round(size / 2 ** 20, 2), "conditioning": cond.describe()
                  if isinstance(cond, LabelConditioner) else "text"}, indent=2))
