"""Training stage for vocoders. Waveform vocoders (HiFi-GAN, Vocos): on random waveform segments, log-mel L1 (x45),
optionally a multi-resolution STFT loss, and from ``disc_start`` on, least-squares GAN losses against multi-period +
multi-resolution discriminators with feature matching (x2) — HiFi-GAN's weights (Kong et al. 2020, eq. 6-7).
Magnitude vocoders (``learns_magnitude``, the spectral vocoder): the log-mel L1 of the waveform they make (through a
few differentiable Griffin-Lim iterations) plus, weighted by ``magnitude_weight``, log-magnitude L1, spectral
convergence and mel consistency of the predicted STFT magnitude against the true one (no discriminator)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..evaluation import logmel_l1, mrstft_distance
from ..mel import MelFrontend, stft_frames
from ..vocoders.discriminators import (
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
)
from .losses import feature_matching, lsgan_d_loss, lsgan_g_loss, mrstft_loss
from .trainer import Stage, StepContext, TrainConfig

__all__ = ["VocoderLossConfig", "VocoderStage", "evaluate_vocoder"]

MAG_LOSS_FLOOR = 1e-3  # log-magnitude floor of the magnitude loss (see VocoderStage._magnitude_loss)


@dataclass
class VocoderLossConfig:
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    gan_weight: float = 1.0
    stft_weight: float = 0.0  # > 0 adds the multi-resolution STFT distance (Yamamoto et al. 2020) to the generator
    disc_start: int = 0  # -1: never (mel loss only)
    disc_channels: int = 32  # first-layer width of every sub-discriminator
    disc_max_channels: int = 1024  # cap on the period discriminators' widths (HiFi-GAN: 1024; 64 is CPU-friendly)
    betas: tuple[float, float] = (0.8, 0.99)
    magnitude_weight: float = 0.1  # magnitude vocoders: weight of the magnitude terms beside the output's log-mel L1


class _Discriminators(nn.Module):
    def __init__(self, channels: int, max_channels: int):
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(channels=channels, max_channels=max_channels)
        self.mrd = MultiResolutionDiscriminator(channels=channels)

    def forward(self, wav):
        l1, f1 = self.mpd(wav)
        l2, f2 = self.mrd(wav)
        return l1 + l2, f1 + f2


class VocoderStage(Stage):
    name = "vocoder"

    def __init__(self, vocoder: nn.Module, loss: VocoderLossConfig | None = None, valid_dataset=None,
                 eval_items: int = 16, mel_input: nn.Module | None = None, mel_input_fraction: float = 1.0):
        """``mel_input``: an optional frozen module mapping the true log-mel [B, n_mels, F] to the vocoder's input
        (e.g. a VAE round trip, so the vocoder learns to invert the mels it will get at generation time), applied to
        a random ``mel_input_fraction`` of each batch's items (the rest get the true mel); the losses still compare
        against the true audio and mel."""
        if not 0.0 <= mel_input_fraction <= 1.0:
            raise ValueError(f"VocoderStage: mel_input_fraction={mel_input_fraction} must be in [0, 1]")
        self.mel_input_fraction = mel_input_fraction
        self.vocoder, self.loss_cfg = vocoder, loss or VocoderLossConfig()
        self.mel_input = mel_input.eval().requires_grad_(False) if mel_input is not None else None
        self.learns_magnitude = getattr(vocoder, "learns_magnitude", False)
        use_disc = self.loss_cfg.disc_start >= 0 and not self.learns_magnitude
        self.disc = _Discriminators(self.loss_cfg.disc_channels, self.loss_cfg.disc_max_channels) if use_disc else None
        self.frontend = MelFrontend(vocoder.mel_config)
        self.valid_dataset, self.eval_items = valid_dataset, eval_items

    def modules(self):
        return {"vocoder": self.vocoder, **({"disc": self.disc} if self.disc is not None else {})}

    def ema_modules(self):
        return ["vocoder"]

    def optimizers(self, cfg: TrainConfig):
        b = tuple(self.loss_cfg.betas)
        opts = {"vocoder": torch.optim.AdamW(self.vocoder.parameters(), lr=cfg.lr, betas=b, weight_decay=0.01)}
        if self.disc is not None:
            opts["disc"] = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=b, weight_decay=0.01)
        return opts

    def train_step(self, batch: dict, ctx: StepContext):
        wav, mel = batch["wav"], batch["mel"]
        self.frontend = self.frontend.to(wav.device)
        if self.mel_input is not None:
            with torch.no_grad():
                inp = self.mel_input.to(wav.device)(mel).float()
            if self.mel_input_fraction < 1.0:
                pick = torch.rand(mel.shape[0], 1, 1, device=mel.device) < self.mel_input_fraction
                inp = torch.where(pick, inp, mel)
        else:
            inp = mel
        if self.learns_magnitude:
            log_mag, fake = ctx.modules.get("vocoder", self.vocoder)(inp, output="train")  # DDP-wrapped under torchrun
            loss, logs = self._magnitude_loss(log_mag, wav, mel)
            out_mel = (self.frontend(fake.float()) - mel).abs().mean()
            yield "vocoder", out_mel + self.loss_cfg.magnitude_weight * loss, {"out_mel_l1": out_mel.detach(), **logs}
            return
        fake = ctx.modules.get("vocoder", self.vocoder)(inp).float()  # DDP-wrapped under torchrun
        mel_loss = (self.frontend(fake) - mel).abs().mean()
        loss = self.loss_cfg.mel_weight * mel_loss
        logs = {"mel_l1": mel_loss.detach()}
        if self.loss_cfg.stft_weight > 0:
            stft = mrstft_loss(fake, wav)
            loss = loss + self.loss_cfg.stft_weight * stft
            logs["mrstft"] = stft.detach()
        use_disc = self.disc is not None and ctx.step >= self.loss_cfg.disc_start
        if use_disc:
            with torch.no_grad():  # real features are only targets here
                _, real_feats = self.disc(wav)
            fake_logits, fake_feats = self.disc(fake)
            g_adv = sum(lsgan_g_loss(f) for f in fake_logits)
            fm = sum(feature_matching(r, f) for r, f in zip(real_feats, fake_feats))
            loss = loss + self.loss_cfg.gan_weight * g_adv + self.loss_cfg.fm_weight * fm
            logs.update(g_adv=g_adv.detach(), fm=fm.detach())
        yield "vocoder", loss, logs
        if use_disc:  # the generator's loss above used the unwrapped discriminator: only this pass syncs its grads
            disc = ctx.modules.get("disc", self.disc)
            real_logits, _ = disc(wav)
            fake_logits, _ = disc(fake.detach())
            d_loss = sum(lsgan_d_loss(r, f) for r, f in zip(real_logits, fake_logits))
            yield "disc", d_loss, {}

    def _magnitude_loss(self, log_mag: torch.Tensor, wav: torch.Tensor, mel: torch.Tensor):
        """Predicted log|S| [B, K, F] vs the true STFT of wav [B, F * hop]: log-magnitude L1, spectral convergence
        (normalised over the batch, as in mrstft_loss) and the log-mel L1 of the prediction's mel energies against
        the true log-mel [B, n_mels, F]. The log-magnitude floor is MAG_LOSS_FLOOR: about the bin level at which
        the mel front-end's own floor (1e-5 on mel energies) starts, so that the silent half of the bins (a note's
        tail, the empty top of a low sound) does not outweigh the sounding half."""
        true = stft_frames(wav.float(), self.vocoder.mel_config).abs()
        log_mag = log_mag.float()
        log_l1 = (log_mag.clamp(min=math.log(MAG_LOSS_FLOOR)) - true.clamp(min=MAG_LOSS_FLOOR).log()).abs().mean()
        mag = torch.exp(log_mag.clamp(max=10.0))
        sc = torch.linalg.vector_norm(true - mag) / torch.linalg.vector_norm(true).clamp(min=1e-5)
        basis = self.frontend.mel_basis.to(mag.dtype)
        mel_l1 = (torch.log(torch.clamp(basis @ mag, min=self.vocoder.mel_config.log_floor)) - mel).abs().mean()
        return log_l1 + sc + mel_l1, {"log_mag_l1": log_l1.detach(), "sc": sc.detach(), "mel_l1": mel_l1.detach()}

    def evaluate(self, ctx: StepContext) -> dict:
        if self.valid_dataset is None:
            return {}
        voc = ctx.ema.get("vocoder", self.vocoder)
        res = evaluate_vocoder(voc, self.valid_dataset, ctx.device, self.eval_items)
        item = self.valid_dataset[0]
        wav = voc(item["mel"][None].to(ctx.device))[0].float()
        return {"scalars": {"mrstft": res["mrstft"], "logmel_l1": res["logmel_l1"]}, "audio": {"vocoded": wav},
                "sample_rate": voc.mel_config.sample_rate}


@torch.no_grad()
def evaluate_vocoder(vocoder, dataset, device, max_items: int | None = None, batch_size: int = 8) -> dict:
    """Mean MR-STFT distance and log-mel L1 of vocoder(mel(wav)) against wav over the first ``max_items`` items."""
    if hasattr(vocoder, "eval"):
        vocoder.eval()
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    fe = MelFrontend(vocoder.mel_config).to(device)
    mr, lm = [], []
    for s in range(0, n, batch_size):
        items = [dataset[i] for i in range(s, min(n, s + batch_size))]
        wav = torch.stack([it["wav"] for it in items]).to(device)
        mel = torch.stack([it["mel"] for it in items]).to(device)
        out = vocoder(mel).float()[:, :wav.shape[-1]]
        mr.append(mrstft_distance(out, wav).cpu())
        lm.append(logmel_l1(out, wav, frontend=fe).cpu())
    return {"mrstft": torch.cat(mr).mean().item(), "logmel_l1": torch.cat(lm).mean().item(), "items": n}
