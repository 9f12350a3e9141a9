"""Inputs that used to give a wrong answer without a word (issue 35): each now gives the right one, or a named
error or warning, before any work."""

import json
import warnings

import numpy as np
import pytest

from audioldm.export import ExportError, read_prompt_file


def test_csv_cells_stay_what_they_were_written_as(tmp_path):
    """Captions "808" / "1999" stay text, a label "007" stays "007", "nan" / "inf" are not numbers."""
    p = tmp_path / "p.csv"
    p.write_text('prompt,kit,size\n808,007,12\n1999,jazz,0.5\n')
    rows = read_prompt_file(p)
    assert [r["prompt"] for r in rows] == ["808", "1999"]
    assert rows[0]["labels"] == {"kit": "007", "size": 12} and rows[1]["labels"] == {"kit": "jazz", "size": 0.5}
    for bad in ("nan", "inf", "-Infinity"):
        q = tmp_path / f"{bad}.csv"
        q.write_text(f"prompt,size\na hit,{bad}\n")
        assert read_prompt_file(q)[0]["labels"] == {"size": bad}  # text, which a numeric field then refuses


def test_jsonl_extra_keys_are_labels_as_in_csv(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "a hit", "kit": "jazz"}) + "\n")
    assert read_prompt_file(p)[0]["labels"] == {"kit": "jazz"}


def test_a_prompt_that_is_not_text_is_refused_naming_the_row(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "a hit"}\n{"prompt": 123}\n')
    with pytest.raises(ExportError, match=r"p.jsonl:2: prompt must be text, got 123"):
        read_prompt_file(p)


def test_export_seeds_never_overlap(tmp_path):
    from audioldm.export import _plan

    class P:
        name = "m"
    rows = [{"prompt": f"p{i}", "_line": i} for i in range(1001)]
    plan = _plan(P(), rows, 1001, "wav", 0)
    seeds = [s["seed"] for s in plan]
    assert len(set(seeds)) == len(seeds)


def test_dollar_signs_in_a_prompt_are_text_in_the_spectrogram(tmp_path):
    from audioldm.export import save_spectrogram

    mel = np.random.default_rng(0).normal(-5, 1, (64, 50)).astype(np.float32)
    for title in (r"an $\foo$ hit", "$5 and $10"):
        assert save_spectrogram(tmp_path / "a.png", mel, 16000, 160, title).stat().st_size > 1000


def test_portable_id_of_a_hub_id_is_the_id(tmp_path):
    from audioldm.files import portable_model_id

    assert portable_model_id("cvssp/audioldm-s-full-v2") == "cvssp/audioldm-s-full-v2"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.json").write_text("{}")
    assert portable_model_id(tmp_path / "m").startswith("m@") and "e3b0c44298fc" not in portable_model_id(tmp_path / "m")


def test_empty_prompt_and_long_byte_prompt_say_so(tiny_model):
    from audioldm import AudioLDM
    from audioldm.errors import UnknownWordsWarning

    pipe = AudioLDM.from_pretrained(tiny_model)
    with pytest.warns(UnknownWordsWarning, match="empty prompt.*unconditioned"):
        pipe.generate("", duration=0.32, steps=1, progress=False)


def test_text_encoder_truncation_warns():
    """The learned text encoder reads max_tokens tokens: a longer prompt (byte or word level) says what it drops."""
    from audioldm.conditioning import TextConditioner, TextConditionerConfig, prompt_reports
    from audioldm.errors import UnknownWordsWarning

    cond = TextConditioner(TextConditionerConfig(tokenizer="byte", dim=16, heads=2, pooled_dim=16, max_tokens=8))
    with pytest.warns(UnknownWordsWarning, match="longer than the text encoder reads; its last 5 token"):
        prompt_reports(cond, ["x" * 12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prompt_reports(cond, ["short"])


def test_pretrained_text_encoder_pickles_are_refused(tmp_path):
    tf = pytest.importorskip("transformers")
    from audioldm.conditioning.pretrained import PretrainedTextConditioner, PretrainedTextConfig

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "kick"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tf.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "enc")
    tf.BertModel(tf.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(tmp_path / "enc")
    import torch
    from safetensors.torch import load_file
    st = tmp_path / "enc" / "model.safetensors"
    torch.save(load_file(str(st)), tmp_path / "enc" / "pytorch_model.bin")  # the same weights, as a pickle only
    st.unlink()
    with pytest.raises(Exception, match="safetensors"):
        PretrainedTextConditioner(PretrainedTextConfig(source=str(tmp_path / "enc")))


def test_latent_cache_is_keyed_by_what_made_it(tiny_notes, tmp_path):
    """A latent cache made with another VAE or another clip length is stale (the recipes rebuild it)."""
    import torch

    from audioldm.data import ClipDataset, read_manifest
    from audioldm.data.latents import build_latent_cache, cache_is_current, cache_key
    from audioldm.vae import VAE_PRESETS, MelVAE

    clips = read_manifest(tiny_notes[0] / "manifest.jsonl")[:4]
    torch.manual_seed(0)
    vae, other = MelVAE(VAE_PRESETS["tiny"]()), MelVAE(VAE_PRESETS["tiny"]())
    ds = ClipDataset(clips, vae.config.mel, 0.32)
    cache = build_latent_cache(vae, ds, tmp_path / "latents.safetensors")
    assert cache_is_current(cache, cache_key(vae, ds))
    assert not cache_is_current(cache, cache_key(other, ds))
    assert not cache_is_current(cache, cache_key(vae, ClipDataset(clips, vae.config.mel, 0.64)))
    assert not cache_is_current(tmp_path / "none.safetensors", cache_key(vae, ds))


def test_an_array_without_its_rate_is_named(tiny_model):
    """Editing an array without sample_rate= takes it at the model's rate, and says so."""
    from audioldm import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    x = np.zeros(pipe.sample_rate // 2, dtype=np.float32)
    with pytest.warns(UserWarning, match="without sample_rate: taken to be at the model's 16000 Hz"):
        pipe.transform(x, prompt="a", strength=0.3, steps=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        pipe.transform(x, prompt="a", strength=0.3, steps=1, sample_rate=16000, progress=False)


def test_empty_labels_say_the_output_is_unconditioned():
    from audioldm import AudioLDM
    from audioldm.errors import UnknownWordsWarning

    pipe = AudioLDM.from_pretrained("gm-notes-fast")
    with pytest.warns(UnknownWordsWarning, match="empty labels.*unconditioned"):
        pipe.requests(labels={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.requests(labels={"instrument": "flute"})


def test_an_empty_licence_file_does_not_stop_packaging(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "audio_folder"))
    import run

    (tmp_path / "LICENSE").write_text("")
    (tmp_path / "COPYING").write_text("\n\nCC0 1.0\n")
    assert run.read_licence(tmp_path, None) == "CC0 1.0"
    (tmp_path / "COPYING").write_text("")
    assert run.read_licence(tmp_path, None) is None and run.read_licence(tmp_path, "MIT") == "MIT"
