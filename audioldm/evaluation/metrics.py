"""Audio metrics: multi-resolution STFT distance, log-mel L1 and real-time factor."""

from __future__ import annotations

import time

import torch

from ..mel import MelConfig, MelFrontend

__all__ = ["mrstft_distance", "logmel_l1", "real_time_factor", "pitch_error_cents", "envelope_modulation",
           "steady_tone", "steady_tone_modulation", "MRSTFT_RESOLUTIONS"]

MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), window = n_fft (Yamamoto et al. 2020)


def mrstft_distance(x: torch.Tensor, ref: torch.Tensor, resolutions=MRSTFT_RESOLUTIONS) -> torch.Tensor:
    """Multi-resolution STFT distance between waveforms [B, T] (or [T]): per resolution, spectral convergence
    ||S_ref| - |S_x||_F / ||S_ref||_F plus mean |log |S_ref| - log |S_x||, averaged over resolutions. Returns [B]."""
    if x.shape != ref.shape:
        raise ValueError(f"mrstft_distance: shapes differ, {tuple(x.shape)} vs {tuple(ref.shape)}")
    x, ref = x.float().reshape(-1, x.shape[-1]), ref.float().reshape(-1, ref.shape[-1])
    total = torch.zeros(x.shape[0], device=x.device)
    for n_fft, hop in resolutions:
        w = torch.hann_window(n_fft, device=x.device)
        sx = torch.stft(x, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-7)
        sr = torch.stft(ref, n_fft, hop, window=w, return_complex=True).abs().clamp(min=1e-7)
        sc = torch.linalg.vector_norm(sr - sx, dim=(1, 2)) / torch.linalg.vector_norm(sr, dim=(1, 2)).clamp(min=1e-7)
        mag = (sr.log() - sx.log()).abs().mean(dim=(1, 2))
        total = total + sc + mag
    return total / len(resolutions)


def logmel_l1(x: torch.Tensor, ref: torch.Tensor, mel_config: MelConfig | None = None,
              frontend: MelFrontend | None = None) -> torch.Tensor:
    """Mean |log-mel(x) - log-mel(ref)| for waveforms [B, T]: [B]."""
    fe = frontend or MelFrontend(mel_config).to(x.device)
    return (fe(x.reshape(-1, x.shape[-1])) - fe(ref.reshape(-1, ref.shape[-1]))).abs().mean(dim=(1, 2))


def real_time_factor(fn, audio_seconds: float, repeats: int = 3, sync=None) -> float:
    """Wall seconds per second of audio produced by ``fn()`` (lower is faster; 0.02 = 50x real time).
    One warm-up call is not timed; ``sync`` (e.g. torch.cuda.synchronize) runs before reading the clock."""
    fn()
    if sync:
        sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if sync:
        sync()
    return (time.perf_counter() - t) / repeats / audio_seconds


def pitch_error_cents(wav, sample_rate: int, midi: float, start: float = 0.1, end: float = 0.9) -> float:
    """Cents between the median YIN f0 of ``wav`` [T] over seconds [start, end) (the held part of a note) and MIDI
    pitch ``midi`` (librosa.yin, 40-2100 Hz, 2048-sample frames)."""
    import librosa
    import numpy as np

    x = np.asarray(wav, dtype=np.float32)[int(start * sample_rate):int(end * sample_rate)]
    f0 = librosa.yin(x, fmin=40, fmax=2100, sr=sample_rate, frame_length=2048)
    return float(1200 * np.log2(np.median(f0) / librosa.midi_to_hz(midi)))


