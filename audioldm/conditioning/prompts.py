"""Text prompts -> label dicts for label-conditioned models, driven by the model's own label fields, so one trained
label model answers both ``labels={"instrument": "violin", "pitch": 72}`` and ``"a loud violin note, C5"``.

Rules (case-insensitive, whole words):
- a categorical field matches its values and its ``aliases`` (word -> value), multi-word values included;
- a numeric field with ``note_names`` takes scientific pitch names (C4 = MIDI 60; C#4, Db4, Bb3, "middle C") or
  "pitch 72" / "midi 72" / "note 72";
- a numeric field's ``aliases`` map words to numbers (e.g. velocity: soft 40, medium 80, loud 120).
- a numeric field also takes "NAME 100" / "NAME=100" (e.g. "velocity 100").
A field the prompt does not mention stays unset (the conditioner's null embedding for it). A prompt that mentions
nothing the model knows, two different values for one field, or any word that is neither one of these nor a filler
word of :data:`STOP_WORDS` is a :class:`ConditionError` naming the word and listing what the model knows.
"""

from __future__ import annotations

import re

from ..errors import ConditionError

__all__ = ["parse_prompt", "NOTE_OFFSETS", "STOP_WORDS"]

NOTE_OFFSETS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_NOTE = re.compile(r"(?<![a-z0-9#])([a-g])(#|♯|b|♭|-sharp|-flat| sharp| flat)?(-?[0-9])(?![0-9a-z])")
_NUMBER = re.compile(r"\b(?:pitch|midi|note)\s*(?:=|:)?\s*(\d{1,3})\b")


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9#♯♭]+", " ", text.lower()) + " "


def _notes(text: str) -> list[int]:
    t = text.lower()
    out = []
    for letter, acc, octave in _NOTE.findall(t):
        shift = 1 if acc in ("#", "♯", "-sharp", " sharp") else (-1 if acc in ("b", "♭", "-flat", " flat") else 0)
        out.append(12 * (int(octave) + 1) + NOTE_OFFSETS[letter] + shift)
    if re.search(r"\bmiddle c\b", t):
        out.append(60)
    out += [int(n) for n in _NUMBER.findall(t)]
    return out


# Words a prompt may carry besides the labels it names; anything else is refused (the error names the word), so
# "a cello playing G3" is an error for a model without a cello instead of silently giving another instrument.
STOP_WORDS = frozenset("""
a an the of on in at with by for to from and or is are this that some one single very really quite please
play plays played playing sound sounds sounding sample samples note notes tone tones hit hits shot
instrument instruments pitch midi velocity
""".split())


def _field_number(f, text: str) -> list[float]:
    """'velocity 100', 'velocity=100', 'velocity: 100' for a numeric field called velocity."""
    pat = re.compile(rf"\b{re.escape(f.name.lower())}\s*(?:=|:)?\s*(-?\d+(?:\.\d+)?)\b")
    return [float(v) if "." in v else int(v) for v in pat.findall(text.lower())]


def _unknown_words(text: str, fields) -> list[str]:
    """Words of ``text`` that are neither a value/alias of a field, a note name or number form, nor a stop word."""
    t = _NOTE.sub(" ", text.lower())
    t = _NUMBER.sub(" ", t)
    t = re.sub(r"\bmiddle c\b", " ", t)
    for f in fields:
        if f.kind == "numeric":
            t = re.sub(rf"\b{re.escape(f.name.lower())}\s*(?:=|:)?\s*-?\d+(?:\.\d+)?\b", " ", t)
    words = _words(t)
    names = {_words(n).strip() for f in fields for n in (list(f.values) if f.kind == "categorical" else [])
             + list(f.aliases)}
    for name in sorted(names, key=len, reverse=True):  # multi-word names first ("french horn" before "horn")
        while f" {name} " in words:
            words = words.replace(f" {name} ", " ")
    field_names = {w for f in fields for w in _words(f.name).split()}  # "kit b", "size 12" read naturally
    out = []
    for w in words.split():
        if w not in STOP_WORDS and w not in field_names and w not in out:
            out.append(w)
    return out


def parse_prompt(text: str, fields) -> dict:
    """``fields``: the conditioner's LabelField list. Returns {field name: value} for the fields the prompt names.
    A word that is neither known to a field nor in :data:`STOP_WORDS` is a ConditionError naming it."""
    if not isinstance(text, str):
        raise ConditionError(f"prompts must be strings, got {text!r}")
    words = _words(text)
    out = {}
    for f in fields:
        found = set()
        if f.kind == "categorical":
            names = {v.lower(): v for v in f.values}
            names.update({a.lower(): v for a, v in f.aliases.items()})
            for name, value in names.items():
                if f" {_words(name).strip()} " in words:
                    found.add(value)
        else:
            if f.note_names:
                found.update(_notes(text))
            found.update(_field_number(f, text))
            for a, v in f.aliases.items():
                if f" {_words(a).strip()} " in words:
                    found.add(v)
        if len(found) > 1:
            raise ConditionError(f"prompt {text!r} names several {f.name} values {sorted(found, key=str)}; give one")
        if found:
            out[f.name] = found.pop()
    unknown = _unknown_words(text, fields)
    if not out:
        extra = f" (unknown words: {', '.join(map(repr, unknown))})" if unknown else ""
        raise ConditionError(f"prompt {text!r} names nothing this model knows{extra}; it understands "
                             f"{describe(fields)}")
    if unknown:
        raise ConditionError(f"prompt {text!r}: unknown word(s) {', '.join(map(repr, unknown))}; this model "
                             f"understands {describe(fields)} (plus a few filler words such as 'a', 'the', "
                             f"'playing', 'note')")
    return out


def describe(fields) -> str:
    parts = []
    for f in fields:
        if f.kind == "categorical":
            extra = f" (or {sorted(f.aliases)})" if f.aliases else ""
            parts.append(f"{f.name}: {f.values}{extra}")
        else:
            how = [f"a number in [{f.low:g}, {f.high:g}]"]
            if f.note_names:
                how.append("a note name such as C4 = 60")
            if f.aliases:
                how.append(f"one of {sorted(f.aliases)}")
            parts.append(f"{f.name}: " + " or ".join(how))
    return "; ".join(parts)
