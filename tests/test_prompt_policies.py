"""Unknown words, one policy per conditioner kind: label models refuse them, learned word-level text encoders warn
(and say when the output is unconditioned), subword encoders read everything. Plus the new-user fixes: file
modes follow the umask, the top-level API is lazy, export records what the model read."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from audioldm.conditioning import ConditionError, LabelField, UnknownWordsWarning, prompt_reports
from audioldm.conditioning.prompts import STOP_WORDS, parse_prompt

FIELDS = [LabelField("instrument", values=["violin", "piano", "french horn"]),
          LabelField("pitch", "numeric", low=48, high=83, note_names=True),
          LabelField("velocity", "numeric", low=40, high=120, aliases={"loud": 120})]


@pytest.mark.parametrize("prompt, word", [("a cello playing G3", "cello"), ("a cello and a violin playing G3", "cello"),
                                          ("violin C5 with vibrato", "vibrato"), ("a horn, C4", "horn")])
def test_label_models_refuse_unknown_words(prompt, word):
    with pytest.raises(ConditionError, match=rf"unknown word\(s\) '{word}'.*violin"):
        parse_prompt(prompt, FIELDS)


def test_label_models_keep_filler_words_and_numbers():
    assert parse_prompt("the french horn playing a loud note, pitch 60", FIELDS) == \
        {"instrument": "french horn", "pitch": 60, "velocity": 120}
    assert parse_prompt("piano C4, velocity 100", FIELDS) == {"instrument": "piano", "pitch": 60, "velocity": 100}
    assert {"a", "the", "playing", "note", "sound"} <= STOP_WORDS


def test_shipped_label_model_refuses_an_instrument_it_lacks():
    from audioldm import AudioLDM
    from audioldm.pretrained import default_model

    pipe = AudioLDM.from_pretrained(default_model())
    with pytest.raises(ConditionError, match="unknown word.*'cello'.*clarinet"):
        pipe.generate("a cello playing G3", steps=1, progress=False)
    res = pipe.generate("a violin playing G3", steps=1, duration=0.2, progress=False)
    assert res.reads == [{"labels": {"instrument": "violin", "pitch": 55}}]


def test_word_level_text_model_warns_and_says_when_unconditioned(tiny_model):
    from audioldm import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    with pytest.warns(UnknownWordsWarning, match=r"'purple', 'elephant'.*unconditioned"):
        res = pipe.generate("purple elephant", steps=2, duration=0.2, progress=False)
    assert res.reads == [{"tokens": [], "unknown_words": ["purple", "elephant"]}]
    # "unconditioned" is literal: the unknown words are dropped, so the condition is the null (empty) prompt
    cond = pipe.conditioner(["purple elephant"])
    torch.testing.assert_close(cond["pooled"], pipe.conditioner.null_condition(1)["pooled"])
    with pytest.warns(UnknownWordsWarning, match="ignored: 'purple'") as rec:
        res = pipe.generate("purple piano", steps=2, duration=0.2, progress=False)
    assert "unconditioned" not in str(rec[0].message) and res.reads[0]["tokens"] == ["piano"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known words only: no warning
        pipe.generate("piano", steps=2, duration=0.2, progress=False)


def test_subword_encoders_are_not_checked(tmp_path):
    tf = pytest.importorskip("transformers")
    from audioldm.conditioning.pretrained import PretrainedTextConditioner, PretrainedTextConfig

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "violin", "##s", "pur", "##ple"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tok = tf.BertTokenizer(str(tmp_path / "vocab.txt"))
    model = tf.BertModel(tf.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32))
    pc = PretrainedTextConditioner(PretrainedTextConfig(source="unused"), model=model, tokenizer=tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = prompt_reports(pc, ["purple violins"])
    assert rep == [{"tokens": ["pur", "##ple", "violin", "##s"], "unknown_words": []}]


def test_files_and_folders_get_the_umask_modes(tmp_path, tiny_model):
    from audioldm import AudioLDM, save_audio

    pipe = AudioLDM.from_pretrained(tiny_model)
    for umask, fmode, dmode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750)):
        old = os.umask(umask)
        try:
            wav = save_audio(tmp_path / f"a{umask}.wav", np.zeros(160, np.float32), 16000)
            folder = pipe.save_pretrained(tmp_path / f"m{umask}")
        finally:
            os.umask(old)
        assert wav.stat().st_mode & 0o777 == fmode
        assert folder.stat().st_mode & 0o777 == dmode
        assert (folder / "unet").stat().st_mode & 0o777 == dmode
        assert (folder / "unet" / "model.safetensors").stat().st_mode & 0o777 == fmode


def test_top_level_api_is_lazy():
    code = ("import sys, audioldm; from audioldm.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --version'\n"
            "from audioldm import AudioLDM, load_audio, save_audio, MelConfig, load_clips\n"
            "assert 'torch' in sys.modules and AudioLDM.__name__ == 'AudioLDM'\n"
            "print(sorted(set(dir(audioldm)) & {'AudioLDM', 'load_clips'}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1].replace("'", '"')) == ["AudioLDM", "load_clips"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import audioldm
        audioldm.nope
