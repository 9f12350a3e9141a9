"""The one mel front-end: ``MelConfig`` (settings, JSON round trip, presets) and ``MelFrontend`` (waveform -> log-mel),
plus the mel -> linear magnitude fit every spectral vocoder starts from (``mel_to_magnitude``). Phase retrieval
(Griffin-Lim, PGHI) lives in vocoders/.

Convention (AudioLDM / HiFi-GAN 16 kHz; docs/generation.md): magnitude STFT (power 1) with a periodic Hann window,
reflect padding of (n_fft - hop) / 2 on each side and no centering, so T samples give ceil(T / hop) frames (input is
zero-padded at the end to a multiple of hop first); Slaney-scale, Slaney-normalised mel filterbank (librosa's default);
log(clamp(mel, min=1e-5)).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import config_from_dict, preset

__all__ = ["MelConfig", "MelFrontend", "stft_frames", "mel_filterbank", "mel_to_magnitude", "as_batch",
           "MelConfigMismatch"]


class MelConfigMismatch(ValueError):
    """Two components were trained with different mel settings."""


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram settings. Every trained component stores the MelConfig it was trained with."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self):
        checks = [
            ("sample_rate", self.sample_rate > 0, "a positive integer"),
            ("n_fft", self.n_fft > 0, "a positive integer"),
            ("win_length", 0 < self.win_length <= self.n_fft, f"in (0, n_fft={self.n_fft}]"),
            ("hop_length", 0 < self.hop_length <= self.win_length, f"in (0, win_length={self.win_length}]"),
            ("n_mels", self.n_mels > 0, "a positive integer"),
            ("fmin", 0 <= self.fmin < self.fmax, f"in [0, fmax={self.fmax})"),
            ("fmax", self.fmax <= self.sample_rate / 2, f"<= sample_rate / 2 = {self.sample_rate / 2}"),
            ("log_floor", self.log_floor > 0, "positive"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"MelConfig.{name}={getattr(self, name)!r}: expected {expected}")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"MelConfig: n_fft - hop_length must be even for symmetric padding, "
                             f"got {self.n_fft} - {self.hop_length}")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples: ceil(T / hop)."""
        return -(-num_samples // self.hop_length)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "MelConfig") -> "MelConfig":
        """Build from a dict; unknown fields or wrong types are an error naming ``source`` and the field."""
        return config_from_dict(cls, d, source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "MelConfig") -> "MelConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: invalid JSON ({e})") from None
        return cls.from_dict(d, source)

    @classmethod
    def preset(cls, name: str) -> "MelConfig":
        if name not in MEL_PRESETS:
            raise ValueError(f"unknown MelConfig preset {name!r}; known: {sorted(MEL_PRESETS)}")
        return MEL_PRESETS[name]()

    def check_same(self, other: "MelConfig", what: str = "components") -> None:
        """Raise :class:`MelConfigMismatch` listing the differing fields if ``other`` differs."""
        diff = {k: (v, getattr(other, k)) for k, v in self.to_dict().items() if getattr(other, k) != v}
        if diff:
            raise MelConfigMismatch(f"{what} were trained with different mel settings: "
                                    + ", ".join(f"{k}: {a} vs {b}" for k, (a, b) in diff.items()))


