"""CLAP audio conditioning (AudioLDM's trick) offline, on a tiny random transformers ClapModel saved to a local folder
and a tiny diffusers AudioLDM folder whose text encoder is that CLAP's text tower: recipes/finetune/run.py
--conditioning clap-audio trains on uncaptioned clips from their CLAP audio embeddings (computed by the audio tower
alone), and the fine-tuned model generates from the CLAP text tower alone."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("diffusers")
from test_convert_diffusers import build_diffusers_folder, tiny_clap_text_config  # noqa: E402

from audioldm.conditioning.clap import (AudioEmbeddingConditioner, ClapError, check_text_tower,  # noqa: E402
                                        clap_audio_embedder)

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "recipes" / "finetune" / "run.py")]
DIM = 32  # the tiny U-Net's cond_dim = CLAP's projection size


def _clap(folder: Path, seed: int) -> Path:
    tf = transformers
    audio = tf.ClapAudioConfig(window_size=4, num_mel_bins=64, spec_size=128, patch_size=4, patch_stride=(4, 4),
                               depths=[1, 1], num_heads=[2, 2], hidden_size=32, patch_embeds_hidden_size=16,
                               projection_dim=DIM, projection_hidden_size=16, num_hidden_layers=2)
    torch.manual_seed(seed)
    cfg = tf.ClapConfig(text_config=tiny_clap_text_config(DIM).to_dict(), audio_config=audio.to_dict(),
                        projection_dim=DIM)
    tf.ClapModel(cfg).save_pretrained(folder)
    tf.ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=1, fft_window_size=1024,
                            hop_length=480, truncation="rand_trunc").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(CLAP folder, SRC: diffusers AudioLDM folder with CLAP's text tower, an uncaptioned manifest)."""
    d = tmp_path_factory.mktemp("clap")
    clap = _clap(d / "clap", 0)
    text = transformers.ClapTextModelWithProjection.from_pretrained(clap).eval()
    build_diffusers_folder(d / "audioldm-tiny", {"num_heads": 2}, text=text)
    sr, rng = 22050, np.random.default_rng(0)
    (d / "sounds").mkdir()
    rows = ["path,kind"]  # no caption column: nothing to read but the audio (and a category for the evaluation)
    for kind in ("noise", "tone"):
        for k in range(8):
            t = np.arange(int(0.5 * sr)) / sr
            x = rng.standard_normal(len(t)) if kind == "noise" else np.sin(2 * np.pi * (200 + 20 * k) * t)
            sf.write(d / "sounds" / f"{kind}{k}.wav", (0.4 * np.exp(-4 * t) * x).astype(np.float32), sr)
            rows.append(f"{kind}{k}.wav,{kind}")
    (d / "sounds" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return clap, d / "audioldm-tiny", d / "sounds" / "manifest.csv"


def _run(src, data, out, *extra):
    return subprocess.run(RUN + ["--model", str(src), "--data", str(data), "--out", str(out), "--preset", "tiny",
                                 "--no-progress", "--valid-fraction", "0.25", "--judge-steps", "20", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clap_run(setup, tmp_path_factory):
    clap, src, data = setup
    out = tmp_path_factory.mktemp("clap_run") / "out"
    p = _run(src, data, out, "--conditioning", "clap-audio", "--clap", str(clap), "--steps", "30",
             "--category", "kind")
    assert p.returncode == 0, p.stderr[-4000:]
    return out


def test_embedder_reads_only_the_audio_tower(setup, monkeypatch):
    clap, _, _ = setup

    def refuse(*a, **k):
        raise AssertionError("the text tower was built or run")
    monkeypatch.setattr(transformers.ClapTextModel, "__init__", refuse)
    embed = clap_audio_embedder(clap)
    wavs = torch.randn(3, 8000) * 0.1
    e = embed(wavs, 16000)
    assert e.shape == (3, DIM) and torch.allclose(e.norm(dim=-1), torch.ones(3))
    # the reference: the full ClapModel on CLAP's features at CLAP's rate (48 kHz)
    from audioldm.audio import resample
    monkeypatch.undo()
    fe = transformers.ClapFeatureExtractor.from_pretrained(clap)
    full = transformers.ClapModel.from_pretrained(clap).eval()
    feats = fe([resample(w.numpy(), 16000, 48000) for w in wavs], sampling_rate=48000, return_tensors="pt")
    with torch.no_grad():
        r = full.get_audio_features(**feats)
    r = r if torch.is_tensor(r) else r.pooler_output
    torch.testing.assert_close(e, torch.nn.functional.normalize(r, dim=-1), atol=1e-5, rtol=0)
    assert embed.sampling_rate == 48000


def test_audio_embedding_conditioner():
    null = torch.nn.functional.normalize(torch.randn(1, 8), dim=-1)
    c = AudioEmbeddingConditioner(null)
    out = c(torch.randn(4, 8) * 3)["pooled"]
    assert out.shape == (4, 8) and torch.allclose(out.norm(dim=-1), torch.ones(4))
    assert torch.equal(c.null_condition(2)["pooled"], null.expand(2, -1)) and not list(c.parameters())
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        c(torch.randn(4, 7))


def test_clap_audio_finetune(setup, clap_run, monkeypatch):
    from audioldm import AudioLDM
    from audioldm.data import ClipDataset, read_manifest
    from audioldm.data.latents import LatentDataset

    clap, src, _ = setup
    out = clap_run
    rec = json.loads((out / "stages" / "finetune.json").read_text())
    assert rec["conditions"] == "clap-audio (clap)" and rec["cached_conditions"] == 12
    # the training conditions are the clips' CLAP audio embeddings (unit norm), cached with their latents
    lat = LatentDataset(out / "finetune" / "latents_train.safetensors", random_caption=False)
    assert lat.condition.shape == (12, DIM) and torch.allclose(lat.condition.norm(dim=-1), torch.ones(12), atol=1e-5)
    clips = [c for c in read_manifest(out / "data" / "manifest.jsonl") if c.labels["split"] == "train"]
    assert [str(c.key) for c in clips] == [r["path"] for r in lat.rows]
    ds = ClipDataset(clips, AudioLDM.from_pretrained(src).mel_config, json.loads(
        (out / "stages" / "prepare.json").read_text())["clip_seconds"])
    wavs = torch.stack([ds[i]["wav"] for i in range(len(ds))])
    torch.testing.assert_close(lat.condition, clap_audio_embedder(clap)(wavs, 16000), atol=1e-5, rtol=0)
    assert lat.condition[:6].std(0).mean() > 0  # not one vector for every clip
    losses = [json.loads(ln)["loss_unet"] for ln in (out / "finetune" / "metrics.jsonl").read_text().splitlines()
              if "loss_unet" in ln]
    assert np.isfinite(losses).all() and len(losses) >= 2
    rep = json.loads((out / "report.json").read_text())  # evaluated from text prompts (the category's values)
    assert "generated (all held-out conditions)" in rep["fine-tuned"]["rows"]

    # the fine-tuned model ships the text tower only, and generates through it alone
    names = [k for f in (out / "model" / "conditioner").rglob("*.safetensors")
             for k in __import__("safetensors").safe_open(str(f), "pt").keys()]
    assert names and not [k for k in names if "audio" in k]

    def refuse(*a, **k):
        raise AssertionError("the audio tower was built or run")
    monkeypatch.setattr(transformers.ClapAudioModel, "__init__", refuse)
    monkeypatch.setattr(transformers.ClapAudioModel, "forward", refuse)
    ft, base = AudioLDM.from_pretrained(out / "model"), AudioLDM.from_pretrained(src)
    kw = dict(duration=0.32, steps=3, seed=0, progress=False)
    a, b = ft.generate("a dog barking", **kw).latents, base.generate("a dog barking", **kw).latents
    assert (a - b).abs().max() > 1e-3 * b.abs().max()
    assert not torch.allclose(ft.generate("piano", **kw).latents, a)  # the text reaches the U-Net


def test_clap_audio_refusals(setup, tmp_path):
    clap, src, data = setup
    other = _clap(tmp_path / "other-clap", 1)  # another CLAP: its text tower is not SRC's text encoder
    p = _run(src, data, tmp_path / "o1", "--conditioning", "clap-audio", "--clap", str(other))
    assert p.returncode != 0 and "text tower is not the model's text encoder" in p.stderr
    assert "text_model." in p.stderr and not (tmp_path / "o1").exists()
    p = _run(src, data, tmp_path / "o2", "--conditioning", "clap-audio")
    assert p.returncode != 0 and "needs --clap FOLDER" in p.stderr
    p = _run(src, data, tmp_path / "o3")  # text conditioning on uncaptioned data points to clap-audio
    assert p.returncode != 0 and "--conditioning clap-audio" in p.stderr
    labels = ROOT / "audioldm" / "pretrained" / "gm-notes"
    p = _run(labels, data, tmp_path / "o4", "--conditioning", "clap-audio", "--clap", str(clap))
    assert p.returncode != 0 and "pooled CLAP text embedding" in p.stderr
    with pytest.raises(ClapError, match="preprocessor_config.json"):
        (tmp_path / "no-fe").mkdir()
        for f in ("config.json", "model.safetensors"):
            (tmp_path / "no-fe" / f).write_bytes((clap / f).read_bytes())
        clap_audio_embedder(tmp_path / "no-fe")
    text = transformers.ClapTextModelWithProjection(tiny_clap_text_config(DIM))
    with pytest.raises(ClapError, match="differ"):
        check_text_tower(clap, text)
