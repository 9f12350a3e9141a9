"""recipes/audio_folder/run.py end to end with the `tiny` preset (steps overridden) on a rendered folder of two kinds
of sound, low tones and noise bursts, in mixed formats, rates and channels, nested folders, sidecar captions, one
corrupt and one silent file. Also: the text model follows its text, --resume skips finished stages, and a run
folder made with other settings is refused."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "recipes" / "audio_folder" / "run.py")]


def _sound(kind: str, sr: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    n = int(sr * rng.uniform(0.3, 0.45))
    t = np.arange(n) / sr
    env = np.minimum(1, t * 200) * np.exp(-t * 4)
    x = np.sin(2 * np.pi * rng.uniform(110, 200) * t) if kind == "tone" else rng.standard_normal(n) * 0.6
    return np.concatenate([0.5 * env * x, np.zeros(sr // 10)]).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("af") / "sounds"
    formats = [("wav", 44100, 2), ("flac", 48000, 1), ("aiff", 22050, 1), ("wav", 16000, 1), ("ogg", 32000, 2)]
    for kind, folder in (("tone", d / "tonal" / "tone"), ("noise", d / "noise")):
        folder.mkdir(parents=True)
        for k in range(14):
            ext, sr, ch = formats[k % len(formats)]
            x = _sound(kind, sr, k + (100 if kind == "noise" else 0))
            sf.write(folder / f"{kind}{k:02d}.{ext}", np.stack([x, 0.8 * x], 1) if ch == 2 else x, sr)
    (d / "tonal" / "tone" / "tone03.txt").write_text("a tone\n")  # sidecar caption
    (d / "noise" / "noise04.txt").write_text("a noise\n")
    (d / "noise" / "corrupt.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    sf.write(d / "noise" / "silent.wav", np.zeros(8000, np.float32), 16000)
    return d


def _run(data, out, *extra, check=True):
    cmd = RUN + ["--data", str(data), "--out", str(out), "--preset", "tiny", "--steps", "200", "--vae-steps", "60",
                 "--valid-fraction", "0.2", "--judge-steps", "40", "--no-progress", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"recipe failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    _run(data, out)
    return out


def test_outputs(run):
    from audioldm import AudioLDM

    prep = json.loads((run / "data" / "prepare.json").read_text())
    reasons = {d["path"]: d["reason"] for d in prep["dropped"]}
    assert reasons["noise/corrupt.wav"].startswith("unreadable") and reasons["noise/silent.wav"].startswith("silent")
    assert prep["clips"] == 28 and prep["valid_clips"] > 0
    index = json.loads((run / "model" / "model_index.json").read_text())
    assert index["info"]["data"]["name"] == "sounds" and index["info"]["data"]["clips"] == 28
    pipe = AudioLDM.from_pretrained(run / "model")
    assert pipe.defaults.duration == pytest.approx(prep["clip_seconds"])
    rep = json.loads((run / "report.json").read_text())
    rows = rep["rows"]
    for name in ("real (held-out)", "real -> vocoder", "real -> VAE -> vocoder", "generated (all held-out conditions)"):
        assert name in rows and 0 <= rows[name]["accuracy"] <= 1 and np.isfinite(rows[name]["frechet_to_heldout_real"])
    # the judge's categories are the captions ("tone", "noise" from folder names, "a tone", "a noise" from sidecars)
    assert {"tone", "noise"} <= set(rep["judge"]["classes"])
    assert rep["chance"]["uniform"] == 1 / len(rep["judge"]["classes"])
    assert "nearest_train_distance_median" in rows["real (held-out)"]
    assert (run / "report.md").read_text().startswith("judge:")
    man = json.loads((run / "gallery" / "manifest.json").read_text())
    assert man["samples"] and all("tokens" in s and "unknown_words" in s for s in man["samples"])
    assert man["model_id"].startswith("model@") and "/" not in man["model_id"]
    previews = sorted((run / "ldm" / "samples").glob("step_*/*.wav"))
    assert previews and previews[0].with_suffix(".png").is_file()
    best = json.loads((run / "ldm" / "best" / "best.json").read_text())
    losses = [json.loads(ln)["loss"] for ln in (run / "ldm" / "metrics.jsonl").read_text().splitlines()
              if json.loads(ln).get("kind") == "valid"]
    assert best["valid_loss"] == pytest.approx(min(losses))


def test_text_model_follows_its_text(run):
    """Noise bursts spread energy over the upper mel bands, low tones do not: if the model ignored its text, the
    two prompts would give the same distribution."""
    from audioldm import AudioLDM

    pipe = AudioLDM.from_pretrained(run / "model")
    high = {}
    for prompt in ("noise", "tone"):
        mels = pipe.generate(prompt, num_per_prompt=6, seed=0, progress=False).mels  # [6, 64, F]
        energy = mels.exp()
        high[prompt] = (energy[:, 32:].sum((1, 2)) / energy.sum((1, 2))).numpy()
    assert high["noise"].min() > high["tone"].max(), high


def test_resume_skips_and_other_settings_are_refused(data, run):
    p = _run(data, run, "--resume")
    for stage in ("prepare", "vae", "ldm", "package", "evaluate", "gallery"):
        assert f"[{stage}] finished earlier; skipped" in p.stderr
    p = _run(data, run, check=False)
    assert p.returncode != 0 and "pass --resume" in p.stderr
    p = _run(data, run, "--sample-rate", "44100", "--resume", check=False)
    assert p.returncode != 0 and "other settings" in p.stderr and "sample_rate" in p.stderr


def test_no_captions_is_an_error_before_training(tmp_path):
    d = tmp_path / "flat"
    d.mkdir()
    for k in range(3):
        sf.write(d / f"{k}.wav", _sound("tone", 16000, k), 16000)
    p = _run(d, tmp_path / "out", check=False)
    assert p.returncode != 0 and "no captions and no labels" in p.stderr
    assert not (tmp_path / "out" / "vae").exists()


def test_full_band_44k_with_text_and_labels_end_to_end(data, tmp_path):
    """--sample-rate 44100: 128 mel bands, hop 512, Griffin-Lim at that hop; the model folder generates at 44.1 kHz.
    The data is a CSV manifest with a caption and a label column, and --conditioning both reads the two."""
    from audioldm import AudioLDM

    small = tmp_path / "small"
    rows = ["path,caption,loudness"]
    for kind in ("tonal/tone", "noise"):  # a few files of each kind are enough here
        (small / kind).mkdir(parents=True)
        for k, f in enumerate(sorted((data / kind).glob("*0[0-4].*"))):
            shutil.copy(f, small / kind / f.name)
            rows.append(f"{kind}/{f.name},a {kind.split('/')[-1]},{'loud' if k % 2 else 'soft'}")
    (small / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "fb"
    p = subprocess.run(RUN + ["--data", str(small / "manifest.csv"), "--out", str(out), "--preset", "tiny",
                              "--steps", "20", "--vae-steps", "10", "--sample-rate", "44100", "--conditioning", "both",
                              "--judge-steps", "30", "--no-progress"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    pipe = AudioLDM.from_pretrained(out / "model")
    assert pipe.sample_rate == 44100 and pipe.mel_config.hop_length == 512 and pipe.mel_config.n_mels == 128
    assert pipe.conditioning == "both" and [f.name for f in pipe.conditioner.config.fields] == ["loudness"]
    res = pipe.generate("a noise", labels={"loudness": "loud"}, duration=0.5, steps=2, seed=0, progress=False)
    assert res.audio.shape == (1, 22050) and np.isfinite(res.audio).all()
    soft = pipe.generate("a noise", labels={"loudness": "soft"}, duration=0.5, steps=2, seed=0, progress=False)
    other = pipe.generate("a tone", labels={"loudness": "loud"}, duration=0.5, steps=2, seed=0, progress=False)
    assert (soft.latents - res.latents).abs().max() > 1e-3  # the labels reach the U-Net ...
    assert (other.latents - res.latents).abs().max() > 1e-3  # ... and so does the caption
    assert pipe.generate(labels={"loudness": "soft"}, duration=0.5, steps=2, progress=False).prompts == [None]
    import soundfile as sf2
    assert sf2.info(str(next((out / "gallery").glob("*.wav")))).samplerate == 44100
    man = json.loads((out / "gallery" / "manifest.json").read_text())  # each sample: the caption's tokens + labels
    assert all(s["prompt"] and s["tokens"] and s["labels"]["loudness"] in ("loud", "soft") for s in man["samples"])
    rep = json.loads((out / "report.json").read_text())
    assert rep["rows"]["generated (all held-out conditions)"]["n"] > 0


def test_conditioners_for_labels_and_a_local_text_encoder(tmp_path):
    """--conditioning labels builds fields from the label columns (categorical / numeric, prep columns left out);
    --text-encoder takes a local transformers folder and stays frozen."""
    tf = pytest.importorskip("transformers")
    sys.path.insert(0, str(ROOT / "recipes" / "audio_folder"))
    import stages

    from audioldm.data import Clip

    train = [Clip(path=Path("x"), caption=None, labels={"kit": k, "size": s, "split": "train", "source": "a",
                                                       "duration": 0.5}) for k, s in (("a", 10), ("b", 14))]
    args = type("A", (), {"conditioning": "labels", "label_fields": None, "text_encoder": None, "data": "d",
                     "label_words": None})()
    cond, key = stages.build_conditioner(args, stages.PRESETS["tiny"](), train)
    assert key == "labels" and [(f.name, f.kind) for f in cond.config.fields] == [("kit", "categorical"),
                                                                                  ("size", "numeric")]
    assert cond.config.parse_prompts and cond.parse(["kit b"]) == [{"kit": "b"}]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "kick"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tf.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "enc")
    tf.BertModel(tf.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(tmp_path / "enc")
    args.conditioning, args.text_encoder = "text", str(tmp_path / "enc")
    cond, key = stages.build_conditioner(args, stages.PRESETS["tiny"](), train)
    assert key == "caption" and cond.pooled_dim == 16 and cond.token_dim == 16
    assert not any(p.requires_grad for p in cond.parameters())
    # both: the frozen text encoder beside the label fields, whose tokens take the encoder's width
    args.conditioning = "both"
    cond, key = stages.build_conditioner(args, stages.PRESETS["tiny"](), train)
    assert key == "both" and cond.token_dim == 16 and cond.labels.config.dim == 16 and cond.labels.config.tokens
    assert not cond.labels.config.parse_prompts and cond.pooled_dim == 16 + stages.PRESETS["tiny"]().text_dim
    c = cond([{"prompt": "a kick", "labels": {"kit": "b", "size": 12}}, {"prompt": None, "labels": {"kit": "a"}}])
    assert c["tokens"].shape[0] == 2 and c["tokens"].shape[-1] == 16
