"""The shared evaluation pieces: the judge, memorisation and diversity figures can fail on a wrong implementation
(a prototype-per-category generator, copies of training clips), and the CLAP audio embedder plugs in offline."""

import numpy as np
import pytest
import torch

from audioldm.evaluation.generalisation import (chance_levels, nearest_distances, score_set, train_judge,
                                                within_category_spread)


def _mels(kind: str, n: int, seed: int) -> torch.Tensor:
    """Fake log-mels [n, 16, 20]: 'low' has energy in the bottom bands, 'high' in the top ones, plus noise."""
    g = torch.Generator().manual_seed(seed)
    m = torch.full((n, 16, 20), -8.0) + 0.5 * torch.randn(n, 16, 20, generator=g)
    band = slice(0, 5) if kind == "low" else slice(11, 16)
    m[:, band] += 5 + torch.randn(n, 1, 1, generator=g)
    return m


def test_judge_scores_and_figures():
    train = torch.cat([_mels("low", 24, 0), _mels("high", 24, 1)])
    cats = ["low"] * 24 + ["high"] * 24
    judge = train_judge(train, cats, steps=60)
    held = torch.cat([_mels("low", 8, 2), _mels("high", 8, 3)])
    hcats = ["low"] * 8 + ["high"] * 8
    ref, tr = judge.embed(held), judge.embed(train)
    real = score_set(judge, held, hcats, ref, tr)
    assert real["accuracy"] == 1.0 and abs(real["frechet_to_heldout_real"]) < 1e-3
    swapped = score_set(judge, held, hcats[::-1], ref, tr)  # asked for the other category: adherence fails
    assert swapped["accuracy"] == 0.0
    copies = score_set(judge, train[:16], cats[:8] + cats[24:32], ref, tr)  # copies of training clips
    assert copies["nearest_train_distance_median"] == pytest.approx(0, abs=1e-6)
    assert real["nearest_train_distance_median"] > 0
    proto = held[[0] * 8 + [8] * 8]  # one prototype per category: no spread at all
    assert score_set(judge, proto, hcats, ref, tr)["within_category_spread"] == pytest.approx(0, abs=1e-6)
    assert real["within_category_spread"] > 0
    unknown = score_set(judge, held[:2], ["low", "cowbell"], ref, tr)  # a category the judge never saw
    assert unknown["n"] == 2 and unknown["n_scored"] == 1
    assert chance_levels(["a", "a", "b"], ["a", "b", "c"]) == {"uniform": pytest.approx(1 / 3),
                                                              "majority": pytest.approx(2 / 3),
                                                              "balanced_majority": pytest.approx(1 / 2)}


def test_distance_helpers():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(nearest_distances(a, np.array([[0.0, 1.0], [3.0, 0.0]])), [1.0, 4.0])
    assert within_category_spread(a, ["x", "x"]) == {"x": pytest.approx(5.0)}
    assert within_category_spread(a, ["x", "y"]) == {}


def test_clap_judge_embedder_offline(tmp_path):
    tf = pytest.importorskip("transformers")
    from audioldm.evaluation.embedders import clap_judge_embedder
    from audioldm.mel import MelConfig

    audio = tf.ClapAudioConfig(window_size=4, num_mel_bins=64, spec_size=128, patch_size=4, patch_stride=(4, 4),
                               depths=[1, 1], num_heads=[2, 2], hidden_size=32, patch_embeds_hidden_size=16,
                               projection_dim=16, projection_hidden_size=16, num_hidden_layers=2)
    text = tf.ClapTextConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, projection_dim=16, projection_hidden_size=16)
    torch.manual_seed(0)
    tf.ClapModel(tf.ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)) \
        .save_pretrained(tmp_path / "clap")
    tf.ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=1, fft_window_size=1024,
                            hop_length=480, truncation="rand_trunc").save_pretrained(tmp_path / "clap")
    embed = clap_judge_embedder(tmp_path / "clap", MelConfig())
    mels = torch.cat([_mels("low", 2, 0), _mels("high", 2, 1)]).repeat(1, 4, 1)  # [4, 64, 20]
    e = embed(mels)
    assert e.shape == (4, 16) and np.allclose(np.linalg.norm(e, axis=1), 1.0)
    assert not np.allclose(e[0], e[3])
    with pytest.raises(FileNotFoundError, match="not a local transformers ClapModel folder"):
        clap_judge_embedder(tmp_path / "nothing", MelConfig())


def test_balanced_accuracy_sees_through_a_dominant_category():
    """With one category 80% of the clips, a judge that always answers it scores 80% accuracy but only 50% balanced
    accuracy (mean per-category recall), which is what the majority guesser gets: the report shows both."""
    train = torch.cat([_mels("low", 24, 0), _mels("high", 24, 1)])
    judge = train_judge(train, ["low"] * 24 + ["high"] * 24, steps=60)
    held = torch.cat([_mels("low", 16, 2), _mels("high", 4, 3)])
    ref, tr = judge.embed(held), judge.embed(train)
    always_low = held[[0] * 20]  # a "generator" that makes the dominant category whatever it is asked
    cats = ["low"] * 16 + ["high"] * 4
    r = score_set(judge, always_low, cats, ref, tr)
    assert r["accuracy"] == pytest.approx(0.8) and r["balanced_accuracy"] == pytest.approx(0.5)
    assert score_set(judge, held, cats, ref, tr)["balanced_accuracy"] == 1.0
    ch = chance_levels(cats, ["low", "high"])
    assert ch["majority"] == pytest.approx(0.8) and ch["balanced_majority"] == pytest.approx(0.5)
