import os

import numpy as np
import pytest
import soundfile as sf

from audioldm.audio import AudioError, audio_info, load_audio, pad_or_crop, peak_normalize, save_audio
from conftest import sine


def dominant_freq(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", None), ("ogg", None),
                                         ("aiff", None)])
@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_formats_rates_channels(tmp_path, ext, subtype, sr):
    path = tmp_path / f"x.{ext}"
    sf.write(path, sine(freq=1000.0, sr=sr, seconds=0.5, channels=2), sr, subtype=subtype)
    x = load_audio(path, 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 8000) <= 1
    assert abs(dominant_freq(x, 16000) - 1000.0) < 5.0
    # downmix averages channels: channel gains 0.5 and 0.75 -> mean 0.625 of amp 0.5
    assert abs(np.abs(x[1000:-1000]).max() - 0.3125) < 0.03


def test_resampler_is_band_limited(tmp_path):
    # A 7.5 kHz tone at 44.1 kHz is kept; a 12 kHz one (above the 8 kHz Nyquist of 16 kHz) must be removed,
    # not aliased to 4 kHz.
    path = tmp_path / "hf.wav"
    sf.write(path, sine(7500, 44100, 1.0, 0.4) + sine(12000, 44100, 1.0, 0.4), 44100, subtype="FLOAT")
    x = load_audio(path, 16000)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    at = lambda f: spec[np.argmin(np.abs(freqs - f))]
    assert at(7500) > 1000 * at(4000)


def test_keep_channels_and_native_rate(tmp_path):
    path = tmp_path / "st.wav"
    sf.write(path, sine(sr=22050, channels=3), 22050)
    x = load_audio(path, None, mono=False)
    assert x.shape == (3, 22050)


def test_eight_channel_96k(tmp_path):
    path = tmp_path / "many.wav"
    sf.write(path, sine(sr=96000, seconds=0.25, channels=8), 96000)
    assert load_audio(path, 16000).shape == (4000,)


def _expect(path, *words):
    with pytest.raises(AudioError) as e:
        load_audio(path, 16000)
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg.lower(), msg


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.wav", "not found")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _expect(p, "empty")


def test_corrupt_file(tmp_path):
    p = tmp_path / "corrupt.wav"
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + os.urandom(40))
    _expect(p, "corrupt")


def test_truncated_wav(tmp_path, write_sine):
    p = write_sine("full.wav")
    data = p.read_bytes()
    q = tmp_path / "truncated.wav"
    q.write_bytes(data[: len(data) // 2])
    _expect(q, "truncated")


def test_truncated_flac(tmp_path):
    p = tmp_path / "full.flac"
    sf.write(p, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    q = tmp_path / "truncated.flac"
    q.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    _expect(q, "truncated")


def test_zero_length(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    _expect(p, "zero-length")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_samples(tmp_path, bad):
    p = tmp_path / "nan.wav"
    x = sine()
    x[100] = bad
    sf.write(p, x, 16000, subtype="FLOAT")
    _expect(p, "nan/inf")


def test_unsupported_format(tmp_path):
    p = tmp_path / "notes.xyz"
    p.write_text("this is not audio " * 20)
    _expect(p, "unsupported")


def test_directory_is_not_audio(tmp_path):
    _expect(tmp_path, "directory")


def test_save_atomic_and_no_overwrite(tmp_path):
    p = tmp_path / "sub" / "out.wav"
    save_audio(p, sine(), 16000)
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="out.wav"):
        save_audio(p, sine(freq=880), 16000)
    assert p.read_bytes() == before
    save_audio(p, sine(freq=880), 16000, overwrite=True)
    assert p.read_bytes() != before
    assert sorted(os.listdir(p.parent)) == ["out.wav"]  # no temp files left behind
    np.testing.assert_allclose(load_audio(p, 16000), sine(freq=880), atol=1e-4)


def test_save_failure_leaves_nothing(tmp_path):
    p = tmp_path / "bad.wav"
    with pytest.raises(AudioError, match="NaN"):
        save_audio(p, np.full(100, np.nan, np.float32), 16000)
    with pytest.raises(AudioError, match="extension"):
        save_audio(tmp_path / "bad.nope", sine(), 16000)
    assert os.listdir(tmp_path) == []


def test_info(write_sine):
    p = write_sine("i.wav", sr=22050, seconds=0.5, amp=0.5)
    info = audio_info(p)
    assert info["sample_rate"] == 22050 and info["channels"] == 1
    assert abs(info["duration"] - 0.5) < 1e-6
    assert abs(info["peak"] - 0.5) < 1e-3 and abs(info["rms"] - 0.5 / np.sqrt(2)) < 1e-3


def test_peak_normalize_and_pad_crop():
    x = sine(amp=0.2)
    assert abs(np.abs(peak_normalize(x, 0.9)).max() - 0.9) < 1e-6
    assert not peak_normalize(np.zeros(10, np.float32)).any()
    assert pad_or_crop(x, 20000).shape == (20000,) and not pad_or_crop(x, 20000)[16000:].any()
    np.testing.assert_array_equal(pad_or_crop(x, 100, offset=50), x[50:150])
    rng = np.random.default_rng(0)
    crops = {pad_or_crop(np.arange(1000), 10, offset=None, rng=rng)[0] for _ in range(20)}
    assert len(crops) > 1 and all(0 <= c <= 990 for c in crops)


def test_long_files_and_regions_are_read_in_blocks(tmp_path):
    """A mono read of a long file streams it (downmix and resample block by block) and equals the one-shot read; a
    region (start, duration) is read alone and equals the same slice of the file at its own rate."""
    import soundfile as sf

    from audioldm import audio as A

    sr, n = 48000, A.STREAM_FRAMES + 123_457  # over the streaming threshold
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((n, 3))).astype(np.float32)
    sf.write(tmp_path / "long.flac", x, sr, subtype="PCM_24")
    full, _ = A._read(tmp_path / "long.flac")
    streamed = A.load_audio(tmp_path / "long.flac", 16000)
    one_shot = A.resample(A.to_mono(full.T), sr, 16000)
    assert streamed.shape == one_shot.shape
    np.testing.assert_allclose(streamed, one_shot, atol=2e-4)
    region = A.load_audio(tmp_path / "long.flac", start=10.0, duration=2.5)
    np.testing.assert_allclose(region, A.to_mono(full.T)[480000:600000], atol=1e-7)
    assert A.load_audio(tmp_path / "long.flac", 16000, start=10.0, duration=2.5).shape == (40000,)
    with pytest.raises(A.AudioError, match="start=999.0 s is outside the file"):
        A.load_audio(tmp_path / "long.flac", 16000, start=999.0)
