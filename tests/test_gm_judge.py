"""The GM judge (audioldm/evaluation/gm_judge.py; recipes/gm_notes/train_judge.py trains the full one on every GM
program from two soundfonts): a briefly trained one saves, loads and scores, and the stage decomposition (real ->
vocoder -> VAE + vocoder -> generated) runs on the shipped model with it."""

import numpy as np
import pytest
import torch

pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

from audioldm.data.gm_notes import DRUM_PROGRAM, NoteGrid, NoteRenderer, render_grid  # noqa: E402
from audioldm.evaluation.gm_judge import (FAMILIES, decomposition_table, family_of, gm_decomposition,  # noqa: E402
                                          load_gm_judge, program_class)
from audioldm.mel import MelFrontend  # noqa: E402
from audioldm.weights import WeightsError  # noqa: E402

def _tiny_judge(tmp_path):
    """A briefly trained judge over renders of 6 programs (the shipped judge is trained by train_judge.py)."""
    from audioldm.evaluation.classifier import NoteClassifier, NoteClassifierConfig, train_classifier
    from audioldm.evaluation.gm_judge import GMJudge, program_class

    r, notes = NoteRenderer(None), [(p, q) for p in (0, 40, 56, 73, 24, DRUM_PROGRAM) for q in (50, 60, 70)]
    mels = MelFrontend()(torch.stack([torch.from_numpy(r.render(p, q, 100, 2.0, 1.0)) for p, q in notes]))
    models = []
    for classes, label in ((FAMILIES, family_of), ([f"program {i}" for i in range(128)] + ["drum kit"],
                                                   program_class)):
        torch.manual_seed(0)
        m = NoteClassifier(NoteClassifierConfig(classes=classes, channels=[8, 16], embed_dim=16))
        train_classifier(m, mels, torch.tensor([classes.index(label(p)) for p, _ in notes]), steps=40, batch_size=18, lr=5e-3)
        models.append(m)
    judge = GMJudge(*models, frames=mels.shape[-1], log_floor=float(np.log(1e-5)), info={"soundfonts": ["TimGM6mb"]})
    loaded = load_gm_judge(judge.save(tmp_path / "judge"))
    with torch.no_grad():  # the folder gives back the same two classifiers
        for a, b in ((judge.family, loaded.family), (judge.program, loaded.program)):
            torch.testing.assert_close(a(mels), b(mels), atol=0, rtol=0)
    return loaded, mels, [p for p, _ in notes]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return _tiny_judge(tmp_path_factory.mktemp("judge"))


def test_judge_folder_round_trip_and_scores(judge, tmp_path):
    judge, mels, programs = judge
    assert judge.family.config.classes == FAMILIES and len(judge.program.config.classes) == 129
    assert judge.info["soundfonts"] == ["TimGM6mb"]
    s = judge.score(mels, programs)
    fam = judge.predict_family(mels)
    assert s["family_accuracy"] == pytest.approx(np.mean([f == family_of(p) for f, p in zip(fam, programs)]))
    assert s["program_accuracy"] == pytest.approx(np.mean([q == program_class(p) for q, p in
                                                           zip(judge.predict_program(mels), programs)]))
    assert judge.embed(mels[:, :, :80]).shape == (len(programs), 16)  # shorter clips: padded with silence
    torch.testing.assert_close(judge.fit(mels[:, :, :80])[..., 80:], torch.full_like(mels[..., 80:], np.log(1e-5)))
    with pytest.raises(WeightsError, match="judge.json"):
        load_gm_judge(tmp_path)


def test_decomposition_runs_on_the_shipped_model(judge, tmp_path):
    judge = judge[0]
    from audioldm.cli import default_model
    from audioldm.data import read_manifest
    from audioldm.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(default_model())
    render_grid(NoteGrid(programs=[0, 73], pitches=[62, 69], velocities=[80]), tmp_path / "notes")
    clips = read_manifest(tmp_path / "notes" / "manifest.jsonl")
    fields = [f.name for f in pipe.conditioner.config.fields]
    rep = gm_decomposition(pipe, clips, set(), judge, 1.28, fields, per_condition=1, max_conditions=3)
    rows = rep["rows"]
    assert list(rows)[:4] == ["real (held-out)", "real -> vocoder", "real -> VAE -> vocoder",
                              "generated (all held-out conditions)"]
    assert rep["conditions"] == 3 and rows["generated (all held-out conditions)"]["n"] == 3
    assert rows["real (held-out)"]["frechet_to_real"] == pytest.approx(0.0, abs=1e-6)
    assert rows["real (held-out)"]["pitch_within_50_cents"] >= 2 / 3  # TimGM6mb renders at their pitch
    assert rows["real -> VAE -> vocoder"]["frechet_to_real"] > 0
    assert "| real -> vocoder |" in decomposition_table(rep)
