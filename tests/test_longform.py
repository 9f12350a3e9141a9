"""Any length (pipeline/longform.py): windowed denoising fused at every step, chunked decoding, continuation and
seamless loops."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from audioldm import AudioLDM
from audioldm.pipeline.longform import decode_chunked, window_starts, windowed_denoiser


def test_windows_cover_the_axis():
    assert window_starts(52, 52, 26) == [0]
    assert window_starts(130, 52, 26) == [0, 26, 52, 78]
    starts = window_starts(130, 52, 26, circular=True)
    covered = {(s + i) % 130 for s in starts for i in range(52)}
    assert covered == set(range(130)) and len(starts) >= 2
    with pytest.raises(ValueError, match="hop"):
        window_starts(100, 10, 20)


def test_one_window_is_the_plain_denoiser_and_fusion_is_exact_for_a_local_one():
    den = lambda y, s: y * 0.5 + s  # noqa: E731  (each frame's estimate depends on that frame alone)
    assert windowed_denoiser(den, 40, 52, 26) is den  # fits: one-shot generation unchanged
    y = torch.randn(2, 3, 130, 4)
    for circular in (False, True):
        fused = windowed_denoiser(den, 130, 52, 26, circular=circular)
        torch.testing.assert_close(fused(y, 0.25), den(y, 0.25), rtol=0, atol=1e-6)


def test_chunked_decoding_equals_one_shot():
    """Exact for a decoder without global context; within a tolerance for the shipped VAE (its mid-attention and
    group norms see the whole input in a one-shot decode)."""
    local = lambda z, f: z.mean(1).repeat_interleave(4, dim=1).transpose(1, 2)[..., :f]  # noqa: E731
    z = torch.randn(1, 8, 200, 16)
    torch.testing.assert_close(decode_chunked(local, z, 790, 52, 13, 4), local(z, 790), rtol=0, atol=0)
    vae = AudioLDM.from_pretrained("gm-notes").vae
    with torch.no_grad():
        one = vae.decode_latents(z, 790)
        chunked = decode_chunked(vae.decode_latents, z, 790, 52, 13, 4)
    assert chunked.shape == one.shape
    assert (chunked - one).abs().mean() < 0.1 * one.std(), float((chunked - one).abs().mean())


def test_long_generation_uses_windows_and_continuation_keeps_the_input():
    pipe = AudioLDM.from_pretrained()
    seen = []
    real = pipe.unet.forward
    pipe.unet.forward = lambda x, *a, **k: seen.append(x.shape[2]) or real(x, *a, **k)
    res = pipe.generate("a flute playing G4", duration=6.0, seed=0, progress=False)
    assert res.audio.shape == (1, 96000) and max(seen) == pipe.window()  # the U-Net never sees more than a window
    pipe.unet.forward = real
    given = pipe.generate("a flute playing G4", seed=1, progress=False).audio[0]
    cont = pipe.continue_audio(given, 3.0, prompt="a flute playing G4", seed=2, sample_rate=pipe.sample_rate,
                               progress=False)
    out = cont.audio[0]
    assert out.shape[0] == given.shape[0] + 3 * pipe.sample_rate
    np.testing.assert_array_equal(out[:given.shape[0]], given)  # the given samples, exactly
    assert np.abs(out[given.shape[0]:]).max() > 1e-3 and cont.params["mode"] == "continue"
    with pytest.raises(ValueError, match="silent"):
        pipe.continue_audio(np.zeros(16000, np.float32), 1.0, prompt="flute G4", sample_rate=16000)
    with pytest.raises(ValueError, match="transform: loop=True is not supported"):
        pipe.transform(given, prompt="flute G4", sample_rate=16000, loop=True)


def _wrap_and_interior_flux(pipe, audio):
    """Spectral flux at the wrap point (the end played into the start) and the largest flux inside the clip."""
    k = pipe.sample_rate // 2
    flux = lambda a: np.abs(np.diff(pipe.frontend(torch.from_numpy(a)[None])[0].numpy(), axis=1)).mean(0)  # noqa
    joined = flux(np.concatenate([audio[-k:], audio[:k]]))
    mid = len(joined) // 2
    return float(joined[mid - 2: mid + 2].max()), float(flux(audio).max())


def test_a_loop_has_no_seam_where_a_plain_clip_does():
    pipe = AudioLDM.from_pretrained()
    for seed in (0, 1):
        kw = dict(duration=4.16, seed=seed, progress=False)
        wrap, inside = _wrap_and_interior_flux(pipe, pipe.generate("a soft flute playing G4", loop=True, **kw).audio[0])
        assert wrap < inside, (wrap, inside)  # the wrap is no more of a jump than the clip's own onsets
        wrap, inside = _wrap_and_interior_flux(pipe, pipe.generate("a soft flute playing G4", **kw).audio[0])
        assert wrap > inside, (wrap, inside)  # (a plain clip's end does not run into its start)


def test_memory_at_60_s_is_near_that_at_10_s():
    code = ("import resource, sys; from audioldm import AudioLDM; p = AudioLDM.from_pretrained(); "
            "p.generate('a flute playing G4', duration=float(sys.argv[1]), progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peak = {d: int(subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True,
                                  check=True).stdout.split()[-1]) for d in (10, 60)}
    print(json.dumps(peak))
    assert peak[60] < 2 * peak[10], peak  # measured 1.42 on the development machine (GL's buffers grow)


def test_loops_and_continuation_from_the_command_line(tmp_path, monkeypatch, capsys):
    from audioldm.cli import main

    monkeypatch.delenv("AUDIOLDM_MODEL", raising=False)
    (tmp_path / "p.txt").write_text("a soft flute playing G4\n")
    assert main(["export", "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "out"), "--duration", "3",
                 "--loop", "--quiet"]) == 0
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not man["failures"] and man["samples"][0]["loop"] is True
    wav = next((tmp_path / "out").glob("*.wav"))
    assert main(["continue", str(wav), "--seconds", "1", "--prompt", "a soft flute playing G4", "-o",
                 str(tmp_path / "c.wav"), "--quiet"]) == 0
    import soundfile as sf
    assert sf.info(str(tmp_path / "c.wav")).duration == pytest.approx(4.0, abs=1e-3)
    assert main(["continue", str(wav), "--seconds", "1", "-o", str(tmp_path / "d.wav"), "--loop", "--quiet"]) == 2
    assert "--loop is not supported" in capsys.readouterr().err
