"""Samplers as plain functions over a denoiser ``denoise(y, sigma) -> x0_hat`` in the VE variable y = x_0 + sigma eps
(see diffusion.py), with descending ``sigmas`` ending at 0. Adding a sampler touches this file only.

- ``ddim`` (Song et al. 2021, eq. 12; ``eta`` = 0 deterministic) and ``ddpm`` (= DDIM with eta = 1, ancestral)
- ``euler`` and ``heun`` (Karras et al. 2022, algorithms 1-2)
- ``dpmpp_2m`` (DPM-Solver++(2M), Lu et al. 2022, algorithm 2)

Classifier-free guidance is :func:`guided`: one batched network call for conditional and unconditional halves.
Noise is per-sample seeded (:func:`noise_sampler`), so sample k of a batch equals generating it alone with its seed.

Synchronisation: each sampler reads its sigmas once, as host floats (the step coefficients and the control flow) and
as one device tensor (:func:`_sigmas`); the denoiser gets ``sigma`` as a 0-d tensor on the latents' device. So the
deterministic samplers (DDIM with eta 0, DPM++(2M), Euler, Heun) make no host-device copy and no ``.item()`` per step:
on CUDA the loop never waits for the GPU and can be captured as a graph. The ancestral ones (DDPM, DDIM with eta > 0)
draw each step's per-sample seeded noise on the host (seeding.py) and copy it to the device: one copy per step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .conditioning import concat_conditions
from .seeding import mix_seed, randn_per_sample

__all__ = ["SAMPLERS", "SigmaTable", "sample", "sample_ddim", "sample_ddpm", "sample_euler", "sample_heun",
           "sample_dpmpp_2m", "guided", "noise_sampler", "initial_noise"]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (y [B, ...], sigma: 0-d tensor) -> x0_hat


def initial_noise(seeds: list[int], shape, sigma_max: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """y_T for a VP model: x_T ~ N(0, I) expressed in y = x_T / sqrt(a_T) = x_T * sqrt(1 + sigma_max^2)."""
    return randn_per_sample([mix_seed(s, -1) for s in seeds], shape, device, dtype) * math.sqrt(1 + sigma_max ** 2)


def noise_sampler(seeds: list[int], shape, device=None, dtype=torch.float32):
    """step i -> fresh noise [B, *shape] whose row k depends only on (seeds[k], i)."""
    return lambda i: randn_per_sample([mix_seed(s, i) for s in seeds], shape, device, dtype)


def guided(denoise_cond: Callable, cond: dict, uncond: dict | None, scale) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022): x0_u + scale (x0_c - x0_u), both halves in one batched call.
    ``denoise_cond(y, sigma, cond_dict)``; cond values are tensors with the batch first (concatenated here).
    ``scale``: a float, or a tensor [B, 1, 1, 1] of one scale per sample (distillation's teacher)."""
    if uncond is None or (not torch.is_tensor(scale) and scale == 1.0):
        return lambda y, sigma: denoise_cond(y, sigma, cond)
    both = concat_conditions(cond, uncond)

    def fn(y, sigma):
        x0 = denoise_cond(torch.cat([y, y]), sigma, both)
        c, u = x0.chunk(2)
        return u + scale * (c - u)
    return fn


class SigmaTable(list):
    """Descending sigmas as host floats that also carry their float32 copy on ``device``, made once. A sampler given
    one makes no copy at all, which CUDA-graph capture needs (accel.py)."""

    def __init__(self, sigmas, device):
        super().__init__(float(s) for s in (sigmas.tolist() if torch.is_tensor(sigmas) else sigmas))
        self.on_device = torch.tensor(list(self), dtype=torch.float32, device=device)


def _sigmas(sigmas, device) -> tuple[list[float], torch.Tensor]:
    """(host floats, float32 tensor on ``device``) of the sigmas: one copy per sampler call (none for a
    :class:`SigmaTable`), none per step."""
    if isinstance(sigmas, SigmaTable):
        return list(sigmas), sigmas.on_device
    host = [float(s) for s in (sigmas.tolist() if torch.is_tensor(sigmas) else sigmas)]
    dev = sigmas if torch.is_tensor(sigmas) else torch.tensor(host)
    return host, dev.to(device=device, dtype=torch.float32)


