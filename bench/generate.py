"""python bench/generate.py [--model DIR | --preset demo] [--duration 5] [--steps 25] [--batch 1] [--repeats 2]

``--model`` may be a diffusers-format AudioLDM folder (e.g. a local copy of cvssp/audioldm-s-full-v2): then the whole
diffusers AudioLDMPipeline (DDIM) is timed against ours (DDIM) on the same weights too.

Real-time factor of generation, split into conditioner / denoising (the whole sampler loop, CFG batched) / VAE decode /
vocoder, on CPU and on CUDA when present (bf16 autocast there). ``--model`` times a model folder; ``--preset`` builds
random components of that size (demo: demo VAE + demo U-Net + Vocos demo; audioldm-s: AudioLDM-S-sized VAE and U-Net +
HiFi-GAN audioldm-s). Reference in the same run: the denoising loop with diffusers' UNet2DConditionModel holding our
weights (the network diffusers' AudioLDM pipeline runs), when diffusers is installed. Prints JSON.
"""

import argparse
import json
import time

import torch

from audioldm.convert.diffusers import is_diffusers_folder
from audioldm.conditioning import LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.pipeline import AudioLDM, GenerationDefaults
from audioldm.sampling import guided, initial_noise, noise_sampler, sample
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vae import VAE_PRESETS, MelVAE
from audioldm.vocoders import build_vocoder

p = argparse.ArgumentParser()
p.add_argument("--model", default=None, help="model folder (default: random components of --preset)")
p.add_argument("--preset", default="demo", choices=["demo", "audioldm-s"])
p.add_argument("--duration", type=float, default=5.0)
p.add_argument("--steps", type=int, default=25)
p.add_argument("--sampler", default="dpmpp_2m")
p.add_argument("--batch", type=int, default=1)
p.add_argument("--repeats", type=int, default=2)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
args = p.parse_args()
torch.set_num_threads(args.threads)


def random_pipeline(preset: str) -> AudioLDM:
    torch.manual_seed(0)
    fields = [LabelField("instrument", values=["flute", "piano"]), LabelField("pitch", "numeric", low=21, high=108)]
    pooled = 128 if preset == "demo" else 512
    cond = LabelConditioner(LabelConditionerConfig(fields=fields, dim=pooled, pooled_dim=pooled))
    vae = MelVAE(VAE_PRESETS[preset]())
    unet = UNet(UNET_PRESETS[preset](in_channels=vae.config.z_channels, out_channels=vae.config.z_channels,
                                     cond_dim=pooled))
    with torch.no_grad():  # zero-initialised layers (output convs) would make the reference comparison trivial
        for q in unet.parameters():
            if q.dim() > 1 and not q.any():
                q.normal_(0, 0.02)
    vocoder = build_vocoder(*(("vocos", "demo") if preset == "demo" else ("hifigan", "audioldm-s")))
    return AudioLDM(vae, unet, NoiseSchedule(ScheduleConfig()), cond, vocoder, GenerationDefaults(),
                    name=f"random-{preset}")


