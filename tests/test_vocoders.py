import pytest
import torch

from audioldm.data import ClipDataset, collate_clips, read_manifest
from audioldm.evaluation import logmel_l1, mrstft_distance
from audioldm.training import TrainConfig, Trainer
from audioldm.training.vocoder_stage import VocoderLossConfig, VocoderStage
from audioldm.vocoders import GriffinLimVocoder, HiFiGAN, HIFIGAN_PRESETS, build_vocoder, load_vocoder
from audioldm.vocoders.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator
from audioldm.vocoders.griffinlim import GriffinLimConfig
from audioldm.vocoders.phase import istft_frames
from audioldm.weights import WeightsError


@pytest.mark.parametrize("kind,preset", [("vocos", "tiny"), ("vocos", "demo"), ("hifigan", "tiny")])
@pytest.mark.parametrize("frames", [1, 3, 50, 101])
def test_output_length_is_frames_times_hop(kind, preset, frames):
    v = build_vocoder(kind, preset).eval()
    with torch.no_grad():
        out = v(torch.randn(2, 64, frames) - 6)
    assert out.shape == (2, frames * 160) and torch.isfinite(out).all()


def test_griffin_lim_slot_and_bad_shapes(tmp_path):
    assert GriffinLimVocoder()(torch.randn(1, 64, 5) - 6).shape == (1, 800)
    # config round trip; a folder saved before magnitude_iter existed loads with the peak fit (the default)
    GriffinLimVocoder(GriffinLimConfig(n_iter=7, magnitude_iter=0)).save_pretrained(tmp_path / "gl")
    assert load_vocoder(tmp_path / "gl").config.magnitude_iter == 0
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text('{"kind": "griffinlim", "n_iter": 60, "momentum": 0.99}')
    assert load_vocoder(tmp_path / "old").config.magnitude_iter == GriffinLimConfig().magnitude_iter == 300
    for v in (build_vocoder("vocos", "tiny"), build_vocoder("hifigan", "tiny")):
        with pytest.raises(ValueError, match=r"expected log-mel \[B, 64, frames\]"):
            v(torch.randn(1, 80, 5))
    with pytest.raises(ValueError, match="unknown vocos preset"):
        build_vocoder("vocos", "huge")
    with pytest.raises(ValueError, match="upsample_rates is 80"):
        HiFiGAN(HIFIGAN_PRESETS["tiny"]().__class__(upsample_rates=[5, 4, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4]))


def test_istft_inverts_the_frontend_framing():
    x = torch.randn(2, 8000)
    w = torch.hann_window(640, periodic=True)
    xp = torch.nn.functional.pad(x[:, None], (240, 240), mode="reflect")[:, 0]
    spec = torch.stft(xp, 640, 160, 640, window=w, center=False, return_complex=True)
    torch.testing.assert_close(istft_frames(spec, w, 160, 8000), x, atol=1e-5, rtol=0)


def test_discriminator_shapes():
    wav = torch.randn(2, 4000)
    for d in (MultiPeriodDiscriminator(channels=4), MultiResolutionDiscriminator(channels=4)):
        logits, feats = d(wav)
        assert len(logits) == len(feats) == len(d.discriminators)
        for l, f in zip(logits, feats):
            assert l.dim() == 2 and l.shape[0] == 2 and len(f) == 6 and all(t.shape[0] == 2 for t in f)
    assert [f[0].shape[-1] for f in MultiPeriodDiscriminator(channels=4)(wav)[1]] == [2, 3, 5, 7, 11]


@pytest.mark.parametrize("kind", ["vocos", "hifigan"])
def test_save_load_round_trip(kind, tmp_path):
    v = build_vocoder(kind, "tiny").eval()
    v.save_pretrained(tmp_path / "voc")
    w = load_vocoder(tmp_path / "voc")
    assert type(w) is type(v)
    mel = torch.randn(1, 64, 20) - 6
    with torch.no_grad():
        torch.testing.assert_close(w(mel), v(mel), rtol=0, atol=0)
    (tmp_path / "voc" / "config.json").write_text('{"kind": "wavenet"}')
    with pytest.raises(WeightsError, match="wavenet"):
        load_vocoder(tmp_path / "voc")


def test_hifigan_matches_transformers_speecht5():
    pytest.importorskip("transformers")
    c = HIFIGAN_PRESETS["tiny"]()
    from audioldm.convert.diffusers import speecht5_hifigan
    ref = speecht5_hifigan(c)
    ours = HiFiGAN(c).eval()
    state = {k: v for k, v in ref.state_dict().items() if k not in ("mean", "scale")}
    ours.load_state_dict(state, strict=True)
    mel = torch.randn(2, 64, 30) - 6
    with torch.no_grad():
        a, b = ours(mel), ref(mel.transpose(1, 2))
    n = min(a.shape[-1], b.shape[-1])
    assert a.shape[-1] == 30 * 160
    torch.testing.assert_close(a[:, :n], b[:, :n], atol=1e-5, rtol=0)


