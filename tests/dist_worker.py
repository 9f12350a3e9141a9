"""Trains a tiny stage for tests/test_distributed.py, in one process or under torchrun:

    python tests/dist_worker.py --stage ldm|vocoder --out DIR [--parallel ddp|fsdp] [--steps N] [--accum A]
        [--ckpt-every K] [--resume]

ldm: a tiny U-Net and a trainable label conditioner on random latents; vocoder: a tiny HiFi-GAN with its period and
resolution discriminators (a GAN stage: two optimizers, backward(inputs=...)) on random clips. Losses go to
DIR/metrics.jsonl; checkpoints to DIR/checkpoints."""

import argparse

import torch
from torch.utils.data import Dataset

from audioldm.conditioning import LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.data.latents import collate_latents
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.mel import MelFrontend
from audioldm.training import TrainConfig, Trainer
from audioldm.training.ldm_stage import LDMStage
from audioldm.training.vocoder_stage import VocoderLossConfig, VocoderStage
from audioldm.unet import UNET_PRESETS, UNet
from audioldm.vocoders import HIFIGAN_PRESETS, HiFiGAN

p = argparse.ArgumentParser()
p.add_argument("--stage", choices=["ldm", "vocoder"], required=True)
p.add_argument("--out", required=True)
p.add_argument("--parallel", default="ddp")
p.add_argument("--steps", type=int, default=4)
p.add_argument("--accum", type=int, default=1)
p.add_argument("--ckpt-every", type=int, default=0, help="default: only at the end")
p.add_argument("--resume", action="store_true")
args = p.parse_args()


class Latents(Dataset):
    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.mean, self.std = torch.randn(n, 4, 8, 8, generator=g), 0.1 * torch.rand(n, 4, 8, 8, generator=g)
        self.labels = [{"kind": "ab"[i % 2]} for i in range(n)]

    def __len__(self):
        return len(self.mean)

    def __getitem__(self, i):
        return {"mean": self.mean[i], "std": self.std[i], "caption": "", "labels": self.labels[i]}


class Clips(Dataset):
    def __init__(self, n=8, samples=2560):
        g = torch.Generator().manual_seed(0)
        t = torch.arange(samples) / 16000
        self.wav = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t) for i in range(n)])
        self.wav += 0.01 * torch.randn(self.wav.shape, generator=g)
        self.mel = MelFrontend()(self.wav)

    def __len__(self):
        return len(self.wav)

    def __getitem__(self, i):
        return {"wav": self.wav[i], "mel": self.mel[i]}


def collate_clips(items):
    return {k: torch.stack([it[k] for it in items]) for k in ("wav", "mel")}


torch.manual_seed(0)  # the same initial weights in every process layout
if args.stage == "ldm":
    cond = LabelConditioner(LabelConditionerConfig(fields=[LabelField("kind", values=["a", "b"])], dim=32,
                                                   pooled_dim=32))
    unet = UNet(UNET_PRESETS["tiny"](in_channels=4, out_channels=4, cond_dim=32))
    stage = LDMStage(LatentDiffusion(unet, NoiseSchedule(ScheduleConfig())), cond, 1.0, "labels", 0.2)
    data, collate, batch = Latents(), collate_latents, 8
else:
    stage = VocoderStage(HiFiGAN(HIFIGAN_PRESETS["tiny"]()),
                         VocoderLossConfig(disc_start=0, disc_channels=4, disc_max_channels=16))
    data, collate, batch = Clips(), collate_clips, 4
cfg = TrainConfig(run_dir=args.out, max_steps=args.steps, batch_size=batch, grad_accum=args.accum, lr=2e-3,
                  ema_decay=0.99, ckpt_every=args.ckpt_every or args.steps, log_every=1, eval_every=0, progress=False,
                  tensorboard=False, device="cpu", parallel=args.parallel, resume=args.resume)
trainer = Trainer(cfg, stage, data, collate)
trainer.fit()
if trainer.info.enabled:
    torch.distributed.barrier()  # every rank done with its last collective before the group goes away
    torch.distributed.destroy_process_group()
