"""Guidance and step distillation of a teacher model into a two-evaluation student (recipes/distill/run.py).

The student is the teacher's U-Net with a guidance-scale input (``UNetConfig.guidance_embed``; Meng et al. 2023), so
classifier-free guidance costs one evaluation per step instead of two. It is trained to land where the teacher's
probability-flow ODE lands: for a starting noise y_T, a condition c and a guidance scale w, the target is the teacher's
own sample x_0 = ODE(y_T; c, w) (DPM-Solver++(2M), 25 steps, with CFG). That is the consistency function of Song et al.
2023 evaluated exactly: consistency distillation estimates the same target by bootstrapping (one ODE step plus the
EMA student); here the whole ODE is solved once per pair, offline (:func:`teacher_pairs`), because a few thousand
pairs cost less than the thousands of bootstrapped steps CD needs.

The student's sampler is plain DDIM (eta 0) on its own sigmas [sigma_max, sigma_mid, 0]: one evaluation at sigma_max
gives x0_1; y_mid = x0_1 + (y_T - x0_1) sigma_mid / sigma_max (the deterministic DDIM step); a second evaluation at
sigma_mid gives the sample. Training uses exactly that path (:class:`DistillStage`): both evaluations are regressed on
the teacher's x_0, the second from the y_mid the student's own first estimate makes (detached), so it learns to
correct the errors the first one actually makes. One step (sigmas [sigma_max, 0]) is the first evaluation alone.

Latent MSE alone rewards the mean of what the student cannot tell apart, which blurs timbre. ``mel_weight`` > 0 adds
an L1 distance between the log-mel spectrograms the frozen VAE decoder makes of the student's and the teacher's
latents (gradients flow through the decoder into the student; the decoder itself is not trained). ``adv_weight`` > 0
adds an adversarial term instead of (or beside) it: a conditional patch critic on latents (:class:`LatentCritic`)
learns to tell the teacher's samples from the student's, and the student is trained to fool it (least-squares GAN),
which rewards sharp, teacher-like detail rather than the mean of what the student cannot tell apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..diffusion import LatentDiffusion
from ..sampling import guided, initial_noise, sample
from ..unet import UNet
from .losses import lsgan_d_loss, lsgan_g_loss
from .trainer import Stage, StepContext, TrainConfig

__all__ = ["make_student", "teacher_pairs", "PairDataset", "collate_pairs", "DistillStage", "student_sample",
           "LatentCritic", "cond_vector"]


def make_student(teacher: UNet) -> UNet:
    """A copy of ``teacher`` with a zero-initialised guidance input: at first it equals the teacher's conditional
    branch, whatever the guidance scale."""
    from dataclasses import replace
    student = UNet(replace(teacher.config, guidance_embed=True, gradient_checkpointing=False))
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not k.startswith("guidance_embedding.") for k in missing):
        raise ValueError(f"student: the teacher's weights do not fit (missing {missing}, unexpected {unexpected})")
    return student.to(next(teacher.parameters()).device)


@torch.no_grad()
def teacher_pairs(diffusion: LatentDiffusion, cond: dict, uncond: dict, w: torch.Tensor, seeds: list[int], shape,
                  sigmas: torch.Tensor, sampler: str = "dpmpp_2m") -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's samples with per-sample guidance. cond / uncond: conditions for B samples; w: [B] guidance
    scales; seeds: B ints (the pipeline's per-sample initial noise, so pair k is what ``generate(seed=seeds[k])``
    starts from); shape (C, H, W); sigmas: the teacher's descending sigmas ending at 0.
    Returns (y_T [B, C, H, W] at sigmas[0], x_0 [B, C, H, W])."""
    y = initial_noise(seeds, shape, float(sigmas[0]), w.device)
    return y, sample(sampler, guided(diffusion.denoise, cond, uncond, w.float().view(-1, 1, 1, 1)), y, sigmas)


