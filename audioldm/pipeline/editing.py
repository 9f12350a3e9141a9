"""Audio-to-audio with a loaded :class:`~audioldm.pipeline.AudioLDM`:

- :func:`transform` — SDEdit (Meng et al. 2022): noise the input's latents to ``strength`` of the schedule and
  denoise under a new prompt/labels (style transfer at high strength, variations at low strength).
- :func:`inpaint` — regenerate the time range [start, end): the latents outside it are held to the input's at every
  step (the clean estimate is replaced there), and the output waveform outside the range is the input, sample-exact,
  with short crossfades inside the range.
- :func:`super_resolve` — the same latent replacement over the mel bands below a cutoff; the output keeps the input's
  STFT below the cutoff and takes the generated one above it.

:class:`EditingMethods` gives :class:`~audioldm.pipeline.AudioLDM` the three as methods.

Inputs: a path (loaded and resampled to the model rate), or an array/tensor [T] or [B, T] at the model rate (or at
``sample_rate``, then resampled). One prompt/label dict applies to every row; a list gives one per row.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..audio import AudioError, load_audio, resample
from ..mel import mel_filterbank
from ..seeding import mix_seed, randn_per_sample
from .requests import request_reads
from .settings import GenerationResult

__all__ = ["transform", "inpaint", "super_resolve", "splice_time", "splice_bands", "EditingMethods"]


def _input_audio(pipe, audio, sample_rate: int | None) -> torch.Tensor:
    """-> float32 [B, T] at the model rate."""
    sr = pipe.sample_rate
    if isinstance(audio, (str, Path)):
        return torch.from_numpy(load_audio(audio, sr))[None]
    arr = audio.detach().cpu().float().numpy() if torch.is_tensor(audio) else np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise AudioError(f"audio: expected a waveform [T] or [B, T] with T > 0, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise AudioError("audio: contains NaN or Inf samples")
    if sample_rate is None:
        import warnings
        warnings.warn(f"audio given as an array without sample_rate: taken to be at the model's {sr} Hz; pass "
                      f"sample_rate= if it is not", UserWarning, stacklevel=4)
    elif sample_rate != sr:
        arr = np.stack([resample(row, sample_rate, sr) for row in arr])
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _setup(pipe, audio, prompt, labels, sample_rate, steps, guidance, sampler, seed):
    wav = _input_audio(pipe, audio, sample_rate)
    b = wav.shape[0]
    if prompt is not None and not isinstance(prompt, str) and len(prompt) != b:
        raise ValueError(f"prompt: got {len(prompt)} prompts for {b} audio rows")
    if labels is not None and not isinstance(labels, dict) and len(labels) != b:
        raise ValueError(f"labels: got {len(labels)} label dicts for {b} audio rows")
    one = isinstance(prompt, str) or isinstance(labels, dict)
    prompts, label_list = pipe.requests(prompt, labels, b if one else 1)
    s = pipe.settings(wav.shape[1] / pipe.sample_rate, steps, guidance, sampler)
    frames = pipe.mel_config.num_frames(wav.shape[1])
    shape = pipe.latent_shape(frames)
    z0 = pipe.encode(wav, shape[1] * pipe.vae.config.downsample)
    return wav, prompts, label_list, s, pipe.seeds_for(seed, b), frames, shape, z0


def _result(pipe, wav_out, mel, z, prompts, labels, seeds, params):
    params = {**params, "seeds": seeds, "model": pipe.name, "answered_by": pipe.name,
              "audioldm_version": __version__}
    reads = request_reads(pipe.conditioner, prompts, labels)  # what the model read, as generate() records it
    return GenerationResult(wav_out.cpu().numpy().astype(np.float32), pipe.sample_rate, mel.cpu(), z.cpu(),
                            prompts, labels, seeds, params, reads)


def transform(pipe, audio, prompt=None, labels=None, strength: float = 0.6, steps: int | None = None,
              guidance: float | None = None, sampler: str | None = None, seed=None, negative_prompt=None,
              negative_labels=None, sample_rate: int | None = None, progress: bool = True):
    """SDEdit. ``strength`` in [0, 1]: 0 returns the VAE + vocoder reconstruction, 1 starts from (almost) pure noise;
    ``steps`` counts the full schedule, of which the last ``round(steps * strength)`` are run."""
    if not (isinstance(strength, (int, float)) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    wav, prompts, labels_, s, seeds, frames, shape, z0 = _setup(pipe, audio, prompt, labels, sample_rate, steps,
                                                                guidance, sampler, seed)
    sig = pipe.sampling_sigmas(s["steps"])
    k = s["steps"] - int(round(s["steps"] * strength))
    noise = randn_per_sample([mix_seed(x, -1) for x in seeds], shape, pipe.device)
    y = z0 + float(sig[k]) * noise  # the input at noise level sigma_k (y = x0 + sigma eps)
    cond, uncond = pipe.conditions(prompts, labels_, negative_prompt, negative_labels)
    with pipe.progress_bar(s["steps"] - k, progress, "transform") as bar:
        z = pipe.denoise_latents(y, sig[k:], cond, uncond, s["guidance"], s["sampler"], seeds, bar=bar)
    mel, out = pipe.decode(z, frames, wav.shape[1])
    return _result(pipe, out, mel, z, prompts, labels_, seeds, {**s, "mode": "transform", "strength": strength})


def splice_time(orig: torch.Tensor, gen: torch.Tensor, start: int, end: int, fade: int) -> torch.Tensor:
    """[B, T] -> orig outside samples [start, end), gen inside, with linear crossfades of ``fade`` samples placed
    inside the range (so the output outside it is exactly ``orig``)."""
    w = torch.zeros(orig.shape[-1])
    w[start:end] = 1.0
    f = max(0, min(fade, (end - start) // 2))
    if f:
        ramp = torch.arange(1, f + 1, dtype=torch.float32) / (f + 1)
        w[start:start + f] = ramp
        w[end - f:end] = ramp.flip(0)
    w = w.to(orig.device)
    return orig * (1 - w) + gen.to(orig.device) * w


def inpaint(pipe, audio, start: float, end: float, prompt=None, labels=None, steps: int | None = None,
            guidance: float | None = None, sampler: str | None = None, seed=None, negative_prompt=None,
            negative_labels=None, sample_rate: int | None = None, fade: float = 0.02, progress: bool = True):
    """Regenerate seconds [start, end) of each row; the rest of the output equals the input."""
    wav, prompts, labels_, s, seeds, frames, shape, z0 = _setup(pipe, audio, prompt, labels, sample_rate, steps,
                                                                guidance, sampler, seed)
    dur = wav.shape[1] / pipe.sample_rate
    if not (0.0 <= start < end <= dur + 1e-9):
        raise ValueError(f"inpaint: need 0 <= start < end <= {dur:.3f} s (the input's duration), got [{start}, {end})")
    s0, s1 = int(round(start * pipe.sample_rate)), min(int(round(end * pipe.sample_rate)), wav.shape[1])
    per_latent = pipe.mel_config.hop_length * pipe.vae.config.downsample  # samples per latent frame
    m = torch.ones(1, 1, shape[1], 1, device=pipe.device)
    m[:, :, s0 // per_latent: -(-s1 // per_latent)] = 0
    with pipe.progress_bar(s["steps"], progress, "inpaint") as bar:
        z = pipe.sample_from_noise(prompts, labels_, s, seeds, shape, negative_prompt, negative_labels,
                                   keep=(z0, m), bar=bar)
    mel, gen = pipe.decode(z, frames, wav.shape[1])
    out = splice_time(wav.to(gen.device), gen, s0, s1, int(fade * pipe.sample_rate))
    return _result(pipe, out, mel, z, prompts, labels_, seeds,
                   {**s, "mode": "inpaint", "start": start, "end": end, "fade": fade})


def splice_bands(orig: torch.Tensor, gen: torch.Tensor, cutoff_hz: float, sample_rate: int, n_fft: int = 1024,
                 crossover_hz: float = 100.0) -> torch.Tensor:
    """[B, T] -> STFT of ``orig`` below ``cutoff_hz`` and of ``gen`` above, with a linear crossover of
    ``crossover_hz`` just above the cutoff; inverse STFT back to [B, T]."""
    win = torch.hann_window(n_fft, device=orig.device)
    spec = lambda x: torch.stft(x, n_fft, n_fft // 4, window=win, return_complex=True)  # noqa: E731
    a, b = spec(orig), spec(gen.to(orig.device))
    freqs = torch.arange(a.shape[1], device=orig.device) * sample_rate / n_fft
    w = ((freqs - cutoff_hz) / max(crossover_hz, 1e-6)).clamp(0, 1)[:, None]  # 0 = keep orig, 1 = take gen
    return torch.istft(a * (1 - w) + b * w, n_fft, n_fft // 4, window=win, length=orig.shape[-1])


def super_resolve(pipe, audio, cutoff_hz: float = 4000.0, prompt=None, labels=None, steps: int | None = None,
                  guidance: float | None = None, sampler: str | None = None, seed=None, negative_prompt=None,
                  negative_labels=None, sample_rate: int | None = None, progress: bool = True):
    """Keep the input below ``cutoff_hz`` (its latent columns are held, its STFT bins are copied) and generate the
    bands above it."""
    nyq = pipe.sample_rate / 2
    if not (isinstance(cutoff_hz, (int, float)) and 0 < cutoff_hz < nyq):
        raise ValueError(f"cutoff_hz must be in (0, {nyq:g}) Hz, got {cutoff_hz!r}")
    wav, prompts, labels_, s, seeds, frames, shape, z0 = _setup(pipe, audio, prompt, labels, sample_rate, steps,
                                                                guidance, sampler, seed)
    # a latent column is kept when every mel band it covers lies below the cutoff
    fb = mel_filterbank(pipe.mel_config)  # [n_mels, n_freqs]
    hz = np.arange(fb.shape[1]) * pipe.sample_rate / pipe.mel_config.n_fft
    band_top = np.array([hz[np.nonzero(row)[0].max()] if row.any() else 0.0 for row in fb])
    d = pipe.vae.config.downsample
    col_top = band_top.reshape(-1, d).max(1)
    m = torch.from_numpy((col_top <= cutoff_hz).astype(np.float32)).to(pipe.device).view(1, 1, 1, -1)
    with pipe.progress_bar(s["steps"], progress, "super-resolve") as bar:
        z = pipe.sample_from_noise(prompts, labels_, s, seeds, shape, negative_prompt, negative_labels,
                                   keep=(z0, m), bar=bar)
    mel, gen = pipe.decode(z, frames, wav.shape[1])
    out = splice_bands(wav.to(gen.device), gen, cutoff_hz, pipe.sample_rate)
    return _result(pipe, out, mel, z, prompts, labels_, seeds,
                   {**s, "mode": "super_resolve", "cutoff_hz": cutoff_hz, "kept_latent_columns": int(m.sum())})


def _route(kw: dict, mode: str = "") -> tuple:
    """The settings of an editing call that decide which model answers (AudioLDM.answering). ``loop=True`` is
    refused, naming the mode: an edit keeps its input's own ends."""
    if kw.pop("loop", False):
        raise ValueError(f"{mode}: loop=True is not supported in this mode (it keeps the input's own start and end); "
                         f"generate(..., loop=True) makes loops")
    return tuple(kw.get(k) for k in ("steps", "guidance", "sampler", "negative_prompt", "negative_labels"))


