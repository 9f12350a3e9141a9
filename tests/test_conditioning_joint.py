"""Text and labels together (--conditioning both): the joint conditioner's parts, its null, saving and loading, the
pipeline's requests for it, and the U-Net stage's part drop."""

import json

import numpy as np
import pytest
import torch

from audioldm.conditioning.io import load_conditioner, save_conditioner
from audioldm.conditioning import (ConditionError, LabelConditioner, LabelConditionerConfig, LabelField,
                                   TextConditioner, TextConditionerConfig)
from audioldm.conditioning.joint import JointConditioner
from audioldm.training.ldm_stage import drop_parts
from audioldm.weights import WeightsError

FIELDS = [LabelField("kit", values=["rock", "jazz"]), LabelField("velocity", "numeric", low=0, high=127)]


def joint(dim=16, label_dim=None):
    torch.manual_seed(0)
    text = TextConditioner(TextConditionerConfig(vocab=["kick", "snare", "drum"], dim=dim, layers=1, heads=2,
                                                 pooled_dim=24))
    labels = LabelConditioner(LabelConditionerConfig(fields=FIELDS, dim=label_dim or dim, pooled_dim=8, tokens=True))
    return JointConditioner(text, labels).eval()


def test_each_part_reads_its_own_input_and_an_absent_part_is_its_null():
    j = joint()
    c = j([{"prompt": "kick drum", "labels": {"kit": "rock", "velocity": 100}},
           {"prompt": "kick drum", "labels": None}, {"prompt": None, "labels": {"kit": "rock", "velocity": 100}},
           {"prompt": "snare drum", "labels": {"kit": "jazz", "velocity": 20}}])
    t, lab = j.text(["kick drum"]), j.labels([{"kit": "rock", "velocity": 100}])
    tn, ln = j.text.null_condition(1), j.labels.null_condition(1)
    L = t["tokens"].shape[1]
    assert c["tokens"].shape == (4, L + len(FIELDS), 16) and c["pooled"].shape == (4, 32) and j.pooled_dim == 32
    torch.testing.assert_close(c["pooled"][0], torch.cat([t["pooled"][0], lab["pooled"][0]]))
    torch.testing.assert_close(c["pooled"][1], torch.cat([t["pooled"][0], ln["pooled"][0]]))  # no labels: null
    torch.testing.assert_close(c["pooled"][2], torch.cat([tn["pooled"][0], lab["pooled"][0]]))  # no prompt: null
    torch.testing.assert_close(c["tokens"][0, L:], lab["tokens"][0])
    assert c["mask"][:, L:].all()
    assert not torch.allclose(c["pooled"][0], c["pooled"][3])  # both parts change the condition
    n = j.null_condition(2)
    assert n["tokens"].shape[1] == tn["tokens"].shape[1] + len(FIELDS) and n["pooled"].shape == (2, 32)
    with pytest.raises(ConditionError, match="prompt, labels or both"):
        j([{"prompt": None, "labels": None}])
    with pytest.raises(ConditionError, match="unknown kit 'metal'"):
        j([{"prompt": "kick", "labels": {"kit": "metal"}}])


def test_token_widths_must_match_and_saving_round_trips(tmp_path):
    with pytest.raises(ValueError, match="token widths differ: text 16, labels 8"):
        joint(16, 8)
    j = joint()
    save_conditioner(tmp_path / "c", j)
    assert json.loads((tmp_path / "c" / "config.json").read_text())["kind"] == "joint"
    back = load_conditioner(tmp_path / "c")
    assert isinstance(back, JointConditioner)
    req = [{"prompt": "snare", "labels": {"velocity": 64}}]
    torch.testing.assert_close(back(req)["tokens"], j(req)["tokens"])
    with pytest.raises(FileExistsError):
        save_conditioner(tmp_path / "c", j)
    # a joint folder whose labels part is something else is refused, naming the folder
    save_conditioner(tmp_path / "c" / "labels", j.text, overwrite=True)
    with pytest.raises(WeightsError, match="labels.*expected a label conditioner"):
        load_conditioner(tmp_path / "c")


def test_pipeline_takes_a_prompt_labels_or_both(tmp_path, tiny_model):
    from audioldm import AudioLDM

    base = AudioLDM.from_pretrained(tiny_model)
    j = joint(32)
    unet = type(base.unet)(type(base.unet.config)(**{**base.unet.config.__dict__, "cond_dim": j.pooled_dim}))
    pipe = AudioLDM(base.vae, unet, base.schedule, j, base.vocoder, base.defaults, name="joint-test")
    kw = dict(duration=0.2, steps=2, seed=0, progress=False)
    both = pipe.generate("kick drum", labels={"kit": "jazz", "velocity": 90}, num_per_prompt=2, **kw)
    assert both.prompts == ["kick drum"] * 2 and both.labels == [{"kit": "jazz", "velocity": 90}] * 2
    assert both.reads[0] == {"tokens": ["kick", "drum"], "unknown_words": [], "labels": {"kit": "jazz", "velocity": 90}}
    text_only = pipe.generate("kick drum", **kw)
    labels_only = pipe.generate(labels={"kit": "jazz", "velocity": 90}, **kw)
    assert text_only.labels == [None] and labels_only.prompts == [None]
    assert not np.allclose(text_only.audio, both.audio[:1]) and not np.allclose(labels_only.audio, both.audio[:1])
    # one prompt broadcast over several label dicts
    r = pipe.generate("snare", labels=[{"kit": "rock"}, {"kit": "jazz"}], **kw)
    assert r.prompts == ["snare", "snare"] and len(r.audio) == 2
    with pytest.raises(ConditionError, match="prompt= and/or labels="):
        pipe.generate(**kw)
    with pytest.raises(ConditionError, match="2 prompts but 3 label dicts"):
        pipe.generate(["a", "b"], labels=[{}, {}, {}], **kw)
    pipe.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["conditioning"] == "both"
    back = AudioLDM.from_pretrained(tmp_path / "m")
    assert back.conditioning == "both" and not back.uses_labels
    np.testing.assert_allclose(back.generate("kick drum", labels={"kit": "jazz", "velocity": 90}, **kw).audio,
                               both.audio[:1], atol=1e-5)
    with pytest.raises(ConditionError, match="exactly one"):  # a text-only model still refuses labels with a prompt
        base.generate("piano", labels={"pitch": 60}, progress=False)


def test_part_drop_keeps_one_part_and_is_seeded():
    items = [{"prompt": "kick", "labels": {"kit": "rock"}} for _ in range(200)]
    out = drop_parts(items, range(200), seed=0, epoch=0, p=0.3)
    assert out == drop_parts(items, range(200), seed=0, epoch=0, p=0.3)  # same seed, same drops
    assert items[0] == {"prompt": "kick", "labels": {"kit": "rock"}}  # inputs untouched
    no_text = sum(o["prompt"] is None for o in out) / 200
    no_labels = sum(o["labels"] is None for o in out) / 200
    assert 0.2 < no_text < 0.4 and 0.12 < no_labels < 0.32  # labels drop only where the text was kept: 0.3 * 0.7
    assert all(o["prompt"] is not None or o["labels"] is not None for o in out)
    everything = drop_parts(items, range(50), 0, 0, p=1.0)
    assert all(o["prompt"] is None and o["labels"] is not None for o in everything)
    # a request with one part only is never emptied
    assert drop_parts([{"prompt": None, "labels": {"kit": "rock"}}], [0], 0, 0, 1.0)[0]["labels"] == {"kit": "rock"}