class PairDataset(Dataset):
    """Teacher pairs: tensors ``y`` and ``x0`` [N, C, H, W], ``w`` [N], and ``inputs`` (N conditioner inputs)."""

    def __init__(self, y: torch.Tensor, x0: torch.Tensor, w: torch.Tensor, inputs: list):
        if not (len(y) == len(x0) == len(w) == len(inputs)):
            raise ValueError(f"PairDataset: y, x0, w and inputs differ in length ({len(y)}, {len(x0)}, {len(w)}, "
                             f"{len(inputs)})")
        self.y, self.x0, self.w, self.inputs = y, x0, w, inputs

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"y": self.y[i], "x0": self.x0[i], "w": self.w[i], "inputs": self.inputs[i]}


def collate_pairs(items: list[dict]) -> dict:
    return {"y": torch.stack([it["y"] for it in items]).float(), "x0": torch.stack([it["x0"] for it in items]).float(),
            "w": torch.stack([it["w"] for it in items]).float(), "inputs": [it["inputs"] for it in items]}


def student_sample(diffusion: LatentDiffusion, y: torch.Tensor, sigmas: list[float], cond: dict,
                   w: torch.Tensor) -> torch.Tensor:
    """The student's sample [B, C, H, W] from y [B, C, H, W] at sigmas[0] over ``sigmas`` (ending at 0), with
    guidance input w [B]: DDIM with eta 0, as the pipeline runs it."""
    c = {**cond, "guidance": w}
    return sample("ddim", lambda y_, s: diffusion.denoise(y_, s, c), y, sigmas)


def cond_vector(cond: dict) -> torch.Tensor:
    """One vector per sample [B, D] from a condition dict: its ``pooled`` entry, else the mean of ``context``."""
    return cond["pooled"] if "pooled" in cond else cond["context"].mean(dim=1)


