"""Diffusion objective: discrete variance-preserving noise schedules, eps / v parametrisation, min-SNR weighting, and
the thin denoiser wrapper that owns the loss (the U-Net knows nothing of schedules).

Notation: alphas_cumprod a_t; x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps (Ho et al. 2020, eq. 4). Samplers work in the
equivalent "VE" variable y = x_t / sqrt(a_t) = x_0 + sigma_t eps with sigma_t = sqrt((1 - a_t) / a_t) (Karras et al.
2022, sec. 2 and app. C.1), through :meth:`LatentDiffusion.denoise`, which maps (y, sigma) to an estimate of x_0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ScheduleConfig", "NoiseSchedule", "LatentDiffusion"]


@dataclass
class ScheduleConfig:
    kind: str = "scaled_linear"  # "linear" | "scaled_linear" | "cosine"
    num_train_timesteps: int = 1000
    beta_start: float = 0.0015  # AudioLDM's scaled-linear range
    beta_end: float = 0.0195
    zero_terminal_snr: bool = False  # Lin et al. 2024, algorithm 1
    prediction: str = "eps"  # "eps" | "v"
    min_snr_gamma: float = 0.0  # > 0: min-SNR loss weighting (Hang et al. 2023); 0: plain MSE
    spacing: str = "leading"  # sampling timestep spacing (diffusers' timestep_spacing): leading | trailing | linspace
    steps_offset: int = 1  # added to "leading" timesteps (diffusers' steps_offset)
    set_alpha_to_one: bool = True  # False: sampling stops at t = 0's noise level, as diffusers' DDIM (AudioLDM)

    def __post_init__(self):
        if self.kind not in ("linear", "scaled_linear", "cosine"):
            raise ValueError(f"ScheduleConfig.kind must be linear, scaled_linear or cosine, got {self.kind!r}")
        if self.prediction not in ("eps", "v"):
            raise ValueError(f"ScheduleConfig.prediction must be 'eps' or 'v', got {self.prediction!r}")
        if self.spacing not in ("leading", "trailing", "linspace"):
            raise ValueError(f"ScheduleConfig.spacing must be leading, trailing or linspace, got {self.spacing!r}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"ScheduleConfig.num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"ScheduleConfig: need 0 < beta_start < beta_end < 1, got {self.beta_start}, "
                             f"{self.beta_end}")


class NoiseSchedule:
    """Discrete VP schedule: ``betas``, ``alphas_cumprod`` (float64 [T]) and helpers."""

    MIN_ALPHA_CUMPROD = 1e-8  # keeps sigma finite when zero-terminal-SNR makes a_T = 0

    def __init__(self, config: ScheduleConfig | None = None):
        self.config = c = config or ScheduleConfig()
        self._log_sigmas: dict = {}  # device -> the log-sigma table sigma_to_t interpolates (copied once per device)
        T = c.num_train_timesteps
        if c.kind == "linear":
            betas = torch.linspace(c.beta_start, c.beta_end, T, dtype=torch.float64)
        elif c.kind == "scaled_linear":
            betas = torch.linspace(c.beta_start ** 0.5, c.beta_end ** 0.5, T, dtype=torch.float64) ** 2
        else:  # Nichol & Dhariwal 2021, eq. 17, s = 0.008, betas clipped at 0.999
            s = 0.008
            f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        if c.zero_terminal_snr:
            betas = self._rescale_zero_terminal_snr(betas)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    @staticmethod
    def _rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
        # Lin et al. 2024, algorithm 1: shift and scale sqrt(a_t) so that sqrt(a_T) = 0 and sqrt(a_1) is unchanged.
        ab = torch.cumprod(1 - betas, 0).sqrt()
        first, last = ab[0].clone(), ab[-1].clone()
        ab = (ab - last) * first / (first - last)
        a = ab ** 2
        alphas = torch.cat([a[:1], a[1:] / a[:-1]])
        return 1 - alphas

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    @property
    def sigmas(self) -> torch.Tensor:
        """sigma_t = sqrt((1 - a_t) / a_t) for t = 0..T-1 (float64, increasing)."""
        a = self.alphas_cumprod.clamp(min=self.MIN_ALPHA_CUMPROD)
        return ((1 - a) / a).sqrt()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep for sigma by linear interpolation of log-sigma over the table (exact at table entries)."""
        log_s = self._log_sigmas.get(sigma.device)
        if log_s is None:
            log_s = self._log_sigmas[sigma.device] = self.sigmas.log().to(sigma.device)
        ls = sigma.double().clamp(min=1e-10).log()
        idx = torch.searchsorted(log_s, ls).clamp(1, len(log_s) - 1)
        lo, hi = log_s[idx - 1], log_s[idx]
        w = ((ls - lo) / (hi - lo)).clamp(0, 1)
        return ((idx - 1) + w).float()

    def timesteps(self, steps: int, spacing: str = "leading", offset: int = 1) -> torch.Tensor:
        """Descending integer timesteps for a sampler with ``steps`` steps, spaced like diffusers' schedulers:
        "leading" (AudioLDM: arange(steps) * (T // steps) + offset), "trailing" (ends at T - 1) or "linspace"."""
        T = self.num_train_timesteps
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in [1, {T}], got {steps}")
        if spacing == "leading":
            ts = torch.arange(steps) * (T // steps) + offset
        elif spacing == "trailing":
            ts = torch.round(torch.arange(T, 0, -T / steps)).long() - 1
            ts = ts.flip(0)
        elif spacing == "linspace":
            ts = torch.linspace(0, T - 1, steps).round().long()
        else:
            raise ValueError(f"spacing must be leading, trailing or linspace, got {spacing!r}")
        return ts.clamp(0, T - 1).flip(0)

    def sampling_sigmas(self, steps: int, spacing: str | None = None, offset: int | None = None,
                        final_sigma: float = 0.0) -> torch.Tensor:
        """Descending float32 sigmas [steps + 1] for the samplers, ending at ``final_sigma`` (0: the clean sample).
        ``spacing`` / ``offset`` default to the config's."""
        spacing = self.config.spacing if spacing is None else spacing
        offset = self.config.steps_offset if offset is None else offset
        s = self.sigmas[self.timesteps(steps, spacing, offset)]
        return torch.cat([s, s.new_tensor([final_sigma])]).float()

    @property
    def final_sigma(self) -> float:
        """Where sampling ends: 0 (the clean sample) or, without set_alpha_to_one, sigma at t = 0."""
        return 0.0 if self.config.set_alpha_to_one else float(self.sigmas[0])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod.to(t.device)[t].float()
        return a / (1 - a).clamp(min=1e-12)


class LatentDiffusion(nn.Module):
    """Wraps a network ``net(x_t, t, cond) -> eps or v`` with a schedule; owns the training loss and the
    sampler-facing :meth:`denoise`."""

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.net, self.schedule = net, schedule

    @property
    def prediction(self) -> str:
        return self.schedule.config.prediction

    def loss(self, x0: torch.Tensor, cond: dict, noise: torch.Tensor | None = None,
             t: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample-weighted MSE between the network output and its target (eps or v). x0: [B, C, H, W]."""
        b = x0.shape[0]
        noise = torch.randn_like(x0) if noise is None else noise
        if t is None:
            t = torch.randint(0, self.schedule.num_train_timesteps, (b,), device=x0.device)
        x_t = self.schedule.add_noise(x0, noise, t)
        out = self.net(x_t, t, cond).float()
        if self.prediction == "eps":
            target = noise
        else:  # v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022, sec. 4)
            a = self.schedule.alphas_cumprod.to(x0.device)[t].float().view(-1, 1, 1, 1)
            target = a.sqrt() * noise - (1 - a).sqrt() * x0
        mse = (out - target.float()).pow(2).mean(dim=tuple(range(1, x0.dim())))
        gamma = self.schedule.config.min_snr_gamma
        if gamma > 0:  # min-SNR-gamma (Hang et al. 2023, eq. 8), expressed for the eps or v target
            snr = self.schedule.snr(t)
            w = snr.clamp(max=gamma) / (snr if self.prediction == "eps" else snr + 1)
            mse = mse * w
        return mse.mean()

    def denoise(self, y: torch.Tensor, sigma: torch.Tensor, cond: dict) -> torch.Tensor:
        """x_0 estimate from y = x_0 + sigma * eps. y: [B, C, H, W], sigma: [B] or a 0-d tensor (on y's device: no
        copy), or a float."""
        if torch.is_tensor(sigma):
            sigma = sigma.to(device=y.device, dtype=torch.float32).expand(y.shape[0])
        else:  # a fill on the device, not a host-to-device copy
            sigma = torch.full((y.shape[0],), float(sigma), device=y.device)
        s = sigma.view(-1, 1, 1, 1)
        c_in = 1 / (1 + s ** 2).sqrt()  # = sqrt(a_t)
        out = self.net(y * c_in, self.schedule.sigma_to_t(sigma), cond).float()
        if self.prediction == "eps":
            return y - s * out
        return y * c_in ** 2 - s * c_in * out  # x0 = a y - sqrt(1 - a) v
