"""CachedConditioner: a frozen conditioner's outputs computed once per distinct input, equal to running it."""

import torch

from audioldm.conditioning import TextConditioner, TextConditionerConfig
from audioldm.training.cached_conditions import CachedConditioner


class Counting(TextConditioner):
    calls = 0

    def forward(self, prompts):
        type(self).calls += len(prompts)
        return super().forward(prompts)


def test_cache_equals_the_encoder_and_runs_it_once_per_caption():
    torch.manual_seed(0)
    enc = Counting(TextConditionerConfig(vocab=["a", "kick", "snare", "drum", "loud"], dim=16, layers=1, heads=2,
                                         pooled_dim=8)).eval()
    caps = ["a kick", "a loud snare drum", "kick"]
    cached = CachedConditioner(enc, caps * 5)
    assert Counting.calls == 3 + 1 and len(cached) == 3  # three captions, and the null (the empty prompt) once
    assert not any(p.requires_grad for p in cached.parameters())  # the encoder is frozen
    batch = ["a loud snare drum", "kick", "a kick", "kick"]
    got, ref = cached(batch), enc(batch)
    assert Counting.calls == 4 + 4  # only the reference call above ran the encoder
    torch.testing.assert_close(got["pooled"], ref["pooled"])
    L = ref["tokens"].shape[1]
    assert got["tokens"].shape[1] == L and torch.equal(got["mask"], ref["mask"])
    torch.testing.assert_close(got["tokens"] * got["mask"][..., None], ref["tokens"] * ref["mask"][..., None])
    before = Counting.calls
    cached(["drum"])  # not cached: encoded on the spot, once
    cached(["drum", "drum"])
    assert Counting.calls == before + 1
    null = cached.null_condition(3)
    torch.testing.assert_close(null["pooled"], enc.null_condition(3)["pooled"])
    assert cached.pooled_dim == 8 and cached.token_dim == 16
