"""The universal 16 kHz vocoder slot shipped in the package (audioldm/pretrained/vocoder-16k, today the peak fit +
60 Griffin-Lim iterations the shipped models had before: docs/vocoder.md says why): it loads, is small, says what it
is and what it was measured on, serves the shipped models by reference, and a model folder using it round-trips as
a standalone copy. The phase-gradient option beats it on MR-STFT and log-mel L1 on notes of a soundfont held out of
the vocoder corpus (TimGM6mb), as docs/vocoder.md measures on the held-out sources."""

import json
from pathlib import Path

import pytest
import torch

from audioldm.errors import PipelineError
from audioldm.evaluation import logmel_l1, mrstft_distance
from audioldm.mel import MelConfig, MelFrontend
from audioldm.pretrained import PRETRAINED, UNIVERSAL_VOCODER, component_path
from audioldm.vocoders import GriffinLimVocoder, SpectralVocoder, universal_vocoder
from audioldm.vocoders.griffinlim import GriffinLimConfig

FOLDER = PRETRAINED / UNIVERSAL_VOCODER


def test_shipped_loads_small_with_sources():
    voc = universal_vocoder()
    assert voc.mel_config == MelConfig()
    assert isinstance(voc, GriffinLimVocoder) and voc.config == GriffinLimConfig()  # the vocoder shipped before
    size = sum(f.stat().st_size for f in FOLDER.iterdir())
    assert size < 10e6, size
    sources = (FOLDER / "SOURCES.md").read_text()
    for word in ("FluidR3", "hydrogen", "asterisk", "colobot", "freedesktop", "held out", "TimGM6mb", "licence"):
        assert word.lower() in sources.lower(), word


@pytest.fixture(scope="module")
def held_out_notes():
    """Notes of TimGM6mb (the soundfont inside pretty_midi), which the universal vocoder's corpus holds out."""
    from audioldm.data.gm_notes import NoteRenderer  # tinysoundfont: CI installs it
    r = NoteRenderer(None)
    notes = [(0, 48), (24, 60), (40, 67), (56, 55), (73, 72), (33, 40)]
    return torch.stack([torch.from_numpy(r.render(p, q, 100, 1.6, 1.0)) for p, q in notes]).float()[:, :25600]


def test_pghi_start_beats_griffin_lim_on_a_held_out_soundfont(held_out_notes):
    wav = held_out_notes
    mel = MelFrontend()(wav)
    with torch.no_grad():
        ours = GriffinLimVocoder(GriffinLimConfig(phase_init="pghi", n_iter=16))(mel)[:, :wav.shape[-1]]
        gl = universal_vocoder()(mel)[:, :wav.shape[-1]]
    assert mrstft_distance(ours, wav).mean() < mrstft_distance(gl, wav).mean()
    assert logmel_l1(ours, wav).mean() < logmel_l1(gl, wav).mean()


def test_shipped_models_name_it_instead_of_copying_it():
    for name in ("gm-notes", "gm-notes-fast"):
        index = json.loads((PRETRAINED / name / "model_index.json").read_text())
        assert index["components"]["vocoder"] == f"shipped:{UNIVERSAL_VOCODER}"
        assert not (PRETRAINED / name / "vocoder").exists()
    from audioldm.pipeline import AudioLDM
    voc = AudioLDM.from_pretrained(PRETRAINED / "gm-notes").vocoder
    assert isinstance(voc, GriffinLimVocoder) and voc.config == universal_vocoder().config


def test_component_references_are_checked(tmp_path):
    assert component_path(tmp_path, "vocoder") == tmp_path / "vocoder"
    assert component_path(tmp_path, "shipped:vocoder-16k") == FOLDER
    for bad in ("shipped:../gm-notes", "shipped:", "shipped:a/b"):
        with pytest.raises(ValueError, match="not the name of a shipped folder"):
            component_path(tmp_path, bad)
    with pytest.raises(FileNotFoundError, match="no shipped folder 'nope'"):
        component_path(tmp_path, "shipped:nope")


def test_model_folder_with_it_round_trips_standalone(tmp_path):
    from audioldm.pipeline import AudioLDM
    pipe = AudioLDM.from_pretrained(PRETRAINED / "gm-notes")
    out = pipe.save_pretrained(tmp_path / "copy")
    assert json.loads((Path(out) / "model_index.json").read_text())["components"]["vocoder"] == "vocoder"
    assert json.loads((Path(out) / "vocoder" / "config.json").read_text())["kind"] == "griffinlim"
    again = AudioLDM.from_pretrained(out)
    mel = torch.randn(1, 64, 40) - 5
    with torch.no_grad():
        assert torch.allclose(again.vocoder(mel), pipe.vocoder(mel), atol=1e-4)


def test_mel_mismatch_is_refused_naming_both_sides():
    from audioldm.pipeline import AudioLDM
    pipe = AudioLDM.from_pretrained(PRETRAINED / "gm-notes")
    wide = GriffinLimVocoder(GriffinLimConfig(phase_init="pghi", mel=MelConfig.preset("audioldm-48k")))
    with pytest.raises(PipelineError, match=r"vae and vocoder.*sample_rate: 16000 vs 48000"):
        AudioLDM(pipe.vae, pipe.unet, pipe.schedule, pipe.conditioner, wide, pipe.defaults)


def test_nan_mel_names_the_component():
    with pytest.raises(ValueError, match="GriffinLimVocoder: the log-mel holds NaN or Inf"):
        universal_vocoder()(torch.full((1, 64, 8), float("inf")))
    with pytest.raises(ValueError, match="SpectralVocoder: the log-mel holds NaN or Inf"):
        SpectralVocoder(__import__("audioldm.vocoders", fromlist=["x"]).SPECTRAL_PRESETS["tiny"]())(
            torch.full((1, 64, 8), float("nan")))


def test_vocoder_ref_names_instead_of_copying(tmp_path):
    from audioldm.pipeline import AudioLDM
    pipe = AudioLDM.from_pretrained(PRETRAINED / "gm-notes")
    out = pipe.save_pretrained(tmp_path / "ref", vocoder_ref=f"shipped:{UNIVERSAL_VOCODER}")
    assert json.loads((Path(out) / "model_index.json").read_text())["components"]["vocoder"] == "shipped:vocoder-16k"
    assert not (Path(out) / "vocoder").exists()
    assert AudioLDM.from_pretrained(out).vocoder.config == universal_vocoder().config
    with pytest.raises(PipelineError, match="no shipped folder 'nope'"):
        pipe.save_pretrained(tmp_path / "bad", vocoder_ref="shipped:nope")
    assert not (tmp_path / "bad").exists()
