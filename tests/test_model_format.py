"""model_index.json carries a format version; folders written before it existed (format 0, kept under tests/data/)
and the shipped folder still load and generate what they did; a folder from a newer format is refused."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audioldm.pipeline import FORMAT_VERSION, AudioLDM, PipelineError

DATA = Path(__file__).parent / "data"


def test_a_format_0_folder_loads_and_generates_as_when_written():
    folder = DATA / "model_format_v0"
    assert "format_version" not in json.loads((folder / "model_index.json").read_text())
    exp = json.loads((DATA / "model_format_v0.expected.json").read_text())
    r = AudioLDM.from_pretrained(folder).generate(exp["prompt"], seed=exp["seed"], progress=False)
    assert float(r.latents.sum()) == pytest.approx(exp["latents_sum"], rel=1e-3, abs=1e-2)
    assert float(r.latents.abs().mean()) == pytest.approx(exp["latents_abs_mean"], rel=1e-4)
    assert float(np.sqrt((r.audio ** 2).mean())) == pytest.approx(exp["audio_rms"], rel=1e-3)


def test_new_folders_record_the_version_and_newer_ones_are_refused(tmp_path):
    from audioldm.pretrained import default_model

    pipe = AudioLDM.from_pretrained(default_model())  # the shipped folder (written before the field, too)
    pipe.save_pretrained(tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["format_version"] == FORMAT_VERSION and index["format"] == "audioldm"
    AudioLDM.from_pretrained(tmp_path / "m")
    index["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "m" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(PipelineError, match=f"format_version {FORMAT_VERSION + 1}.*upgrade audioldm"):
        AudioLDM.from_pretrained(tmp_path / "m")
    shutil.copytree(DATA / "model_format_v0", tmp_path / "v0")
    index = json.loads((tmp_path / "v0" / "model_index.json").read_text())
    (tmp_path / "v0" / "model_index.json").write_text(json.dumps({**index, "format_version": "1"}))
    with pytest.raises(PipelineError, match="format_version '1'"):
        AudioLDM.from_pretrained(tmp_path / "v0")


def test_shipped_models_load_by_name_and_by_default(monkeypatch):
    """AudioLDM.from_pretrained() is the default model, from_pretrained("gm-notes") a shipped one by name; an unknown
    name is a clear error, and a relative path under an existing folder is not sent to the hub."""
    from audioldm import AudioLDM
    from audioldm.errors import PipelineError
    from audioldm.pretrained import DEFAULT_MODEL, TEACHER

    monkeypatch.delenv("AUDIOLDM_MODEL", raising=False)
    assert AudioLDM.from_pretrained().name == AudioLDM.from_pretrained(DEFAULT_MODEL).name == "gm-notes-fast"
    assert AudioLDM.from_pretrained(TEACHER).distilled is None
    for bad in ("gm-nope", "tests/no_such_model"):
        with pytest.raises(PipelineError, match="model folder not found"):
            AudioLDM.from_pretrained(bad)
