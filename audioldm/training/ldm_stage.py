"""Training stage for the conditional U-Net on cached latents: z = scale * (mean + std * noise), the condition dropped
to the null condition with probability ``drop_prob`` (classifier-free guidance; a joint text + labels condition also
loses its caption alone or its labels alone with probability ``part_drop`` each), and the LatentDiffusion loss. All
randomness is per-sample seeded, so distributed and resumed runs reproduce single, uninterrupted ones.

Evaluation (optional): the loss of the EMA weights on held-out latents at fixed noise and timesteps
(:func:`validation_loss`, comparable across steps), an ``on_valid(step, loss, unet, conditioner)`` hook (the recipes
keep the best checkpoint with it) and a ``preview(step, unet, conditioner)`` hook returning generated audio and
spectrograms for TensorBoard."""

from __future__ import annotations

import random

import torch

from ..conditioning import drop_conditions
from ..diffusion import LatentDiffusion
from ..seeding import mix_seed, randn_per_sample
from .trainer import Stage, StepContext, TrainConfig

__all__ = ["LDMStage", "validation_loss", "drop_parts", "COND_KEYS"]

# what the conditioner reads from a batch: captions, label dicts, both, or the per-clip embeddings of the latent cache
# ("condition" [B, D], e.g. CLAP audio embeddings: conditioning_clap.py)
COND_KEYS = ("labels", "caption", "both", "condition")


class LDMStage(Stage):
    name = "ldm"

    def __init__(self, diffusion: LatentDiffusion, conditioner, scale_factor: float, cond_key: str = "labels",
                 drop_prob: float = 0.1, weight_decay: float = 0.0, valid=None, on_valid=None, preview=None,
                 part_drop: float = 0.2):
        if cond_key not in COND_KEYS:
            raise ValueError(f"cond_key must be one of {', '.join(COND_KEYS)}, got {cond_key!r}")
        self.part_drop = part_drop  # "both": each part (caption, labels) is also dropped alone with this chance
        self.diffusion, self.conditioner = diffusion, conditioner
        self.scale, self.cond_key, self.drop_prob, self.wd = scale_factor, cond_key, drop_prob, weight_decay
        self.trainable_cond = any(p.requires_grad for p in conditioner.parameters())
        self.valid, self.on_valid, self.preview = valid, on_valid, preview

    def modules(self):
        mods = {"unet": self.diffusion.net}
        if self.trainable_cond:
            mods["conditioner"] = self.conditioner
        return mods

    def ema_modules(self):
        return list(self.modules())

    def optimizers(self, cfg: TrainConfig):
        params = [p for p in self.diffusion.net.parameters() if p.requires_grad]  # LoRA: the adapters only
        if self.trainable_cond:
            params += [p for p in self.conditioner.parameters() if p.requires_grad]
        return {"unet": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=self.wd)}

    def train_step(self, batch: dict, ctx: StepContext):
        self.conditioner.to(ctx.device)
        net = ctx.modules.get("unet", self.diffusion.net)  # DDP-wrapped under torchrun: gradients synced in backward
        encode = ctx.modules.get("conditioner", self.conditioner)
        mean, std = batch["mean"], batch["std"]
        shape = mean.shape[1:]
        z = self.scale * (mean + std * ctx.randn(batch, shape, salt=1))
        inputs = self.inputs(batch, self.conditioner)
        if self.cond_key == "both":
            inputs = drop_parts(inputs, batch["index"], ctx.seed, ctx.epoch, self.part_drop)
        cond = encode(inputs)
        drop = torch.tensor([random.Random(mix_seed(ctx.seed, ctx.epoch, int(i), 2)).random() < self.drop_prob
                             for i in batch["index"]], device=ctx.device)
        cond = drop_conditions(cond, self.conditioner.null_condition(len(drop)), drop)
        T = self.diffusion.schedule.num_train_timesteps
        t = torch.tensor([mix_seed(ctx.seed, ctx.epoch, int(i), 3) % T for i in batch["index"]], device=ctx.device)
        loss = LatentDiffusion(net, self.diffusion.schedule).loss(z, cond, noise=ctx.randn(batch, shape, salt=4), t=t)
        yield "unet", loss, {}

    def inputs(self, batch: dict, conditioner) -> list:
        """The conditioner's inputs for a batch: captions, label dicts, {"prompt", "labels"} pairs ("both"), or the
        cached per-clip embeddings [B, D] ("condition")."""
        if self.cond_key in ("caption", "condition"):
            if self.cond_key == "condition" and "condition" not in batch:
                raise ValueError("cond_key 'condition' needs a latent cache built with per-clip embeddings "
                                 "(build_latent_cache(..., embed=...))")
            return batch[self.cond_key]
        labels = batch["labels"]
        if hasattr(conditioner.config, "fields"):
            # manifests carry more columns than the model is conditioned on (family, program, ...): keep its fields
            known = {f.name for f in conditioner.config.fields}
            labels = [{k: v for k, v in d.items() if k in known} for d in labels]
        if self.cond_key == "labels":
            return labels
        return [{"prompt": c or None, "labels": d or None} for c, d in zip(batch["caption"], labels)]

    def evaluate(self, ctx: StepContext) -> dict:
        unet = ctx.ema.get("unet", self.diffusion.net)
        cond = ctx.ema.get("conditioner", self.conditioner)
        out = {"scalars": {}, "audio": {}, "images": {}}
        if self.valid is not None and len(self.valid):
            loss = validation_loss(LatentDiffusion(unet, self.diffusion.schedule), cond, self.valid, self.scale,
                                   lambda b: self.inputs(b, cond), ctx.device, ctx.seed)
            out["scalars"]["loss"] = loss
            if self.on_valid is not None:
                self.on_valid(ctx.step, loss, unet, cond)
        if self.preview is not None:
            res = self.preview(ctx.step, unet, cond) or {}
            out["audio"].update(res.get("audio", {}))
            out["images"].update(res.get("images", {}))
            out["sample_rate"] = res.get("sample_rate", 16000)
        return out