class DiffusersNet(torch.nn.Module):
    """diffusers' UNet2DConditionModel behind our network contract net(x, t, cond)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, cond):
        return self.model(x, t, encoder_hidden_states=cond.get("tokens"), class_labels=cond["pooled"],
                          encoder_attention_mask=cond.get("mask")).sample


def timed(fn, dev, repeats):
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    out = fn()  # warm-up
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync()
    return (time.perf_counter() - t) / repeats, out


pipe = AudioLDM.from_pretrained(args.model) if args.model else random_pipeline(args.preset)
if pipe.uses_labels:
    f0 = pipe.conditioner.config.fields[0]
    request = {"labels": [{f0.name: f0.values[0] if f0.kind == "categorical" else f0.low}] * args.batch}
    prompts, labels = [None] * args.batch, request["labels"]
else:
    prompts, labels = ["a piano note"] * args.batch, [None] * args.batch
devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
results = []
for dev in devices:
    pipe.to(dev, torch.bfloat16 if dev == "cuda" else torch.float32)
    samples = int(args.duration * pipe.sample_rate)
    frames = -(-samples // pipe.mel_config.hop_length)
    shape = pipe.latent_shape(frames)
    seeds = list(range(args.batch))
    sig = pipe.sampling_sigmas(args.steps)
    row = {"device": dev, "model": pipe.name, "duration_s": args.duration, "batch": args.batch, "steps": args.steps,
           "sampler": args.sampler, "dtype": str(pipe.dtype).replace("torch.", ""), "latents": list(shape),
           "unet_params_M": round(sum(q.numel() for q in pipe.unet.parameters()) / 1e6, 1)}
    t_cond, (c, u) = timed(lambda: pipe.conditions(prompts, labels), dev, args.repeats)
    x = initial_noise(seeds, shape, float(sig[0]), pipe.device)
    t_den, z = timed(lambda: pipe.denoise_latents(x, sig, c, u, 3.0, args.sampler, seeds), dev, args.repeats)

    def vae_decode():
        with torch.no_grad(), pipe.autocast():
            return pipe.vae.decode_latents(z, frames).float()
    t_vae, mel = timed(vae_decode, dev, args.repeats)
    with torch.no_grad():
        t_voc, _ = timed(lambda: pipe.vocoder(mel), dev, args.repeats)
    total = t_cond + t_den + t_vae + t_voc
    # the public call, end to end (conditioning, noise, sampler, decode, vocoder, crop), at the model's defaults
    # apart from duration and steps
    request = {"prompt": prompts[0]} if prompts[0] else {"labels": labels[0]}
    t_e2e, _ = timed(lambda: pipe.generate(**request, duration=args.duration, steps=args.steps,
                                           sampler=args.sampler, seed=0, progress=False), dev, args.repeats)
    row["generate_call_s"] = round(t_e2e, 3)
    row.update(conditioner_s=round(t_cond, 4), denoise_s=round(t_den, 3), vae_decode_s=round(t_vae, 3),
               vocoder_s=round(t_voc, 3), total_s=round(total, 3),
               real_time_factor=round(total / (args.duration * args.batch), 4),
               x_real_time=round(args.duration * args.batch / total, 2))
    try:
        from audioldm.convert.diffusers import diffusers_unet
        ref = diffusers_unet(pipe.unet.config).to(dev).eval()
        ref.load_state_dict(pipe.unet.state_dict(), strict=True)
        ref_diff = LatentDiffusion(DiffusersNet(ref), pipe.schedule)

        def ref_loop():
            with torch.no_grad(), pipe.autocast():
                z_ = sample(args.sampler, guided(ref_diff.denoise, c, u, 3.0), x, sig,
                            noise=noise_sampler(seeds, shape, pipe.device)).float()
                return z_ / (1 + float(sig[-1]) ** 2) ** 0.5  # as pipe.denoise_latents ends
        t_ref, z_ref = timed(ref_loop, dev, args.repeats)
        ref_total = t_cond + t_ref + t_vae + t_voc
        row.update(reference="diffusers UNet2DConditionModel (same weights) in the same sampler loop",
                   reference_denoise_s=round(t_ref, 3), denoise_speedup=round(t_ref / t_den, 2),
                   reference_total_s=round(ref_total, 3), total_speedup=round(ref_total / total, 2),
                   max_abs_latent_diff=float((z_ref - z).abs().max()))
    except ImportError:
        row.update(reference=None, note="pip install diffusers for the reference")
    if args.model and is_diffusers_folder(args.model):  # the whole diffusers AudioLDMPipeline on the same weights
        from diffusers import AudioLDMPipeline, DDIMScheduler
        ref_pipe = AudioLDMPipeline.from_pretrained(args.model).to(dev)
        ref_pipe.scheduler = DDIMScheduler.from_config(ref_pipe.scheduler.config)
        ref_pipe.set_progress_bar_config(disable=True)
        kw = dict(num_inference_steps=args.steps, guidance_scale=3.0, audio_length_in_s=args.duration)
        t_full_ref, _ = timed(lambda: ref_pipe(prompts, **kw), dev, args.repeats)
        t_full, _ = timed(lambda: pipe.generate(prompts, duration=args.duration, steps=args.steps, guidance=3.0,
                                                sampler="ddim", seed=0, progress=False), dev, args.repeats)
        row.update(full_pipeline_s=round(t_full, 3), diffusers_audioldm_pipeline_s=round(t_full_ref, 3),
                   full_pipeline_speedup=round(t_full_ref / t_full, 2))
    results.append(row)
    print(json.dumps(row), flush=True)
print(json.dumps({"bench": "generate", "threads": args.threads, "results": results}, indent=2))