def envelope_modulation(wav, sample_rate: int, freqs, start: float = 0.2, end: float = 0.9,
                        width_hz: float = 3.0) -> list[float]:
    """Amplitude-modulation depth of ``wav`` [T] at each of ``freqs`` (Hz) over seconds [start, end): the largest
    envelope-spectrum magnitude within +-``width_hz`` of f, as a fraction of the mean envelope (0.1 = the amplitude
    swings 10% at that rate). The envelope is the magnitude of the analytic signal; a steady tone gives ~0 at every
    rate below its partials' spacing, so a peak at the vocoder's frame rate or half of it is its own artefact."""
    import numpy as np

    x = np.asarray(wav, dtype=np.float64)[int(start * sample_rate):int(end * sample_rate)]
    n = len(x)
    spec = np.fft.fft(x)
    h = np.zeros(n)  # analytic signal: keep DC (and Nyquist), double positive frequencies, drop negative ones
    h[0] = 1
    h[1:(n + 1) // 2] = 2
    if n % 2 == 0:
        h[n // 2] = 1
    env = np.abs(np.fft.ifft(spec * h))
    mean = env.mean()
    e = np.abs(np.fft.rfft((env - mean) * np.hanning(n))) * 2 / np.hanning(n).sum()
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    return [float(e[(f >= q - width_hz) & (f <= q + width_hz)].max() / max(mean, 1e-12)) for q in freqs]


def steady_tone(midi: float, seconds: float, sample_rate: int, partials: int = 8, peak: float = 0.5):
    """A steady harmonic tone [T] (float32 numpy) at MIDI pitch ``midi``: partials k = 1.. with amplitude 1/k, those
    below Nyquist, scaled to ``peak``. Its envelope has no modulation below the partials' spacing (the f0)."""
    import numpy as np

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, partials + 1) if k * f0 < sample_rate / 2)
    return (x * peak / np.abs(x).max()).astype(np.float32)


@torch.no_grad()
def steady_tone_modulation(vocoder, pitches=(36, 40, 45, 48, 55, 60), seconds: float = 1.2, partials: int = 1) -> dict:
    """How much a vocoder modulates steady tones at its frame rate (sample_rate / hop) and at half of it: the mean
    :func:`envelope_modulation` depth of vocoder(log-mel(steady_tone(p))) over ``pitches``. The default tones are
    pure sinusoids, whose envelope is flat at every rate, from MIDI 36 (65 Hz, whose phase must advance 0.65 cycles
    per 10 ms frame) up. Returns {"half_frame_rate", "frame_rate", "hz": (half, full)}; Griffin-Lim and a clean
    vocoder give under 0.02, a vocoder whose frames repeat 0.1 or more."""
    import numpy as np

    cfg = vocoder.mel_config
    frame_rate = cfg.sample_rate / cfg.hop_length
    wav = torch.from_numpy(np.stack([steady_tone(p, seconds, cfg.sample_rate, partials) for p in pitches]))
    device = next((t.device for t in [*vocoder.parameters(), *vocoder.buffers()]), torch.device("cpu"))
    mel = MelFrontend(cfg).to(device)(wav.to(device))
    out = vocoder(mel).float().cpu().numpy()
    depths = np.array([envelope_modulation(y, cfg.sample_rate, (frame_rate / 2, frame_rate), start=0.2,
                                           end=seconds - 0.2) for y in out])
    return {"half_frame_rate": float(depths[:, 0].mean()), "frame_rate": float(depths[:, 1].mean()),
            "hz": (frame_rate / 2, frame_rate)}


def sounding_octaves(cents_by_group: dict) -> dict:
    """Whole-octave transposition at which each group (e.g. an instrument of a soundfont) sounds its notes.

    ``cents_by_group``: group -> pitch errors in cents of *real* renders against their MIDI pitch. Returns group ->
    the median error rounded to whole octaves (an int, usually 0; TimGM6mb's drawbar organ, a 16-foot stop, gives -1).
    Pitch of generated notes is then scored against MIDI pitch + 12 * octaves -- the pitch the training data sounds.
    """
    import numpy as np

    return {g: int(round(float(np.median(c)) / 1200)) for g, c in cents_by_group.items() if len(c)}


def render_pitch_errors(clips, sample_rate: int, group: str = "instrument"):
    """YIN pitch errors (cents, against each clip's ``pitch`` label) of real renders ``clips`` (data.Clip with labels
    ``pitch`` and ``group``) and the whole-octave transposition each group sounds at (see sounding_octaves).
    Returns (cents [N] numpy array, {group value: octaves})."""
    import numpy as np

    from ..audio import load_audio

    cents = np.array([pitch_error_cents(load_audio(c.path, sample_rate), sample_rate, c.labels["pitch"])
                      for c in clips])
    groups = {}
    for e, c in zip(cents, clips):
        groups.setdefault(c.labels[group], []).append(e)
    return cents, sounding_octaves(groups)