def continue_audio(pipe, audio, seconds: float, prompt=None, labels=None, sample_rate: int | None = None,
                   fade: float = 0.02, **kw):
    """``audio`` followed by ``seconds`` of new audio that starts from its end: the input is kept sample-exact and the
    appended part is inpainted in context (its latents generated, the input's held at every step, in windows when
    long), so level and spectrum carry across the join."""
    if not (isinstance(seconds, (int, float)) and 0 < seconds):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if isinstance(audio, (str, Path)) and sample_rate is None:
        import soundfile as sf
        try:
            rate = sf.info(str(audio)).samplerate  # the header alone
        except Exception:  # noqa: BLE001 - load_audio below names the file and what is wrong with it
            rate = pipe.sample_rate
        if rate != pipe.sample_rate:
            print(f"note: {audio} is {rate} Hz; resampled to the model's {pipe.sample_rate} Hz", file=sys.stderr)
    wav = _input_audio(pipe, audio, sample_rate)
    if not float(wav.abs().max()) > 1e-4:
        raise ValueError("continue: the given audio is silent (peak below -80 dBFS); there is nothing to continue")
    n, extra = wav.shape[1], int(round(seconds * pipe.sample_rate))
    padded = torch.nn.functional.pad(wav, (0, extra))
    res = inpaint(pipe, padded, n / pipe.sample_rate, (n + extra) / pipe.sample_rate, prompt=prompt, labels=labels,
                  sample_rate=pipe.sample_rate, fade=fade, **kw)
    res.params.update(mode="continue", given_seconds=n / pipe.sample_rate, seconds=seconds)
    return res