def test_metrics():
    x = torch.randn(2, 16000) * 0.1
    assert torch.allclose(mrstft_distance(x, x), torch.zeros(2), atol=1e-5)
    assert (mrstft_distance(x + 0.05 * torch.randn_like(x), x) > 0.1).all()
    assert torch.allclose(logmel_l1(x, x), torch.zeros(2))
    with pytest.raises(ValueError, match="shapes differ"):
        mrstft_distance(x, x[:, :100])


@pytest.mark.parametrize("kind", ["vocos", "hifigan"])
def test_tiny_vocoder_overfits_one_clip(kind, tiny_notes, tmp_path):
    out, _ = tiny_notes
    clip = [c for c in read_manifest(out / "manifest.jsonl") if c.key.endswith("trumpet_060_100.wav")]
    ds = ClipDataset(clip * 4, clip_seconds=0.32)  # the note's attack: 0.32 s, same segment every time
    torch.manual_seed(0)
    voc = build_vocoder(kind, "tiny")
    item = ds[0]

    def dist():
        with torch.no_grad():
            return mrstft_distance(voc.eval()(item["mel"][None]), item["wav"][None]).item()

    before = dist()
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=300, batch_size=4, lr=5e-3, warmup_steps=10,
                      ema_decay=0.0, ckpt_every=1000, log_every=50, progress=False, tensorboard=False)
    Trainer(cfg, VocoderStage(voc, VocoderLossConfig(disc_start=280, disc_channels=4, stft_weight=2.0)), ds, collate_clips).fit()
    after = dist()
    # stated factors in 300 CPU steps: HiFi-GAN-tiny halves the MR-STFT distance; Vocos-tiny (32-wide, 2 layers,
    # seen: 3.26 -> 2.02) cuts it by 1.4x
    factor = {"hifigan": 2.0, "vocos": 1.4}[kind]
    assert after < before / factor, (before, after)


def test_vocos_folders_from_before_the_phase_field_load_as_frame_phase(tmp_path):
    """VocosConfig.phase is new ('advance' by default); a folder written before it (no "phase" in config.json)
    holds a per-frame-phase model and loads as one, with identical output."""
    import dataclasses
    import json

    from audioldm.vocoders import VOCOS_PRESETS, Vocos
    old = Vocos(dataclasses.replace(VOCOS_PRESETS["tiny"](), phase="frame")).eval()
    old.save_pretrained(tmp_path / "voc")
    cfg = json.loads((tmp_path / "voc" / "config.json").read_text())
    del cfg["phase"]
    (tmp_path / "voc" / "config.json").write_text(json.dumps(cfg))
    loaded = load_vocoder(tmp_path / "voc")
    assert loaded.config.phase == "frame"
    mel = torch.randn(1, 64, 20) - 6
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), old(mel), rtol=0, atol=0)
    assert build_vocoder("vocos", "tiny").config.phase == "advance"
    with pytest.raises(ValueError, match="phase"):
        dataclasses.replace(VOCOS_PRESETS["tiny"](), phase="absolute")


@pytest.mark.parametrize("fraction,expect", [(0.0, 0), (1.0, 16), (0.5, None)])
def test_vocoder_stage_feeds_a_fraction_of_the_batch_through_mel_input(fraction, expect):
    """VocoderStage(mel_input=VAE round trip, mel_input_fraction=p): that share of the batch's items reaches the
    vocoder transformed, the rest as the true mel; the loss always compares with the true mel."""
    from types import SimpleNamespace

    class Shift(torch.nn.Module):  # stands in for the VAE round trip: a visible, known change
        def forward(self, mel):
            return mel + 100.0

    seen = []

    class Recording(torch.nn.Module):
        mel_config = build_vocoder("vocos", "tiny").mel_config

        def forward(self, mel):
            seen.append(mel.detach().clone())
            return torch.zeros(mel.shape[0], mel.shape[-1] * 160, requires_grad=True)

    torch.manual_seed(0)
    voc = Recording()
    stage = VocoderStage(voc, VocoderLossConfig(disc_start=-1), mel_input=Shift(), mel_input_fraction=fraction)
    mel = torch.randn(16, 64, 10) - 5
    ctx = SimpleNamespace(step=0, modules={"vocoder": voc})
    name, loss, _ = next(stage.train_step({"wav": torch.zeros(16, 1600), "mel": mel}, ctx))
    shifted = int(((seen[0] - mel).abs().mean(dim=(1, 2)) > 50).sum())
    assert torch.isfinite(loss) and name == "vocoder"
    if expect is None:
        assert 3 <= shifted <= 13  # about half of 16
    else:
        assert shifted == expect
    with pytest.raises(ValueError, match="mel_input_fraction"):
        VocoderStage(voc, VocoderLossConfig(disc_start=-1), mel_input=Shift(), mel_input_fraction=1.5)
