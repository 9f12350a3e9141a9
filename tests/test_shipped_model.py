"""The GM-notes models shipped inside the package: the teacher (gm-notes) and its 2-evaluation student
(gm-notes-fast, the default). Small, fp16, they read prompts and labels and make the requested note."""

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import audioldm
from audioldm.cli import main
from audioldm.pretrained import default_model
from audioldm.conditioning import ConditionError
from audioldm.evaluation import pitch_error_cents
from audioldm.pipeline import AudioLDM

MODEL = Path(audioldm.__file__).parent / "pretrained" / "gm-notes"  # the teacher
FAST = MODEL.parent / "gm-notes-fast"  # its distilled student, the default


@pytest.fixture(scope="module")
def pipe():
    return AudioLDM.from_pretrained(MODEL)


@pytest.mark.parametrize("folder", [MODEL, FAST], ids=["teacher", "student"])
def test_shipped_models_are_small_and_fp16(folder):
    assert (folder / "model_index.json").is_file()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 25 * 2 ** 20, size
    files = list(folder.rglob("*.safetensors"))
    assert len(files) >= 3
    for f in files:
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                t = st.get_tensor(k)
                assert not t.is_floating_point() or str(t.dtype) == "torch.float16", (f, k, t.dtype)


def test_the_default_is_the_student_and_env_overrides_it(monkeypatch):
    monkeypatch.delenv("AUDIOLDM_MODEL", raising=False)
    assert Path(default_model()) == FAST
    monkeypatch.setenv("AUDIOLDM_MODEL", str(MODEL))
    assert Path(default_model()) == MODEL


def test_phrasings_and_labels_agree(pipe):
    want = {"instrument": "violin", "pitch": 72}
    for p in ["violin C5", "a loud violin note, C5", "C5 on the violin", "a violin playing C5, loud"]:
        got = pipe.conditioner.parse([p])[0]
        assert {k: got[k] for k in want} == want, p
    with pytest.raises(ConditionError, match=r"unknown instrument 'tuba'; valid values: \[.*'violin'"):
        pipe.generate(labels={"instrument": "tuba", "pitch": 60}, progress=False)
    with pytest.raises(ConditionError, match=r"pitch=100 is out of range; valid: \[48, 83\]"):
        pipe.generate(labels={"instrument": "violin", "pitch": 100}, progress=False)
    with pytest.raises(ConditionError, match="names nothing this model knows"):
        pipe.generate("a dog barking", progress=False)


PROMPTS = ["a violin playing C5, loud", "flute G5", "a soft piano note, C4", "G4 on the trumpet"]


@pytest.fixture(scope="module")
def notes(pipe):
    """The README prompt and three more, 4 seeds each, at the model's default length."""
    return pipe.generate(PROMPTS, seed=0, num_per_prompt=4, progress=False)


def test_prompts_make_the_requested_notes(pipe, notes):
    """Most notes within 50 cents (report.py measures the full grid; this is a smoke test of the shipped weights,
    not the evaluation)."""
    res = notes
    assert res.labels[0] == {"instrument": "violin", "pitch": 72, "velocity": 120}
    assert res.audio.shape == (16, round(pipe.defaults.duration * 16000)) and np.isfinite(res.audio).all()
    cents = [pitch_error_cents(a, res.sample_rate, lab["pitch"]) for a, lab in zip(res.audio, res.labels)]
    assert sum(abs(c) <= 50 for c in cents) >= 12, np.round(cents)


def test_default_is_a_whole_note(pipe, notes):
    """The default length is the whole note the U-Net was trained on (onset, 1 s hold, release: 2.08 s, the nearest
    length the demo U-Net's latent grid allows to 2 s), and the generated notes end: their last 0.25 s is far below
    their held part, as in the real renders (>= 25 dB below there). The earlier model, trained on notes cut before
    their release (1.28 s default), fails both: asked for 2.08 s it still sounds at the end, 14-29 dB down (median
    21); this one is 64-90 dB down."""
    assert pipe.defaults.duration == pytest.approx(2.08)
    sr = notes.sample_rate
    assert notes.audio.shape[1] == round(2.08 * sr)

    def rms_db(x):
        return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)

    drops = [rms_db(a[int(0.1 * sr):int(0.9 * sr)]) - rms_db(a[-sr // 4:]) for a in notes.audio]
    assert np.median(drops) >= 40 and min(drops) >= 35, np.round(drops, 1)


def test_cli_uses_the_shipped_student_and_points_to_its_teacher(tmp_path, monkeypatch, capsys):
    """No --model: the student, at its 2 steps. What only the teacher can do (--steps 25, a negative prompt) exits 2
    with the student's range and a hint naming the teacher's folder, which then takes the same request."""
    monkeypatch.delenv("AUDIOLDM_MODEL", raising=False)
    out = tmp_path / "v.wav"
    args = ["generate", "--labels", "instrument=flute", "pitch=67", "velocity=80", "--quiet"]
    assert main(args + ["-o", str(out)]) == 0
    assert out.stat().st_size > 10000
    capsys.readouterr()
    for extra, why in ((["--steps", "25"], "distilled for steps in [1, 2]"),
                       (["--negative-prompt", "a trumpet"], "no unconditional branch")):
        assert main(args + ["-o", str(tmp_path / "x.wav")] + extra) == 2
        err = capsys.readouterr().err
        assert why in err and f"hint: the default model ({FAST})" in err and f"--model {MODEL}" in err, err
        assert not (tmp_path / "x.wav").exists()
    assert main(args + ["-o", str(tmp_path / "t.wav"), "--steps", "8", "--model", str(MODEL)]) == 0
    assert main(args + ["-o", str(tmp_path / "u.wav"), "--steps", "25", "--model", str(FAST)]) == 2
    assert "hint:" not in capsys.readouterr().err  # a model the user named is theirs to change


def test_fast_model_is_a_two_evaluation_student_of_the_teacher():
    """audioldm/pretrained/gm-notes-fast (recipes/distill): distilled from the shipped teacher (its id), one U-Net
    call per step without an unconditional half, 2 steps by default, and it makes the requested notes."""
    from audioldm.files import portable_model_id

    fast = AudioLDM.from_pretrained(FAST)
    assert fast.distilled is not None and fast.defaults.steps == 2 and fast.distilled.steps == [1, 2]
    assert fast.distilled.teacher == portable_model_id(MODEL) and fast.defaults.duration == pytest.approx(2.08)
    calls = []
    fast.unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    res = fast.generate(PROMPTS, seed=0, num_per_prompt=2, progress=False)
    assert calls == [8, 8]  # 8 clips, 2 evaluations, no unconditional half
    cents = [pitch_error_cents(a, res.sample_rate, lab["pitch"]) for a, lab in zip(res.audio, res.labels)]
    assert sum(abs(c) <= 50 for c in cents) >= 6, np.round(cents)