def drop_parts(items: list[dict], indices, seed: int, epoch: int, p: float) -> list[dict]:
    """Joint requests {"prompt", "labels"} with the prompt alone, or the labels alone, set to None with chance ``p``
    each (seeded per sample index), so a joint model learns to answer either part on its own. A request keeps at
    least one part: dropping both is the classifier-free guidance drop's job."""
    out = []
    for i, it in zip(indices, items):
        r = random.Random(mix_seed(seed, epoch, int(i), 7))
        no_text, no_labels = r.random() < p, r.random() < p
        it = dict(it)
        if it["prompt"] is not None and it["labels"] is not None:
            if no_text:
                it["prompt"] = None
            elif no_labels:
                it["labels"] = None
        out.append(it)
    return out


@torch.no_grad()
def validation_loss(diffusion: LatentDiffusion, conditioner, dataset, scale: float, inputs, device, seed: int = 0,
                    timesteps: int = 4, batch_size: int = 32) -> float:
    """Mean diffusion loss over every item of a latent dataset at ``timesteps`` fixed, evenly spaced t per item and
    noise seeded by (seed, index, t): the same number for the same weights, whatever the step."""
    from ..data.latents import collate_latents

    T = diffusion.schedule.num_train_timesteps
    ts = [int((j + 0.5) / timesteps * T) for j in range(timesteps)]
    total, n = 0.0, 0
    for s in range(0, len(dataset), batch_size):
        idx = list(range(s, min(len(dataset), s + batch_size)))
        batch = collate_latents([dataset[i] for i in idx])
        mean, std = batch["mean"].to(device), batch["std"].to(device)
        shape = mean.shape[1:]
        cond = conditioner(inputs(batch))
        for t in ts:
            z = scale * (mean + std * randn_per_sample([mix_seed(seed, i, t, 5) for i in idx], shape, device=device))
            noise = randn_per_sample([mix_seed(seed, i, t, 6) for i in idx], shape, device=device)
            loss = diffusion.loss(z, cond, noise=noise, t=torch.full((len(idx),), t, device=device))
            total += float(loss) * len(idx)
            n += len(idx)
    return total / max(n, 1)