class LatentCritic(nn.Module):
    """Conditional patch discriminator on latents [B, C, H, W] given condition vectors [B, D]: one logit per patch
    [B, 1, H/2, W/2], an unconditional head plus a projection of the condition onto the features (Miyato & Koyama
    2018)."""

    def __init__(self, channels: int, cond_dim: int, width: int = 64):
        super().__init__()
        w = width
        self.body = nn.Sequential(nn.Conv2d(channels, w, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Conv2d(2 * w, 1, 1)
        self.proj = nn.Linear(cond_dim, 2 * w)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) + (self.proj(c)[:, :, None, None] * h).sum(1, keepdim=True) / h.shape[1] ** 0.5


class DistillStage(Stage):
    """Trains ``student`` (a LatentDiffusion around a guidance-embedding U-Net) on :class:`PairDataset` batches.
    ``conditioner`` maps a batch's ``inputs`` to conditions (frozen: the teacher's); ``sigmas``: the student's
    two-step sigmas [sigma_max, sigma_mid, 0]; ``valid``: held-out pairs whose 1- and 2-step MSE to the teacher the
    EMA student reports at each evaluation; ``decoder``: latents [B, C, H, W] -> log-mel [B, n_mels, F], differentiable
    and frozen (``vae.decode`` of the unscaled latents), needed when ``mel_weight`` > 0; ``critic``: a
    :class:`LatentCritic`, trained beside the student, needed when ``adv_weight`` > 0."""

    name = "distill"

    def __init__(self, student: LatentDiffusion, conditioner, sigmas: list[float], valid: PairDataset | None = None,
                 decoder=None, mel_weight: float = 0.0, critic: nn.Module | None = None, adv_weight: float = 0.0):
        if len(sigmas) != 3 or sigmas[-1] != 0:
            raise ValueError(f"DistillStage: sigmas must be [sigma_max, sigma_mid, 0], got {sigmas}")
        if mel_weight < 0 or (mel_weight > 0 and decoder is None):
            raise ValueError(f"DistillStage: mel_weight must be >= 0 and needs a decoder, got {mel_weight}")
        self.student, self.conditioner, self.sigmas, self.valid = student, conditioner, list(sigmas), valid
        if adv_weight < 0 or (adv_weight > 0 and critic is None):
            raise ValueError(f"DistillStage: adv_weight must be >= 0 and needs a critic, got {adv_weight}")
        self.decoder, self.mel_weight = decoder, float(mel_weight)
        self.critic, self.adv_weight = (critic, float(adv_weight)) if adv_weight > 0 else (None, 0.0)

    def modules(self):
        return {"unet": self.student.net, **({"critic": self.critic} if self.critic is not None else {})}

    def ema_modules(self):
        return ["unet"]

    def optimizers(self, cfg: TrainConfig):
        opts = {"unet": torch.optim.AdamW(self.student.net.parameters(), lr=cfg.lr, weight_decay=0.0)}
        if self.critic is not None:
            opts["critic"] = torch.optim.AdamW(self.critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=0.0)
        return opts

    def train_step(self, batch: dict, ctx: StepContext):
        net = ctx.modules.get("unet", self.student.net)  # DDP-wrapped under torchrun
        diff = LatentDiffusion(net, self.student.schedule)
        y, x0, w = batch["y"].to(ctx.device), batch["x0"].to(ctx.device), batch["w"].to(ctx.device)
        self.conditioner.to(ctx.device)
        cond = self.conditioner(batch["inputs"])
        s_max, s_mid = self.sigmas[0], self.sigmas[1]
        with ctx.autocast:
            with torch.no_grad():  # where the student's own first step leads: the second evaluation's input
                first = diff.denoise(y, s_max, {**cond, "guidance": w}).float()
            y_mid = first + (y - first) * (s_mid / s_max)
            # both evaluations in one batched call (one forward per backward, as DDP requires)
            both = {k: torch.cat([v, v]) for k, v in {**cond, "guidance": w}.items()}
            sig = torch.cat([torch.full_like(w, s_max), torch.full_like(w, s_mid)])
            out = diff.denoise(torch.cat([y, y_mid]), sig, both).float()
        e1, e2 = (out - torch.cat([x0, x0])).pow(2).mean(dim=(1, 2, 3)).chunk(2)
        loss, logs = e1.mean() + e2.mean(), {"mse_1": e1.mean().detach(), "mse_2": e2.mean().detach()}
        if self.mel_weight > 0:
            with torch.no_grad():
                target = self.decoder(x0).float()
            m1, m2 = (self.decoder(out).float() - torch.cat([target, target])).abs().mean(dim=(1, 2)).chunk(2)
            loss = loss + self.mel_weight * (m1.mean() + m2.mean())
            logs.update(mel_1=m1.mean().detach(), mel_2=m2.mean().detach())
        if self.critic is not None:
            c = cond_vector(cond).float()
            c2 = torch.cat([c, c])
            g = lsgan_g_loss(self.critic(out, c2))  # (reaches only the student: the trainer's backward is per optimizer)
            loss = loss + self.adv_weight * g
            logs["g_adv"] = g.detach()
        yield "unet", loss, logs
        if self.critic is not None:  # the teacher's samples are real, both of the student's evaluations fake
            critic = ctx.modules.get("critic", self.critic)
            d = lsgan_d_loss(critic(x0, c), critic(out.detach(), c2))
            yield "critic", d, {"d_adv": d.detach()}

    @torch.no_grad()
    def evaluate(self, ctx: StepContext) -> dict:
        if self.valid is None or not len(self.valid):
            return {}
        net = ctx.ema.get("unet", self.student.net)
        diff = LatentDiffusion(net, self.student.schedule)
        b = collate_pairs([self.valid[i] for i in range(len(self.valid))])
        y, x0, w = b["y"].to(ctx.device), b["x0"].to(ctx.device), b["w"].to(ctx.device)
        cond = self.conditioner.to(ctx.device)(b["inputs"])
        one = student_sample(diff, y, [self.sigmas[0], 0.0], cond, w)
        two = student_sample(diff, y, self.sigmas, cond, w)
        return {"scalars": {"valid_mse_1": F.mse_loss(one, x0).item(), "valid_mse_2": F.mse_loss(two, x0).item()}}
