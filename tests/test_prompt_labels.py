"""Prompts parsed into labels for label-conditioned models."""

import pytest

from audioldm.conditioning import ConditionError, LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.conditioning.prompts import parse_prompt

FIELDS = [LabelField("instrument", values=["violin", "piano", "french horn"], aliases={"fiddle": "violin"}),
          LabelField("pitch", "numeric", low=48, high=83, note_names=True),
          LabelField("velocity", "numeric", low=40, high=120, aliases={"soft": 40, "medium": 80, "loud": 120})]


@pytest.mark.parametrize("text, want", [
    ("a violin playing C5, loud", {"instrument": "violin", "pitch": 72, "velocity": 120}),
    ("violin C5", {"instrument": "violin", "pitch": 72}),
    ("a loud violin note, C5", {"instrument": "violin", "pitch": 72, "velocity": 120}),
    ("C5 on the violin", {"instrument": "violin", "pitch": 72}),
    ("Fiddle, c#4, soft", {"instrument": "violin", "pitch": 61, "velocity": 40}),
    ("bb3 french horn", {"instrument": "french horn", "pitch": 58}),
    ("Eb4 piano", {"instrument": "piano", "pitch": 63}),
    ("middle C on the piano", {"instrument": "piano", "pitch": 60}),
    ("piano, midi 67", {"instrument": "piano", "pitch": 67}),
    ("a piano", {"instrument": "piano"}),
])
def test_phrasings(text, want):
    assert parse_prompt(text, FIELDS) == want


def test_errors_list_what_the_model_knows():
    with pytest.raises(ConditionError, match="names nothing.*violin"):
        parse_prompt("a cat meowing", FIELDS)
    with pytest.raises(ConditionError, match="several instrument"):
        parse_prompt("violin and piano", FIELDS)
    cond = LabelConditioner(LabelConditionerConfig(fields=FIELDS, dim=8, pooled_dim=8, parse_prompts=True))
    with pytest.raises(ConditionError, match=r"pitch=96 is out of range; valid: \[48, 83\]"):
        cond(cond.parse(["violin C7"]))
    with pytest.raises(ConditionError, match="unknown instrument 'tuba'; valid values"):
        cond([{"instrument": "tuba"}])
    assert cond(cond.parse(["violin C5"]))["pooled"].shape == (1, 8)
    off = LabelConditioner(LabelConditionerConfig(fields=FIELDS, dim=8, pooled_dim=8))
    with pytest.raises(ConditionError, match="does not read text"):
        off.parse(["violin"])
