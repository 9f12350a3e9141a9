"""Training stage for the conditional U-Net on cached latents: z = scale * (mean + std * noise), the condition dropped
to the null condition with probability ``drop_prob`` (classifier-free guidance), and the LatentDiffusion loss. All
randomness is per-sample seeded, so distributed and resumed runs reproduce single, uninterrupted ones."""

from __future__ import annotations

import random

import torch

from ..conditioning import drop_conditions
from ..diffusion import LatentDiffusion
from ..seeding import mix_seed
from .trainer import Stage, StepContext, TrainConfig

__all__ = ["LDMStage"]


class LDMStage(Stage):
    name = "ldm"

    def __init__(self, diffusion: LatentDiffusion, conditioner, scale_factor: float, cond_key: str = "labels",
                 drop_prob: float = 0.1, weight_decay: float = 0.0):
        if cond_key not in ("labels", "caption"):
            raise ValueError(f"cond_key must be 'labels' or 'caption', got {cond_key!r}")
        self.diffusion, self.conditioner = diffusion, conditioner
        self.scale, self.cond_key, self.drop_prob, self.wd = scale_factor, cond_key, drop_prob, weight_decay
        self.trainable_cond = any(p.requires_grad for p in conditioner.parameters())

    def modules(self):
        mods = {"unet": self.diffusion.net}
        if self.trainable_cond:
            mods["conditioner"] = self.conditioner
        return mods

    def ema_modules(self):
        return list(self.modules())

    def optimizers(self, cfg: TrainConfig):
        params = list(self.diffusion.net.parameters())
        if self.trainable_cond:
            params += [p for p in self.conditioner.parameters() if p.requires_grad]
        return {"unet": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=self.wd)}

    def train_step(self, batch: dict, ctx: StepContext):
        self.conditioner.to(ctx.device)
        mean, std = batch["mean"], batch["std"]
        shape = mean.shape[1:]
        z = self.scale * (mean + std * ctx.randn(batch, shape, salt=1))
        inputs = batch[self.cond_key]
        if self.cond_key == "labels" and hasattr(self.conditioner.config, "fields"):
            # manifests carry more columns than the model is conditioned on (family, program, ...): keep its fields
            known = {f.name for f in self.conditioner.config.fields}
            inputs = [{k: v for k, v in d.items() if k in known} for d in inputs]
        cond = self.conditioner(inputs)
        drop = torch.tensor([random.Random(mix_seed(ctx.seed, ctx.epoch, int(i), 2)).random() < self.drop_prob
                             for i in batch["index"]], device=ctx.device)
        cond = drop_conditions(cond, self.conditioner.null_condition(len(drop)), drop)
        T = self.diffusion.schedule.num_train_timesteps
        t = torch.tensor([mix_seed(ctx.seed, ctx.epoch, int(i), 3) % T for i in batch["index"]], device=ctx.device)
        loss = self.diffusion.loss(z, cond, noise=ctx.randn(batch, shape, salt=4), t=t)
        yield "unet", loss, {}
