"""python bench/gpu_fast.py [--repeats 20] [--train-batch 32]   (CUDA only; part of bench/gpu.sh)

The GPU fast paths of issue 21 at AudioLDM-S size (random weights, 10.24 s of audio -> latents [8, 256, 16]), each
against diffusers' UNet2DConditionModel holding the same weights, in the same run, bf16:
- one classifier-free-guidance denoise step (batch 2): ours eager, ours torch.compile'd, ours replayed as a CUDA graph;
  diffusers eager, diffusers replayed as a CUDA graph;
- 10.24 s of audio end to end (generate(), 25 DPM++(2M) steps, CFG) with the sampling loop as one CUDA graph
  (AudioLDM.accelerate), HiFi-GAN audioldm-s vocoder;
- U-Net training throughput (forward + backward + AdamW, batch ``--train-batch``), ours compiled vs diffusers compiled.
Prints JSON. Nothing here has been run yet by the session that wrote it (no GPU was lent); see bench/README.md.
"""

import argparse
import json
import time

import torch

from audioldm.pipeline.accel import GraphedLoop, compile_unet
from audioldm.conditioning import LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.convert.diffusers import diffusers_unet
from audioldm.diffusion import NoiseSchedule, ScheduleConfig
from audioldm.pipeline import AudioLDM, GenerationDefaults
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vae import VAE_PRESETS, MelVAE
from audioldm.vocoders import build_vocoder

p = argparse.ArgumentParser()
p.add_argument("--repeats", type=int, default=20)
p.add_argument("--train-batch", type=int, default=32)
p.add_argument("--frames", type=int, default=256)
args = p.parse_args()
if not torch.cuda.is_available():
    raise SystemExit("bench/gpu_fast.py needs CUDA")
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def timed(fn, repeats=args.repeats):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


torch.manual_seed(0)
unet = UNet(UNET_PRESETS["audioldm-s"]()).to(dev).eval()
with torch.no_grad():
    for q in unet.parameters():
        if q.dim() > 1 and not q.any():
            q.normal_(0, 0.02)
ref = diffusers_unet(unet.config).to(dev).eval()
ref.load_state_dict(unet.state_dict(), strict=True)
x = torch.randn(2, 8, args.frames, 16, device=dev)
t = torch.full((2,), 500.0, device=dev)
pooled = torch.randn(2, unet.config.cond_dim, device=dev)
rows = {}
ac = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731


@torch.no_grad()
def ours_step(x_, c_):
    with ac():
        return unet(x_, t, {"pooled": c_["pooled"]})


@torch.no_grad()
def ref_step(x_, c_):
    with ac():
        return ref(x_, t, class_labels=c_["pooled"]).sample


c = {"pooled": pooled}
rows["step_ours_eager_ms"] = 1000 * timed(lambda: ours_step(x, c))
rows["step_diffusers_eager_ms"] = 1000 * timed(lambda: ref_step(x, c))
g_ours, g_ref = GraphedLoop(ours_step, capture=True), GraphedLoop(ref_step, capture=True)
rows["step_ours_cuda_graph_ms"] = 1000 * timed(lambda: g_ours(x, c))
rows["step_diffusers_cuda_graph_ms"] = 1000 * timed(lambda: g_ref(x, c))
t0 = time.perf_counter()
compile_unet(unet)
ours_step(x, c)
torch.cuda.synchronize()
rows["compile_s"] = round(time.perf_counter() - t0, 1)
rows["step_ours_compiled_ms"] = 1000 * timed(lambda: ours_step(x, c))
g_comp = GraphedLoop(ours_step, capture=True)
rows["step_ours_compiled_cuda_graph_ms"] = 1000 * timed(lambda: g_comp(x, c))
best = min(rows["step_ours_cuda_graph_ms"], rows["step_ours_compiled_cuda_graph_ms"])
rows["step_best_ours_over_diffusers_graph"] = round(best / rows["step_diffusers_cuda_graph_ms"], 3)

# 10.24 s end to end, 25 steps, the sampling loop as one CUDA graph
fields = [LabelField("instrument", values=["flute", "piano"]), LabelField("pitch", "numeric", low=21, high=108)]
cond = LabelConditioner(LabelConditionerConfig(fields=fields, dim=512, pooled_dim=512))
pipe = AudioLDM(MelVAE(VAE_PRESETS["audioldm-s"]()), UNet(UNET_PRESETS["audioldm-s"]()),
                NoiseSchedule(ScheduleConfig()), cond, build_vocoder("hifigan", "audioldm-s"),
                GenerationDefaults(duration=10.24, steps=25), name="random-audioldm-s")
pipe.to("cuda", torch.bfloat16)
gen = lambda: pipe.generate(labels={"instrument": "piano", "pitch": 60}, seed=0, progress=False)  # noqa: E731
rows["generate_10s_eager_s"] = timed(gen, 5)
pipe.accelerate(graphs=True)
rows["generate_10s_cuda_graph_s"] = timed(gen, 5)


# training throughput, batch 32, both compiled
def train_rate(model, call):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    xb = torch.randn(args.train_batch, 8, args.frames, 16, device=dev)
    tb = torch.randint(0, 1000, (args.train_batch,), device=dev)
    cb = torch.randn(args.train_batch, unet.config.cond_dim, device=dev)

    def step():
        with ac():
            loss = (call(model, xb, tb, cb).float() - xb).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return args.train_batch / timed(step, 10)


train_unet = UNet(UNET_PRESETS["audioldm-s"]()).to(dev).train()
train_ref = diffusers_unet(train_unet.config).to(dev).train()
train_ref.load_state_dict(train_unet.state_dict(), strict=True)
compile_unet(train_unet)
train_ref = torch.compile(train_ref)
rows["train_ours_compiled_samples_per_s"] = train_rate(train_unet, lambda m, a, b, c_: m(a, b, {"pooled": c_}))
rows["train_diffusers_compiled_samples_per_s"] = train_rate(train_ref, lambda m, a, b, c_: m(a, b,
                                                                                             class_labels=c_).sample)
rows["train_ours_over_diffusers"] = round(rows["train_ours_compiled_samples_per_s"] /
                                          rows["train_diffusers_compiled_samples_per_s"], 3)
print(json.dumps({"bench": "gpu_fast", "device": torch.cuda.get_device_name(),
                  **{k: round(v, 4) if isinstance(v, float) else v for k, v in rows.items()}}, indent=2))