MEL_PRESETS = {  # name -> factory (config.preset)
    # AudioLDM / HiFi-GAN 16 kHz, 64 bands (the default)
    "audioldm-16k": preset(MelConfig),
    # full band at 44.1 kHz: hop and FFT size as BigVGAN's 44.1 kHz models use them, 128 bands
    "bigvgan-44k": preset(MelConfig, sample_rate=44100, n_fft=2048, win_length=2048, hop_length=512, n_mels=128,
                          fmin=0.0, fmax=22050.0),
    # 48 kHz-style wide band variant for other vocoders (not the default)
    "audioldm-48k": preset(MelConfig, sample_rate=48000, n_fft=2048, win_length=2048, hop_length=480, n_mels=256,
                           fmin=20.0, fmax=24000.0),
}


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox mel scale: linear (f / (200/3)) below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """Slaney-scale triangular filters with Slaney (area) normalisation: float32 [n_mels, n_fft // 2 + 1]."""
    fft_freqs = np.linspace(0, cfg.sample_rate / 2, cfg.n_freqs)
    mel_pts = np.linspace(_hz_to_mel_slaney(cfg.fmin), _hz_to_mel_slaney(cfg.fmax), cfg.n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


def stft_frames(wav: torch.Tensor, cfg: MelConfig, window: torch.Tensor | None = None) -> torch.Tensor:
    """Waveform [B, T] (T a multiple of hop) -> complex STFT [B, n_fft // 2 + 1, T / hop] in the mel framing:
    reflect padding of (n_fft - hop) / 2 per side (zero padding for inputs too short to reflect), no centering,
    periodic Hann of ``win_length`` (``window``, else made here). Frame k's DFT origin is its first sample;
    :func:`audioldm.vocoders.phase.istft_frames` inverts it."""
    if window is None:
        window = torch.hann_window(cfg.win_length, periodic=True, device=wav.device, dtype=wav.dtype)
    mode = "reflect" if wav.shape[-1] > cfg.pad else "constant"
    wav = F.pad(wav.unsqueeze(1), (cfg.pad, cfg.pad), mode=mode).squeeze(1)
    return torch.stft(wav, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                      center=False, return_complex=True)


class MelFrontend(nn.Module):
    """Waveform [B, T] (or [T]) float in [-1, 1] -> log-mel [B, n_mels, ceil(T / hop)] (or [n_mels, frames]).

    Batched, differentiable, runs on whatever device the module is on, never under autocast. ``compute_dtype`` None
    means float64 on CPU (log-mel within 1e-4 of a float64 reference even in near-silent bands, at ~1 ms per second
    of audio) and float32 on accelerators (MPS has no float64; CUDA float32 differs by < 1e-3 in the quietest bands).
    The output is float32.
    """

    def __init__(self, config: MelConfig | None = None, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.config = config or MelConfig()
        self.compute_dtype = compute_dtype
        self.register_buffer("window", torch.hann_window(self.config.win_length, periodic=True), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(self.config)), persistent=False)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] -> linear STFT magnitude [B, n_fft // 2 + 1, frames]."""
        c = self.config
        if wav.shape[-1] == 0:
            raise ValueError("MelFrontend: got an empty waveform (0 samples)")
        dtype = self.compute_dtype or (torch.float64 if wav.device.type == "cpu" else torch.float32)
        wav = wav.to(dtype)
        rem = (-wav.shape[-1]) % c.hop_length
        if rem:
            wav = F.pad(wav, (0, rem))
        return stft_frames(wav, c, self.window.to(dtype)).abs()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav.unsqueeze(0)
        if wav.dim() != 2:
            raise ValueError(f"MelFrontend: expected waveform [B, T] or [T], got shape {tuple(wav.shape)}")
        with torch.autocast(device_type=wav.device.type, enabled=False):
            mag = self.magnitude(wav)
            mel = torch.matmul(self.mel_basis.to(mag.dtype), mag)
            logmel = torch.log(torch.clamp(mel, min=self.config.log_floor)).float()
        return logmel[0] if squeeze else logmel


@functools.lru_cache(maxsize=8)
def _peak_dictionary(cfg: MelConfig, fine_below_hz: float = 2000.0, oversample: int = 4,
                     half_width: int = 4) -> torch.Tensor:
    """K: float32 [n_freqs, atoms]. Each column is the analysis window's magnitude response (what one steady sinusoid
    leaves in an STFT frame) centred at one frequency, truncated to +-half_width bins. Centres lie every
    1 / oversample bin below ``fine_below_hz`` (where mel bands are a few bins wide, so where in its band a partial
    sits is recoverable from the neighbouring bands) and every bin above (where bands are wide and it is not)."""
    bin_hz = cfg.sample_rate / cfg.n_fft
    fine = min(cfg.n_freqs - 1, int(fine_below_hz / bin_hz))
    centres = torch.cat([torch.arange(fine * oversample), torch.arange(fine, cfg.n_freqs) * oversample])
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    response = torch.fft.rfft(F.pad(window, (0, cfg.n_fft * oversample - cfg.win_length))).abs()
    response = response / response[0]  # response[d] = window response d / oversample bins off centre
    offset = (torch.arange(cfg.n_freqs)[:, None] * oversample - centres[None, :]).abs()
    inside = offset <= half_width * oversample
    return torch.where(inside, response[offset.clamp(max=half_width * oversample)], 0.0).float()


@functools.lru_cache(maxsize=8)
def _peak_operator(cfg: MelConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, A, A^T, pinv) for mel_to_magnitude: A = mel filterbank @ K [n_mels, atoms] (about 4% non-zero, so A and
    A^T are also returned as CSR for the CPU), pinv = filterbank pseudo-inverse [n_freqs, n_mels]."""
    basis = torch.from_numpy(mel_filterbank(cfg))
    peaks = _peak_dictionary(cfg)
    a = basis @ peaks
    a = torch.where(a > 1e-9 * a.max(), a, 0.0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with a dense matrix is all we use
        warnings.simplefilter("ignore")
        return peaks, a.to_sparse_csr(), a.T.contiguous().to_sparse_csr(), torch.linalg.pinv(basis)


def as_batch(x: torch.Tensor, rows: int, caller: str, what: str) -> tuple[torch.Tensor, bool]:
    """[rows, F] or [B, rows, F] -> ([B, rows, F], whether a batch axis was added); anything else is a ValueError."""
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[1] != rows:
        raise ValueError(f"{caller}: expected {what} [B, {rows}, frames], got {tuple(x.shape)}")
    return x, squeeze


@torch.no_grad()
def mel_to_magnitude(logmel: torch.Tensor, config: MelConfig | None = None, n_iter: int = 300) -> torch.Tensor:
    """Log-mel [B, n_mels, F] -> linear STFT magnitude [B, n_fft // 2 + 1, F] (float32, >= 0; not differentiable).

    The filterbank pseudo-inverse (``n_iter=0``) spreads each partial over its mel band and its peak lands near the
    band's centre: at 64 bands over 8 kHz a 131 Hz marimba C3 comes back near 138 Hz, +85 cents. Instead each frame
    is modelled as a non-negative sum of window responses (one per possible steady sinusoid, centred every quarter
    bin below 2 kHz and every bin above) and the weights are fitted to the mel energies by least squares with Lee &
    Seung's multiplicative updates (NIPS 2000, eq. 4), started from the pseudo-inverse; ``n_iter`` updates (300: a
    partial lands within about 10 cents of where it was; 1.28 s of audio costs ~0.1 s on 2 CPU cores).
    """
    cfg = config or MelConfig()
    logmel, squeeze = as_batch(logmel, cfg.n_mels, "mel_to_magnitude", "log-mel")
    b, n_mels, frames = logmel.shape
    mel = torch.exp(logmel.float()).transpose(0, 1).reshape(n_mels, b * frames)  # every frame is one column
    peaks, a, a_t, pinv = _peak_operator(cfg)
    mag = torch.clamp(pinv.to(mel.device) @ mel, min=0.0)
    if n_iter > 0:
        on_cpu = mel.device.type == "cpu"
        if not on_cpu:  # dense is fast enough on accelerators, and not every backend has CSR matmul
            a, a_t = a.to_dense(), a_t.to_dense()
        peaks, a, a_t = (t.to(mel.device) for t in (peaks, a, a_t))
        # Start from the pseudo-inverse spread over the atoms near each bin; a zero weight stays zero under the
        # updates, so start strictly positive.
        weights = torch.clamp(peaks.T @ mag, min=1e-8) / peaks.sum(0)[:, None]
        # Frames are independent; on the CPU 256 at a time stay in cache (a batch of 16 notes, 2048 frames, in one
        # piece runs 1.25x slower on 2 cores).
        size = 256 if on_cpu else weights.shape[1]
        for chunk, target in zip(weights.split(size, dim=1), mel.split(size, dim=1)):
            numerator = a_t @ target
            for _ in range(n_iter):  # in place: the element-wise work costs as much as the sparse products
                ratio = (a_t @ (a @ chunk)).add_(1e-12)
                chunk.mul_(torch.div(numerator, ratio, out=ratio))
        mag = peaks @ weights
    mag = mag.reshape(-1, b, frames).transpose(0, 1)
    return mag[0] if squeeze else mag