def sample_euler(denoise: Denoiser, x: torch.Tensor, sigmas, callback=None, **_) -> torch.Tensor:
    s, sd = _sigmas(sigmas, x.device)
    for i in range(len(s) - 1):
        x0 = denoise(x, sd[i])
        x = x0 if s[i + 1] == 0 else x + (x - x0) / s[i] * (s[i + 1] - s[i])
        if callback:
            callback(i, x, x0)
    return x


def sample_heun(denoise: Denoiser, x: torch.Tensor, sigmas, callback=None, **_) -> torch.Tensor:
    s, sd = _sigmas(sigmas, x.device)
    for i in range(len(s) - 1):
        x0 = denoise(x, sd[i])
        d = (x - x0) / s[i]
        if s[i + 1] == 0:
            x = x0
        else:
            xe = x + d * (s[i + 1] - s[i])
            d2 = (xe - denoise(xe, sd[i + 1])) / s[i + 1]
            x = x + (d + d2) / 2 * (s[i + 1] - s[i])
        if callback:
            callback(i, x, x0)
    return x


def sample_ddim(denoise: Denoiser, x: torch.Tensor, sigmas, eta: float = 0.0, noise=None, callback=None,
                **_) -> torch.Tensor:
    """DDIM in y-space: with a_t = 1 / (1 + sigma_t^2), the VP step's noise std sigma_eta (Song et al. eq. 16)
    becomes sigma_up = sigma_eta / sqrt(a_s) and the deterministic part moves to sigma_down."""
    s, sd = _sigmas(sigmas, x.device)
    if eta > 0 and noise is None:
        raise ValueError("sample_ddim: eta > 0 needs a noise sampler")
    for i in range(len(s) - 1):
        x0 = denoise(x, sd[i])
        if s[i + 1] == 0:
            x = x0
        else:
            a_t, a_s = 1 / (1 + s[i] ** 2), 1 / (1 + s[i + 1] ** 2)
            sig_eta = eta * math.sqrt(max((1 - a_s) / (1 - a_t) * (1 - a_t / a_s), 0.0))
            up = sig_eta / math.sqrt(a_s)
            down = math.sqrt(max(s[i + 1] ** 2 - up ** 2, 0.0))
            x = x0 + (x - x0) / s[i] * down
            if up > 0:
                x = x + noise(i) * up
        if callback:
            callback(i, x, x0)
    return x


def sample_ddpm(denoise: Denoiser, x: torch.Tensor, sigmas, noise=None, callback=None, **_) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020) on the chosen sigmas = DDIM with eta = 1."""
    return sample_ddim(denoise, x, sigmas, eta=1.0, noise=noise, callback=callback)


def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, sigmas, callback=None, **_) -> torch.Tensor:
    """DPM-Solver++(2M) with lambda = -log sigma: a second-order multistep update on the data prediction."""
    s, sd = _sigmas(sigmas, x.device)
    old = None
    h_last = None
    for i in range(len(s) - 1):
        x0 = denoise(x, sd[i])
        if s[i + 1] == 0:
            x = x0
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            if old is None:
                d = x0
            else:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old
            x = (s[i + 1] / s[i]) * x - math.expm1(-h) * d
            h_last = h
        old = x0
        if callback:
            callback(i, x, x0)
    return x


SAMPLERS = {"ddim": sample_ddim, "ddpm": sample_ddpm, "euler": sample_euler, "heun": sample_heun,
            "dpmpp_2m": sample_dpmpp_2m}


def sample(name: str, denoise: Denoiser, x: torch.Tensor, sigmas, noise=None, callback=None, **kw) -> torch.Tensor:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {sorted(SAMPLERS)}")
    return SAMPLERS[name](denoise, x, sigmas, noise=noise, callback=callback, **kw)
