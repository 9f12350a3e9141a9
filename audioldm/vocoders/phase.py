"""Phase retrieval from an STFT magnitude, in the mel front-end's framing: a vectorised phase-gradient heuristic
(PGHI) and fast Griffin-Lim started from any phase.

magnitude [B, n_fft // 2 + 1, F] -> phase [B, n_fft // 2 + 1, F] (radians) -> waveform [B, F * hop].

**Why.** Griffin-Lim from a random phase is fine on a real STFT magnitude but loses timbre on an *estimated* one
(the mel's peak fit): no signal has exactly that magnitude, and sixty iterations from noise settle on a phase that
smears partials. The phase-gradient heuristic (Průša, Balazs & Søndergaard 2017, "A noniterative method for
reconstruction of phase from STFT magnitude", eq. 20-22 for a Gaussian window; a Hann window of length L is close to
the Gaussian of time spread lambda = 0.25645 L^2) reads the phase's derivatives off the log-magnitude:

- along time, a bin's phase advances per frame by ``a * (2 pi m / M + (M / lambda) * d log|S| / dm)``
  (the partial's instantaneous frequency: how far the peak sits from bin m);
- along frequency, in frame-centred phase, it changes per bin by ``-(lambda / (a M)) * d log|S| / dn``
  (an event's time offset from the frame centre), with hop a and FFT size M.

PGHI integrates these from the largest coefficient outwards through a heap. Here the integration is vectorised per
frame instead: every spectral peak (the maximum of each basin between two magnitude minima along frequency) takes the
phase its bin reached in the previous frame plus the time-direction advance (trapezoid rule); every other bin of the
basin takes its peak's phase plus the frequency-direction integral from the peak. That keeps each partial's main lobe
phase-locked, as the heap does, at the cost of one small vector step per frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..mel import MelConfig

__all__ = ["synthesis_window", "istft_frames", "pghi_phase", "fast_griffin_lim"]

HANN_LAMBDA = 0.25645  # the Gaussian whose time spread matches a Hann window of length L has lambda = 0.25645 L^2


def synthesis_window(cfg: MelConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """The analysis window of :func:`audioldm.mel.stft_frames` as the inverse needs it: periodic Hann of win_length,
    zero-padded to n_fft at the centre (what torch.stft does): [n_fft]."""
    w = torch.hann_window(cfg.win_length, periodic=True, device=device, dtype=dtype)
    left = (cfg.n_fft - cfg.win_length) // 2
    return F.pad(w, (left, cfg.n_fft - cfg.win_length - left))


def _overlap_add(window: torch.Tensor, hop: int, frames: int):
    """synth(spec [B, n_fft // 2 + 1, frames]) -> the windowed overlap-add of its frames, normalised by the summed
    squared window: the padded signal [B, (frames - 1) * hop + n_fft]. The envelope is computed once per call of
    this function, so an iterative caller pays for it once."""
    n_fft = window.shape[0]
    total = (frames - 1) * hop + n_fft
    env = F.fold((window ** 2)[None, :, None].expand(1, n_fft, frames), (1, total), (1, n_fft), stride=(1, hop))
    inv_env = 1.0 / env.reshape(1, total).clamp(min=1e-8)

    def synth(spec: torch.Tensor) -> torch.Tensor:
        out = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]
        return F.fold(out, (1, total), (1, n_fft), stride=(1, hop)).reshape(spec.shape[0], total) * inv_env
    return synth


def istft_frames(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Complex frames [B, n_fft // 2 + 1, F] -> waveform [B, length], inverting the mel framing (pad
    (n_fft - hop) / 2, no centering; ``window``: [n_fft]) by windowed overlap-add normalised by the summed squared
    window."""
    pad = (window.shape[0] - hop) // 2
    return _overlap_add(window, hop, spec.shape[-1])(spec)[:, pad:pad + length]


def _basin_peaks(log_mag: torch.Tensor) -> torch.Tensor:
    """log|S| [R, K] -> long [R, K]: for each bin, the index of the peak of its basin (the stretch between two
    local minima along frequency)."""
    r, k = log_mag.shape
    pad = F.pad(log_mag, (1, 1), value=float("inf"))
    is_min = (log_mag < pad[:, :-2]) & (log_mag <= pad[:, 2:])
    seg = torch.cumsum(is_min.long(), dim=1) + torch.arange(r, device=log_mag.device)[:, None] * (k + 1)
    seg_max = torch.full((r * (k + 1),), -float("inf"), device=log_mag.device, dtype=log_mag.dtype)
    seg_max = seg_max.scatter_reduce(0, seg.reshape(-1), log_mag.reshape(-1), "amax")
    at_max = log_mag >= seg_max[seg]
    bins = torch.arange(k, device=log_mag.device).expand(r, k)
    peak = torch.full((r * (k + 1),), -1, device=log_mag.device, dtype=torch.long)
    peak = peak.scatter_reduce(0, seg.reshape(-1), torch.where(at_max, bins, -1).reshape(-1), "amax")
    return peak[seg]


@torch.no_grad()
def pghi_phase(mag: torch.Tensor, cfg: MelConfig | None = None, floor: float = 1e-5) -> torch.Tensor:
    """STFT magnitude [B, K, F] (K = n_fft // 2 + 1, the mel front-end's framing) -> phase [B, K, F] in radians,
    by the phase-gradient heuristic with per-frame peak locking (module docstring). ``floor`` clamps the magnitude
    before the logarithm (relative to each clip's maximum) so silent bins give no gradients."""
    cfg = cfg or MelConfig()
    if mag.dim() != 3 or mag.shape[1] != cfg.n_freqs:
        raise ValueError(f"pghi_phase: expected magnitude [B, {cfg.n_freqs}, frames], got {tuple(mag.shape)}")
    b, k, n = mag.shape
    m_fft, a = cfg.n_fft, cfg.hop_length
    lam = HANN_LAMBDA * cfg.win_length ** 2
    mag = mag.double()
    peak_level = mag.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)
    s = torch.log(torch.maximum(mag, floor * peak_level))
    # derivatives by central differences (one-sided at the edges)
    ds_dm = torch.gradient(s, dim=1)[0]
    ds_dn = torch.gradient(s, dim=2)[0] if n > 1 else torch.zeros_like(s)
    bins = torch.arange(k, device=mag.device, dtype=s.dtype)[None, :, None]
    advance = a * (2 * math.pi * bins / m_fft + (m_fft / lam) * ds_dm)  # radians per frame, [B, K, F]
    slope = -(lam / (a * m_fft)) * ds_dn  # radians per bin, frame-centred phase
    # C[m] = integral of the frequency slope from bin 0 to bin m (trapezoid rule)
    c = F.pad(torch.cumsum(0.5 * (slope[:, 1:] + slope[:, :-1]), dim=1), (0, 0, 1, 0))
    peaks = _basin_peaks(s.permute(0, 2, 1).reshape(b * n, k)).reshape(b, n, k).permute(0, 2, 1)
    offset = (c - torch.gather(c, 1, peaks)).permute(2, 0, 1).contiguous()  # [F, B, K]: bin minus its peak
    step = (0.5 * (advance[:, :, 1:] + advance[:, :, :-1])).permute(2, 0, 1).contiguous()  # [F - 1, B, K]
    peaks = peaks.permute(2, 0, 1).contiguous()
    phase = torch.empty(n, b, k, dtype=s.dtype, device=mag.device)
    phase[0] = offset[0] + 0.0  # frame 0: each basin from phase 0 at its peak
    for j in range(1, n):
        cand = phase[j - 1] + step[j - 1]
        torch.add(torch.gather(cand, 1, peaks[j]), offset[j], out=phase[j])
    phase = phase.permute(1, 2, 0)
    # frame-centred -> frame-start phase (the DFT origin of mel.stft_frames / istft_frames): minus pi per bin
    return torch.remainder(phase - math.pi * bins, 2 * math.pi).float()


def fast_griffin_lim(mag: torch.Tensor, phase: torch.Tensor, cfg: MelConfig | None = None, n_iter: int = 8,
                     momentum: float = 0.99) -> torch.Tensor:
    """Refine ``phase`` for magnitude ``mag`` (both [B, K, F]) with ``n_iter`` fast Griffin-Lim iterations (Perraudin,
    Balazs & Søndergaard 2013) and return the waveform [B, F * hop]. Differentiable with respect to ``mag`` (the
    spectral vocoder trains through it); call it under ``torch.no_grad()`` otherwise.

    Each iteration overlap-adds the frames into the padded signal and cuts the same frames out again (the two edge
    frames then see the overlap-added edge instead of the analysis' reflection, a difference confined to the first
    and last (n_fft - hop) / 2 samples), which saves the re-padding of a full STFT round trip."""
    cfg = cfg or MelConfig()
    mag = mag.float()
    n_fft, hop, frames = cfg.n_fft, cfg.hop_length, mag.shape[-1]
    window = synthesis_window(cfg, mag.device)
    synth = _overlap_add(window, hop, frames)
    spec = torch.polar(mag, phase.float())
    prev = spec
    for _ in range(n_iter):
        rebuilt = torch.fft.rfft(synth(spec).unfold(-1, n_fft, hop) * window, dim=-1).transpose(1, 2)
        proj = mag * torch.sgn(rebuilt)
        spec = proj + momentum * (proj - prev)
        prev = proj
    pad = (n_fft - hop) // 2
    return synth(prev)[:, pad:pad + frames * hop]