class EditingMethods:
    """``transform``, ``inpaint`` and ``super_resolve`` as methods of the pipeline class that inherits this."""

    def transform(self, audio, prompt=None, labels=None, strength: float = 0.6, **kw) -> GenerationResult:
        """SDEdit: noise the input's latents to ``strength`` of the schedule and denoise under the new condition."""
        pipe = self.answering(*_route(kw, "transform"))
        return transform(pipe, audio, prompt=prompt, labels=labels, strength=strength, **kw)

    def inpaint(self, audio, start: float, end: float, prompt=None, labels=None, **kw) -> GenerationResult:
        """Regenerate seconds [start, end) of ``audio`` in context; everything outside is kept sample-exact."""
        pipe = self.answering(*_route(kw, "inpaint"))
        return inpaint(pipe, audio, start, end, prompt=prompt, labels=labels, **kw)

    def continue_audio(self, audio, seconds: float, prompt=None, labels=None, **kw) -> GenerationResult:
        """``audio`` (kept exactly) followed by ``seconds`` of new audio that continues it."""
        pipe = self.answering(*_route(kw, "continue_audio"))
        return continue_audio(pipe, audio, seconds, prompt=prompt, labels=labels, **kw)

    def super_resolve(self, audio, cutoff_hz: float = 4000.0, prompt=None, labels=None, **kw) -> GenerationResult:
        """Keep the input below ``cutoff_hz`` and generate the bands above it."""
        pipe = self.answering(*_route(kw, "super_resolve"))
        return super_resolve(pipe, audio, cutoff_hz, prompt=prompt, labels=labels, **kw)
