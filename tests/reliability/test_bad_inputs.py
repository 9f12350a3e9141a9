"""Every bad input and the error it gives: the message names the file or field and what was expected, and nothing
partial is left behind. (Each case states the expected error type and a regex of its message.)"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioldm.audio import AudioError, load_audio
from audioldm.config import load_config
from audioldm.data import read_manifest
from audioldm.data.manifest import ManifestError
from audioldm.vae import VAE_PRESETS, MelVAE, VAEConfig
from audioldm.weights import WeightsError


def _wav(path, seconds=0.2, sr=16000, channels=1, value=None):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (int(sr * seconds), channels)).astype(np.float32)
    if value is not None:
        x[5] = value
    sf.write(path, x, sr, subtype="FLOAT" if value is not None else "PCM_16")
    return path


def _truncated(p):
    _wav(p, 1.0)
    p.write_bytes(p.read_bytes()[:5000])
    return p


def _bytes(p, data):
    p.write_bytes(data)
    return p


AUDIO_CASES = {
    "missing": (lambda d: d / "nope.wav", r"nope.wav.*not found|nope.wav.*no such"),
    "empty": (lambda d: _bytes(d / "e.wav", b""), r"e.wav.*empty"),
    "corrupt": (lambda d: _bytes(d / "c.wav", b"RIFF\x00junkjunkjunk" * 10), r"c.wav"),
    "truncated": (lambda d: _truncated(d / "t.wav"), r"t.wav.*truncated"),
    "zero-length": (lambda d: _wav(d / "z.wav", 0.0), r"z.wav.*no samples|z.wav.*zero"),
    "nan": (lambda d: _wav(d / "n.wav", value=np.nan), r"n.wav.*NaN"),
    "inf": (lambda d: _wav(d / "i.wav", value=np.inf), r"i.wav.*(NaN|Inf)"),
    "unsupported": (lambda d: _bytes(d / "u.xyz", b"hello world" * 100), r"u.xyz"),
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_bad_audio(tmp_path, case):
    make, pattern = AUDIO_CASES[case]
    with pytest.raises(AudioError, match=pattern):
        load_audio(make(tmp_path), 16000)


def test_eight_channel_96k_is_accepted_and_converted(tmp_path):
    wav = load_audio(_wav(tmp_path / "m.wav", 0.5, 96000, 8), 16000)
    assert wav.shape == (8000,) and wav.dtype == np.float32


def test_manifest_problems_are_listed_with_rows(tmp_path):
    _wav(tmp_path / "ok.wav")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"path": "ok.wav"}, {"path": "missing.wav"}, {"caption": "no path"}, {"path": "ok.wav"}]) + "\n")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path / "m.jsonl")
    msg = str(e.value)
    assert "missing.wav" in msg and "row 2" in msg and "row 3" in msg and "duplicate" in msg.lower()
    (tmp_path / "m.csv").write_text("file,caption\nok.wav,x\n")
    with pytest.raises(ManifestError, match="path"):
        read_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize("change, pattern", [
    ({"bogus": 1}, r"cfg.json.*unknown VAEConfig field\(s\) \['bogus'\]"),
    ({"ch": "wide"}, r"cfg.json.*VAEConfig.ch: expected an integer"),
    ({"ch_mult": 3}, r"cfg.json.*VAEConfig.ch_mult: expected a list"),
])
def test_bad_config_json(tmp_path, change, pattern):
    from audioldm.config import config_to_dict
    d = {**config_to_dict(VAE_PRESETS["tiny"]()), **change}
    (tmp_path / "cfg.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=pattern):
        load_config(VAEConfig, tmp_path / "cfg.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*invalid JSON"):
        load_config(VAEConfig, tmp_path / "bad.json")


def test_missing_required_config_field():
    from audioldm.conditioning import LabelConditionerConfig
    from audioldm.config import config_from_dict
    pattern = r"cond.json: LabelConditionerConfig.fields\[0\]: missing required LabelField field\(s\) \['name'\]"
    with pytest.raises(ValueError, match=pattern):
        config_from_dict(LabelConditionerConfig, {"fields": [{"kind": "numeric"}]}, "cond.json")


def test_checkpoint_that_does_not_match_its_config(tmp_path):
    MelVAE(VAE_PRESETS["tiny"]()).save_pretrained(tmp_path / "vae")
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    cfg["ch"] = 16
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"model.safetensors.*do not match"):
        MelVAE.from_pretrained(tmp_path / "vae")


class _Bomb:
    def __reduce__(self):  # unpickling this would create a marker file
        return (Path.touch, (Path(self.marker),))


def test_pickle_weights_are_refused_never_unpickled(tmp_path):
    MelVAE(VAE_PRESETS["tiny"]()).save_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "model.safetensors").unlink()
    bomb = _Bomb()
    bomb.marker = str(tmp_path / "PWNED")
    (tmp_path / "vae" / "model.bin").write_bytes(pickle.dumps(bomb))
    (tmp_path / "vae" / "model.safetensors").write_bytes(pickle.dumps(bomb))  # a pickle under the right name
    with pytest.raises(WeightsError, match="model.safetensors"):
        MelVAE.from_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"model.bin.*never loaded"):
        MelVAE.from_pretrained(tmp_path / "vae")
    assert not (tmp_path / "PWNED").exists()


def test_generation_settings(tiny_model):
    from audioldm.pipeline import AudioLDM, PipelineError
    pipe = AudioLDM.from_pretrained(tiny_model)
    for kw, pattern in [({"duration": 0}, "duration must be a positive"), ({"duration": -1}, "duration"),
                        ({"duration": 1e6}, "longer than"), ({"steps": 0}, "steps must be a positive"),
                        ({"guidance": float("nan")}, "guidance must be a finite"),
                        ({"sampler": "magic"}, "unknown sampler")]:
        with pytest.raises(PipelineError, match=pattern):
            pipe.generate("piano", progress=False, **kw)


def test_prompt_file_edge_cases_export_cleanly(tiny_model, tmp_path):
    from audioldm.cli import main
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n\n   \n" + "piano " * 400 + "\n../../etc/passwd\n/abs/path\n.hidden\n")
    out = tmp_path / "out"
    assert main(["export", "--prompts", str(prompts), "--out", str(out), "--model", str(tiny_model),
                 "--duration", "0.2", "--steps", "2", "--quiet"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert len([f for f in files if f.endswith(".wav")]) == 4
    assert all("/" not in f and not f.startswith(".") and len(f) <= 64 for f in files)
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())
    assert not [f for f in files if ".tmp" in f]  # no partial files left
