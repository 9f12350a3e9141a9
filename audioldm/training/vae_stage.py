"""Training stage for the mel VAE: L1 reconstruction on log-mel + a small KL term, and an optional PatchGAN
discriminator (hinge loss) switched on at ``disc_start`` with latent diffusion's adaptive generator weight.
Also: the latent scale factor (1 / std of latents over a data sample)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..vae import MelVAE
from ..vocoders.griffinlim import griffin_lim
from .losses import PatchDiscriminator, adaptive_weight, hinge_d_loss, hinge_g_loss
from .trainer import Stage, StepContext, TrainConfig

__all__ = ["VAELossConfig", "VAEStage", "latent_scale_factor", "evaluate_vae"]


@dataclass
class VAELossConfig:
    # KL and L1 are both means over input elements, so kl_weight has the meaning of latent diffusion's kl_weight
    # (there both are sums per sample).
    kl_weight: float = 1e-6
    disc_start: int = -1  # step at which the discriminator switches on; -1 = never
    disc_weight: float = 0.5
    disc_channels: int = 32
    disc_layers: int = 3
    betas: tuple[float, float] = (0.5, 0.9)


class VAEStage(Stage):
    name = "vae"

    def __init__(self, vae: MelVAE, loss: VAELossConfig | None = None, valid_dataset=None, eval_items: int = 32):
        self.vae, self.loss_cfg = vae, loss or VAELossConfig()
        self.disc = (PatchDiscriminator(1, self.loss_cfg.disc_channels, self.loss_cfg.disc_layers)
                     if self.loss_cfg.disc_start >= 0 else None)
        self.valid_dataset, self.eval_items = valid_dataset, eval_items

    def modules(self):
        return {"vae": self.vae, **({"disc": self.disc} if self.disc is not None else {})}

    def ema_modules(self):
        return ["vae"]

    def optimizers(self, cfg: TrainConfig):
        b = tuple(self.loss_cfg.betas)
        opts = {"vae": torch.optim.AdamW(self.vae.parameters(), lr=cfg.lr, betas=b, weight_decay=0.0)}
        if self.disc is not None:
            opts["disc"] = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=b, weight_decay=0.0)
        return opts

    def train_step(self, batch: dict, ctx: StepContext):
        mel = batch["mel"]
        vae = ctx.modules.get("vae", self.vae)  # DDP-wrapped under torchrun
        c = self.vae.config
        noise = ctx.randn(batch, (c.z_channels, -(-mel.shape[-1] // c.downsample), mel.shape[1] // c.downsample))
        rec, post = vae(mel, noise=noise)
        rec = rec.float()
        rec_loss = (rec - mel).abs().mean()
        kl = post.kl().mean() / mel[0].numel()
        loss = rec_loss + self.loss_cfg.kl_weight * kl
        logs = {"l1": rec_loss.detach(), "kl": kl.detach()}
        use_disc = self.disc is not None and ctx.step >= self.loss_cfg.disc_start
        if use_disc:
            fake_logits = self.disc(rec.transpose(1, 2).unsqueeze(1))
            g_loss = hinge_g_loss(fake_logits)
            w = adaptive_weight(rec_loss, g_loss, self.vae.decoder.conv_out.weight) * self.loss_cfg.disc_weight
            loss = loss + w * g_loss
            logs.update(g_loss=g_loss.detach(), d_weight=w)
        yield "vae", loss, logs
        if use_disc:  # the generator's loss above used the unwrapped discriminator: only this pass syncs its grads
            disc = ctx.modules.get("disc", self.disc)
            real = disc(mel.transpose(1, 2).unsqueeze(1))
            fake = disc(rec.detach().transpose(1, 2).unsqueeze(1))
            d_loss = hinge_d_loss(real, fake)
            yield "disc", d_loss, {"logits_real": real.mean().detach(), "logits_fake": fake.mean().detach()}

    def evaluate(self, ctx: StepContext) -> dict:
        if self.valid_dataset is None:
            return {}
        vae = ctx.ema.get("vae", self.vae)
        l1, mel0, rec0 = evaluate_vae(vae, self.valid_dataset, ctx.device, self.eval_items)
        wav = griffin_lim(rec0, vae.config.mel, n_iter=32)
        return {"scalars": {"l1": l1}, "images": {"mel/real": mel0, "mel/recon": rec0}, "audio": {"recon_gl": wav},
                "sample_rate": vae.config.mel.sample_rate}


@torch.no_grad()
def evaluate_vae(vae: MelVAE, dataset, device, max_items: int | None = None, batch_size: int = 8):
    """Mean log-mel L1 of posterior-mean reconstructions over the first ``max_items`` items; also returns the first
    item's (mel, reconstruction) [n_mels, F]."""
    vae.eval()
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    total, count, first = 0.0, 0, None
    for start in range(0, n, batch_size):
        mel = torch.stack([dataset[i]["mel"] for i in range(start, min(n, start + batch_size))]).to(device)
        rec, _ = vae(mel, sample=False)
        total += (rec.float() - mel).abs().mean(dim=(1, 2)).sum().item()
        count += mel.shape[0]
        if first is None:
            first = (mel[0].cpu(), rec[0].float().cpu())
    return total / count, first[0], first[1]


@torch.no_grad()
def latent_scale_factor(vae: MelVAE, dataset, device, max_items: int = 256, batch_size: int = 16,
                        seed: int = 0) -> float:
    """1 / std of posterior samples over (up to) ``max_items`` items (Rombach et al. 2022, sec. 4.3.2)."""
    vae.eval()
    g = torch.Generator().manual_seed(seed)
    n = min(max_items, len(dataset))
    zs = []
    for start in range(0, n, batch_size):
        mel = torch.stack([dataset[i]["mel"] for i in range(start, min(n, start + batch_size))]).to(device)
        post = vae.encode(mel)
        zs.append(post.sample(torch.randn(post.mean.shape, generator=g)).float().cpu())
    std = torch.cat(zs).std().item()
    if not std > 0:
        raise ValueError(f"latent std is {std}; cannot compute a scale factor")
    return 1.0 / std
