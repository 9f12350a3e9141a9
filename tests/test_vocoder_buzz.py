"""Every neural vocoder class, briefly trained on a few TimGM6mb notes, turns steady tones into steady tones: the
envelope of its output has no peak at the frame rate (100 Hz for hop 160) or half of it. A vocoder whose frames
repeat on a steady input (Vocos' own per-frame phase, kept as VocosConfig(phase="frame")) fails the same check, which
is why Vocos predicts phase advances instead (audioldm/vocoders/vocos.py)."""

import dataclasses

import pytest
import torch

pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

from audioldm.data.gm_notes import NoteRenderer  # noqa: E402
from audioldm.evaluation.metrics import steady_tone_modulation  # noqa: E402
from audioldm.mel import MelFrontend  # noqa: E402
from audioldm.training.losses import mrstft_loss  # noqa: E402
from audioldm.vocoders import VOCOS_PRESETS, Vocos, build_vocoder  # noqa: E402

BUZZ = 0.03  # modulation depth: Griffin-Lim and the trained vocoders measure <= 0.01, repeating frames 0.1-0.5


@pytest.fixture(scope="module")
def notes():
    r = NoteRenderer(None)
    return torch.stack([torch.from_numpy(r.render(p, q, 100, 1.2, 1.0)) for p in (0, 40, 56, 73)
                        for q in (55, 62, 67)]).float()


def _briefly_trained(vocoder, wavs, steps):
    """``steps`` AdamW steps of 45 x log-mel L1 + 2 x MR-STFT on random 0.32 s segments of ``wavs`` [N, T]."""
    torch.manual_seed(0)
    fe, g = MelFrontend(), torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(vocoder.parameters(), 3e-3)
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


@pytest.mark.parametrize("kind", ["vocos", "hifigan"])
def test_steady_tones_stay_steady(kind, notes):
    torch.manual_seed(0)
    voc = _briefly_trained(build_vocoder(kind, "tiny"), notes, steps=300 if kind == "vocos" else 150)
    mod = steady_tone_modulation(voc)
    assert mod["hz"] == (50.0, 100.0)
    assert mod["half_frame_rate"] < BUZZ and mod["frame_rate"] < BUZZ, mod


def test_repeating_frames_fail_the_check(notes):
    """The check can fail: Vocos with per-frame phase, trained the same way, buzzes at the frame rate (its frames
    repeat on a steady input, so its output is periodic every hop, whatever the pitch)."""
    torch.manual_seed(0)
    voc = _briefly_trained(Vocos(dataclasses.replace(VOCOS_PRESETS["tiny"](), phase="frame")), notes, steps=300)
    assert steady_tone_modulation(voc)["frame_rate"] > 3 * BUZZ
