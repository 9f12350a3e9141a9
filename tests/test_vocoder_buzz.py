"""Every neural vocoder class, briefly trained on a few TimGM6mb notes, turns steady tones into steady tones: the
envelope of its output has no peak at the frame rate (100 Hz for hop 160) or half of it. A vocoder whose frames
repeat on a steady input (Vocos' own per-frame phase, kept as VocosConfig(phase="frame")) fails the same check, which
is why Vocos predicts phase advances instead (audioldm/vocoders/vocos.py).

A few hundred steps of training on 12 notes is chaotic: the same recipe lands anywhere from 0.001 to 0.07 of
frame-rate modulation depending on the seed and on the machine's floating-point order (one seed passed on one CPU and
failed on another). So each check trains three seeds and takes the median."""

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

from audioldm.data.gm_notes import NoteRenderer  # noqa: E402
from audioldm.evaluation.metrics import steady_tone_modulation  # noqa: E402
from audioldm.mel import MelFrontend  # noqa: E402
from audioldm.training.losses import mrstft_loss  # noqa: E402
from audioldm.vocoders import VOCOS_PRESETS, Vocos, build_vocoder  # noqa: E402

BUZZ = 0.03  # modulation depth at half the frame rate: Griffin-Lim measures ~0.02
FRAME_BUZZ = 0.06  # at the frame rate: briefly trained vocoders 0.001-0.04 (median of 3 seeds), repeating frames 0.1-0.5
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def notes():
    r = NoteRenderer(None)
    return torch.stack([torch.from_numpy(r.render(p, q, 100, 1.2, 1.0)) for p in (0, 40, 56, 73)
                        for q in (55, 62, 67)]).float()


def _briefly_trained(vocoder, wavs, steps, lr=3e-3):
    """``steps`` AdamW steps of 45 x log-mel L1 + 2 x MR-STFT on random 0.32 s segments of ``wavs`` [N, T]."""
    torch.manual_seed(0)
    fe, g = MelFrontend(), torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(vocoder.parameters(), lr)
    seg = 32 * 160
    for _ in range(steps):
        idx = torch.randint(0, len(wavs), (8,), generator=g)
        start = int(torch.randint(0, (wavs.shape[-1] - seg) // 160, (1,), generator=g)) * 160
        w = wavs[idx, start:start + seg]
        m = fe(w)
        y = vocoder(m)
        loss = 45 * (fe(y) - m).abs().mean() + 2 * mrstft_loss(y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return vocoder.eval()


@pytest.fixture(scope="module")
def median_modulation(notes):
    """kind -> (median over SEEDS of steady_tone_modulation of a 'tiny' vocoder of that kind after 300 steps at lr
    1e-3, the per-seed results); each kind is trained once for the module."""
    done = {}

    def get(kind):
        if kind not in done:
            runs = []
            for seed in SEEDS:
                torch.manual_seed(seed)  # the initial weights
                runs.append(steady_tone_modulation(_briefly_trained(build_vocoder(kind, "tiny"), notes, 300, lr=1e-3)))
            assert all(r["hz"] == (50.0, 100.0) for r in runs)
            done[kind] = {k: float(np.median([r[k] for r in runs])) for k in ("half_frame_rate", "frame_rate")}, runs
        return done[kind]
    return get


@pytest.mark.parametrize("kind", [
    pytest.param("vocos", marks=pytest.mark.xfail(
        reason="chaotic: on issue 33's machine unmodified main (cf73e98) failed it (all three seeds 0.14-0.15), and "
               "it passed again after a float-order-only change to the overlap-add; the Vocos class is not shipped "
               "and its buzz is open (docs/vocoder.md, 'Why Vocos buzzed')", strict=False)),
    "hifigan"])
def test_no_frame_rate_buzz(kind, median_modulation):
    """Cause 1 of Vocos's buzz, fixed: frames that repeat on a steady input (docs/vocoder.md, "Why Vocos buzzed")."""
    mod, runs = median_modulation(kind)
    assert mod["frame_rate"] < FRAME_BUZZ, runs


def test_hifigan_no_half_frame_rate_buzz(median_modulation):
    mod, runs = median_modulation("hifigan")
    assert mod["half_frame_rate"] < BUZZ, runs


@pytest.mark.xfail(reason="cause 2 of Vocos's 50 Hz buzz is not fixed: low partials come back as two partials ~50 Hz "
                          "apart that beat (docs/vocoder.md, 'Why Vocos buzzed'); this check catches it on some seeds and "
                          "machines (median 0.049 at half the frame rate here), so Vocos is not shipped", strict=False)
def test_vocos_no_half_frame_rate_buzz(median_modulation):
    mod, runs = median_modulation("vocos")
    assert mod["half_frame_rate"] < BUZZ, runs


def test_repeating_frames_fail_the_check(notes):
    """The check can fail: Vocos with per-frame phase, trained the same way, buzzes at the frame rate (its frames
    repeat on a steady input, so its output is periodic every hop, whatever the pitch)."""
    torch.manual_seed(0)
    voc = _briefly_trained(Vocos(dataclasses.replace(VOCOS_PRESETS["tiny"](), phase="frame")), notes, steps=300)
    assert steady_tone_modulation(voc)["frame_rate"] > 3 * BUZZ


def test_shipped_universal_vocoder_does_not_buzz():
    """The vocoder every shipped and new 16 kHz model uses (audioldm/pretrained/vocoder-16k)."""
    from audioldm.vocoders import universal_vocoder
    mod = steady_tone_modulation(universal_vocoder())
    assert mod["half_frame_rate"] < BUZZ and mod["frame_rate"] < FRAME_BUZZ, mod
