import json
import math

import librosa
import numpy as np
import pytest
import torch

from audioldm.mel import MelConfig, MelConfigMismatch, MelFrontend, mel_filterbank, mel_to_magnitude
from audioldm.vocoders.griffinlim import griffin_lim


def reference_logmel(x: np.ndarray, c: MelConfig) -> np.ndarray:
    """Independent reference: float64 numpy framing + rfft, librosa's Slaney filterbank."""
    rem = (-len(x)) % c.hop_length
    x = np.pad(x.astype(np.float64), (0, rem))
    xp = np.pad(x, (c.pad, c.pad), mode="reflect")
    n = (len(xp) - c.n_fft) // c.hop_length + 1
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.win_length) / c.win_length)  # periodic Hann
    frames = np.stack([xp[i * c.hop_length: i * c.hop_length + c.n_fft] * win for i in range(n)], axis=1)
    mag = np.abs(np.fft.rfft(frames, axis=0))
    fb = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    return np.log(np.maximum(fb @ mag, c.log_floor))


def test_filterbank_matches_librosa():
    for c in [MelConfig(), MelConfig.preset("audioldm-48k")]:
        ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        np.testing.assert_allclose(mel_filterbank(c), ref, atol=1e-7, rtol=1e-4)


def test_logmel_matches_reference(tiny_notes):
    from audioldm.audio import load_audio

    out, _ = tiny_notes
    c = MelConfig()
    rng = np.random.default_rng(0)
    signals = [load_audio(out / "audio" / "violin_060_100.wav", 16000),
               load_audio(out / "audio" / "piano_048_100.wav", 16000),
               rng.uniform(-1, 1, 16000).astype(np.float32),
               (0.01 * rng.standard_normal(7777)).astype(np.float32)]
    fe = MelFrontend(c)
    for x in signals:
        ours = fe(torch.from_numpy(x)).numpy()
        ref = reference_logmel(x, c)
        assert ours.shape == ref.shape == (64, -(-len(x) // 160))
        assert np.abs(ours - ref).max() <= 1e-4


@pytest.mark.parametrize("n", [1, 100, 159, 160, 161, 433, 1000, 16000, 32001])
def test_frame_count_any_length(n):
    x = torch.randn(2, n) * 0.1
    m = MelFrontend()(x)
    assert m.shape == (2, 64, -(-n // 160)) and torch.isfinite(m).all()


def test_batched_equals_single():
    x = torch.randn(3, 8000) * 0.3
    fe = MelFrontend()
    torch.testing.assert_close(fe(x), torch.stack([fe(xi) for xi in x]))


def test_bad_input_shapes():
    fe = MelFrontend()
    with pytest.raises(ValueError, match="shape"):
        fe(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="empty"):
        fe(torch.zeros(1, 0))


def test_config_json_round_trip_and_errors():
    c = MelConfig(n_mels=80, fmax=7600.0)
    assert MelConfig.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["n_mels"] == 80
    with pytest.raises(ValueError, match="unknown MelConfig field.*n_mel"):
        MelConfig.from_dict({"n_mel": 64}, "vae/config.json")
    with pytest.raises(ValueError, match="vae/config.json: MelConfig.hop_length: expected an integer"):
        MelConfig.from_dict({"hop_length": "160"}, "vae/config.json")
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="invalid JSON"):
        MelConfig.from_json("{", "x.json")
    with pytest.raises(ValueError, match="known"):
        MelConfig.preset("nope")
    with pytest.raises(MelConfigMismatch, match="n_mels: 64 vs 80"):
        MelConfig().check_same(c, "vae and vocoder")


def test_griffin_lim_inverts(tiny_notes):
    from audioldm.audio import load_audio

    out, _ = tiny_notes
    x = torch.from_numpy(load_audio(out / "audio" / "trumpet_060_100.wav", 16000))
    fe = MelFrontend()
    m = fe(x)
    y = griffin_lim(m, n_iter=60)
    assert y.shape == (m.shape[-1] * 160,)
    err = (fe(y) - m).abs().mean().item()
    noise = (fe(torch.randn_like(x) * x.std()) - m).abs().mean().item()
    assert err < 0.5 and err < noise / 4, (err, noise)
    # deterministic for a given seed, batched shape preserved
    torch.testing.assert_close(griffin_lim(m[None], n_iter=5, seed=1)[0], griffin_lim(m, n_iter=5, seed=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randn(2, 16000) * 0.3
    torch.testing.assert_close(MelFrontend().cuda()(x.cuda()).cpu(), MelFrontend()(x), atol=1e-3, rtol=1e-4)
    m = MelFrontend()(x)  # the peak fit runs dense on CUDA, sparse on the CPU
    cpu = mel_to_magnitude(m)
    torch.testing.assert_close(mel_to_magnitude(m.cuda()).cpu(), cpu, atol=1e-3 * cpu.max().item(), rtol=1e-2)


def _peak_bin(mag: torch.Tensor) -> float:
    """Centroid (in bins) of the 3 bins around the strongest bin of a time-averaged magnitude [n_freqs, F]."""
    spectrum = mag[:, 20:-20].mean(1)
    k = int(spectrum.argmax())
    near = spectrum[k - 1:k + 2]
    return float((near * torch.arange(k - 1, k + 2)).sum() / near.sum())


@pytest.mark.parametrize("hz", [130.81, 174.61])
def test_mel_to_magnitude_puts_partials_where_they_were(hz):
    # The filterbank pseudo-inverse moves a low partial to its mel band's centre (about a semitone off here); the
    # peak fit keeps it within a quarter bin.
    t = torch.arange(16000) / 16000
    m = MelFrontend()(0.5 * torch.sin(2 * math.pi * hz * t))
    true_bin = hz / (16000 / 1024)
    assert abs(_peak_bin(mel_to_magnitude(m, n_iter=0)) - true_bin) > 0.5
    assert abs(_peak_bin(mel_to_magnitude(m)) - true_bin) < 0.25


def test_mel_to_magnitude_contract():
    cfg = MelConfig()
    m = torch.randn(3, 64, 40) - 4
    mag = mel_to_magnitude(m, n_iter=50)
    assert mag.shape == (3, cfg.n_freqs, 40) and (mag >= 0).all() and torch.isfinite(mag).all()
    torch.testing.assert_close(mel_to_magnitude(m[1], n_iter=50), mag[1])  # frames are independent of the batch
    basis = torch.from_numpy(mel_filterbank(cfg))
    pinv_mag = torch.clamp(torch.linalg.pinv(basis) @ torch.exp(m), min=0)
    torch.testing.assert_close(mel_to_magnitude(m, n_iter=0), pinv_mag)
    # the fit explains the mel energies better than the clamped pseudo-inverse does
    err = lambda mg: (torch.log(torch.clamp(basis @ mg, min=1e-5)) - m).abs().mean()  # noqa: E731
    assert err(mel_to_magnitude(m)) < err(mel_to_magnitude(m, n_iter=0))
    with pytest.raises(ValueError, match="expected log-mel"):
        mel_to_magnitude(torch.zeros(1, 80, 10))
    # a decoder output still attached to its graph is fine (the VAE recipe's preview audio does this)
    assert griffin_lim(m[0].clone().requires_grad_(), n_iter=2).shape == (40 * 160,)
