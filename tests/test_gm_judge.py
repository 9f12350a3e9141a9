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
    from audioldm.evaluation.gm_judge import PROGRAMS, GMJudge, JudgeConfig, JudgeNet, train_judge

    r, notes = NoteRenderer(None), [(p, q) for p in (0, 40, 56, 73, 24, DRUM_PROGRAM) for q in (50, 60, 70)]
    mels = MelFrontend()(torch.stack([torch.from_numpy(r.render(p, q, 100, 2.0, 1.0)) for p, q in notes]))
    torch.manual_seed(0)
    net = JudgeNet(JudgeConfig(channels=[8, 16], embed_dim=16))
    fam = torch.tensor([FAMILIES.index(family_of(p)) for p, _ in notes])
    prog = torch.tensor([PROGRAMS.index(program_class(p)) for p, _ in notes])
    losses = train_judge(net, mels, fam, prog, steps=60, batch_size=18, lr=1e-2)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    judge = GMJudge(net, frames=mels.shape[-1], log_floor=float(np.log(1e-5)), info={"soundfonts": ["TimGM6mb"]})
    loaded = load_gm_judge(judge.save(tmp_path / "judge"))
    with torch.no_grad():  # the folder gives back the same net
        for a, b in zip(judge.net(mels), loaded.net(mels)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(FileExistsError):
        judge.save(tmp_path / "judge")
    return loaded, mels, [p for p, _ in notes]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return _tiny_judge(tmp_path_factory.mktemp("judge"))


def test_judge_folder_round_trip_and_scores(judge, tmp_path):
    judge, mels, programs = judge
    assert judge.net.config.families == FAMILIES and len(judge.net.config.programs) == 129
    assert judge.info["soundfonts"] == ["TimGM6mb"]
    s = judge.score(mels, programs)
    fam, prog = judge.predict(mels)
    assert s["family_accuracy"] == pytest.approx(np.mean([f == family_of(p) for f, p in zip(fam, programs)]))
    assert s["program_accuracy"] == pytest.approx(np.mean([q == program_class(p) for q, p in zip(prog, programs)]))
    # the family is the one with the most summed program probability, so it agrees with the program whenever the
    # top program holds over half the probability
    with torch.no_grad():
        top = judge.net(judge.fit(mels))[1].softmax(-1).max(-1).values
    for f, q, t in zip(fam, prog, top.tolist()):
        if t > 0.5:
            assert f == family_of(128 if q == "drum kit" else int(q.split()[-1]))
    assert judge.embed(mels[:, :, :80]).shape == (len(programs), 16)  # shorter clips: padded with silence
    torch.testing.assert_close(judge.fit(mels[:, :, :80])[..., 80:], torch.full_like(mels[..., 80:], np.log(1e-5)))
    with pytest.raises(WeightsError, match="judge.json"):
        load_gm_judge(tmp_path)


# one program per GM family (and the drum kit), at odd pitches: the shipped judge was trained on even ones only
HELD_OUT_NOTES = [(0, 61), (11, 67), (19, 61), (24, 55), (33, 43), (40, 67), (48, 61), (56, 61), (65, 61), (73, 73),
                  (80, 61), (88, 61), (98, 67), (105, 61), (115, 61), (122, 61), (DRUM_PROGRAM, 39)]


def test_shipped_judge_on_notes_it_never_heard():
    """The shipped judge (recipes/gm_notes/train_judge.py) names the family of TimGM6mb notes at pitches it was
    not trained on; its folder records how it was trained and scored."""
    judge = load_gm_judge()
    assert set(judge.info["soundfonts"]) >= {"FluidR3_GM", "TimGM6mb"}
    assert judge.info["heldout_accuracy"]["TimGM6mb"]["family_accuracy"] >= 0.95
    r = NoteRenderer(None)
    wavs = [r.render(p, q, 100, 2.0, 1.0) for p, q in HELD_OUT_NOTES]
    mels = MelFrontend()(torch.stack([torch.from_numpy(w / max(1.0, np.abs(w).max() / 0.99)) for w in wavs]))
    s = judge.score(mels, [p for p, _ in HELD_OUT_NOTES])
    assert s["family_accuracy"] >= 15 / 17, judge.predict(mels)[0]
    # louder or softer is the same instrument (training shifted levels by up to +-1 nat)
    assert judge.score(mels - 0.7, [p for p, _ in HELD_OUT_NOTES])["family_accuracy"] >= 14 / 17


def test_decomposition_runs_on_the_shipped_model(judge, tmp_path):
    judge = judge[0]
    from audioldm.pretrained import default_model
    from audioldm.data import read_manifest
    from audioldm.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(default_model())
    render_grid(NoteGrid(programs=[0, 73], pitches=[62, 69], velocities=[80]), tmp_path / "notes")
    clips = read_manifest(tmp_path / "notes" / "manifest.jsonl")
    fields = [f.name for f in pipe.conditioner.config.fields]
    rep = gm_decomposition(pipe, clips[:3], set(), judge, 1.28, fields, per_condition=1, max_conditions=3,
                           seen_clips=clips[3:])
    rows = rep["rows"]
    assert list(rows) == ["real (held-out)", "real -> vocoder", "real -> VAE -> vocoder",
                          "generated (all held-out conditions)", "generated (unseen combinations)",
                          "generated (training combinations)"]
    assert rep["conditions"] == 3 and rows["generated (all held-out conditions)"]["n"] == 3
    assert rep["training_conditions"] == 1 and rows["generated (training combinations)"]["n"] == 1
    assert rows["real (held-out)"]["frechet_to_real"] == pytest.approx(0.0, abs=1e-4)  # sqrtm round-off
    assert rows["real (held-out)"]["pitch_within_50_cents"] >= 2 / 3  # TimGM6mb renders at their pitch
    assert rows["real -> VAE -> vocoder"]["frechet_to_real"] > 0
    assert "| real -> vocoder |" in decomposition_table(rep)
