import pytest
import torch

from audioldm.conditioning import (ConditionError, LabelConditioner, LabelConditionerConfig, LabelField,
                                   TextConditioner, TextConditionerConfig, WordTokenizer, drop_conditions)
from audioldm.unet import UNET_PRESETS, UNet, UNetConfig
from audioldm.weights import WeightsError


def labels_conditioner(tokens=False):
    torch.manual_seed(0)
    return LabelConditioner(LabelConditionerConfig(
        fields=[LabelField("instrument", values=["piano", "violin"]), LabelField("pitch", "numeric", low=48, high=83)],
        dim=16, pooled_dim=32, tokens=tokens))


def test_unet_presets_and_shapes():
    n = sum(p.numel() for p in UNet(UNET_PRESETS["audioldm-s"]()).parameters())
    assert 180e6 < n < 190e6  # AudioLDM-S's U-Net has ~185M parameters
    net = UNet(UNET_PRESETS["tiny"]())
    out = net(torch.randn(2, 4, 8, 16), torch.tensor([1.0, 999.0]), {"pooled": torch.randn(2, 32)})
    assert out.shape == (2, 4, 8, 16)
    with pytest.raises(ValueError, match="multiples of 2"):
        net(torch.randn(2, 4, 7, 16), torch.tensor([1.0, 2.0]), {"pooled": torch.randn(2, 32)})
    with pytest.raises(ValueError, match=r"cond\['pooled'\] must be \[B=2, 32\]"):
        net(torch.randn(2, 4, 8, 16), torch.tensor([1.0, 2.0]), {})
    with pytest.raises(ValueError, match="head_dim"):
        UNetConfig(block_channels=[32, 48], attention_levels=[1], head_dim=32, norm_groups=16)


def test_padding_tokens_do_not_change_cross_attention():
    torch.manual_seed(0)
    net = UNet(UNET_PRESETS["tiny"](context_dim=16)).eval()
    x, t, pooled = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 500.0]), torch.randn(2, 32)
    tok = torch.randn(2, 3, 16)
    a = net(x, t, {"pooled": pooled, "tokens": tok, "mask": torch.ones(2, 3, dtype=torch.bool)})
    padded = torch.cat([tok, 100 * torch.randn(2, 4, 16)], 1)
    mask = torch.tensor([[True] * 3 + [False] * 4] * 2)
    b = net(x, t, {"pooled": pooled, "tokens": padded, "mask": mask})
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    c = net(x, t, {"pooled": pooled, "tokens": padded, "mask": torch.ones_like(mask)})
    assert (a - c).abs().max() > 1e-3  # the check can fail: unmasked junk tokens do change the output


def test_gradient_checkpointing_matches_and_save_load(tmp_path):
    torch.manual_seed(0)
    net = UNet(UNET_PRESETS["tiny"]())
    x, t, cond = torch.randn(2, 4, 8, 8), torch.tensor([3.0, 7.0]), {"pooled": torch.randn(2, 32)}
    net(x, t, cond).square().mean().backward()
    g1 = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.config.gradient_checkpointing = True
    calls = []
    r = net.down_blocks[0].resnets[0]
    orig = r.forward
    r.forward = lambda *a: calls.append(1) or orig(*a)  # (a recompute in backward runs no module hooks)
    net(x, t, cond).square().mean().backward()
    assert len(calls) == 2  # checkpointed: run again in backward
    for a, b in zip(g1, [p.grad for p in net.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    net.eval().save_pretrained(tmp_path / "unet")
    back = UNet.from_pretrained(tmp_path / "unet")
    torch.testing.assert_close(back(x, t, cond), net(x, t, cond), atol=0, rtol=0)
    (tmp_path / "unet" / "config.json").write_text('{"kind": "vae"}')
    with pytest.raises(WeightsError, match="expected 'unet'"):
        UNet.from_pretrained(tmp_path / "unet")


def test_label_conditioner_errors_and_null():
    lc = labels_conditioner(tokens=True)
    c = lc([{"instrument": "violin", "pitch": 60}, {"instrument": "piano"}])
    assert c["pooled"].shape == (2, 32) and c["tokens"].shape == (2, 2, 16) and c["mask"].all()
    with pytest.raises(ConditionError, match=r"unknown instrument 'tuba'; valid values: \['piano', 'violin'\]"):
        lc([{"instrument": "tuba"}])
    with pytest.raises(ConditionError, match=r"pitch=100 is out of range; valid: \[48, 83\]"):
        lc([{"pitch": 100}])
    with pytest.raises(ConditionError, match="unknown label field"):
        lc([{"colour": "red"}])
    null = lc.null_condition(2)
    torch.testing.assert_close(null["pooled"], lc([{}, {}])["pooled"])
    assert not torch.allclose(null["pooled"][0], c["pooled"][0])


def test_text_conditioner_and_drop():
    tok = WordTokenizer.from_texts(["a violin playing C#4, loud", "piano, C4"])
    assert "c#4" in tok.vocab and tok.encode("violin C#4")[1:] == [tok.index["violin"], tok.index["c#4"]]
    assert tok.encode("kazoo")[1:] == [2]
    tc = TextConditioner(TextConditionerConfig(vocab=tok.vocab, dim=32, heads=2, pooled_dim=24))
    c = tc(["a violin playing C#4, loud", "piano"])
    assert c["pooled"].shape == (2, 24) and c["tokens"].shape[:2] == c["mask"].shape
    assert c["mask"].sum(1).tolist() == [7, 2]
    null = tc.null_condition(2)
    mixed = drop_conditions(c, null, torch.tensor([False, True]))
    torch.testing.assert_close(mixed["pooled"][1], null["pooled"][1])
    torch.testing.assert_close(mixed["pooled"][0], c["pooled"][0])
    assert mixed["tokens"].shape[1] == c["tokens"].shape[1] and mixed["mask"][1].sum() == 1
    bc = TextConditioner(TextConditionerConfig(tokenizer="byte", dim=32, heads=2, max_tokens=8))
    assert bc(["héllo wörld, a long prompt"])["mask"].shape == (1, 8)


def test_pretrained_text_conditioner_offline(tmp_path):
    tf = pytest.importorskip("transformers")
    from audioldm.conditioning.pretrained import PretrainedTextConditioner, PretrainedTextConfig

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "violin", "piano", "loud", "c4"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tokenizer = tf.BertTokenizer(str(tmp_path / "vocab.txt"))
    model = tf.BertModel(tf.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32))
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    pc = PretrainedTextConditioner(PretrainedTextConfig(source=str(tmp_path / "m"), tokens=True))
    assert pc.config.kind == "mean" and pc.pooled_dim == 16
    c = pc(["a violin", "a loud piano c4"])
    assert c["pooled"].shape == (2, 16) and c["tokens"].shape[0] == 2 and c["mask"].dtype == torch.bool
    assert not any(p.requires_grad for p in pc.parameters())
    # padding does not change a prompt's pooled vector
    torch.testing.assert_close(pc(["a violin"])["pooled"], c["pooled"][:1], atol=1e-5, rtol=1e-5)
    clap = tf.ClapTextModelWithProjection(tf.ClapTextConfig(vocab_size=len(vocab), hidden_size=16,
                                                            num_hidden_layers=1, num_attention_heads=2,
                                                            intermediate_size=32, projection_dim=8))
    cc = PretrainedTextConditioner(PretrainedTextConfig(source="unused"), model=clap, tokenizer=tokenizer)
    out = cc(["a violin"])
    assert cc.config.kind == "clap" and out["pooled"].shape == (1, 8)
    torch.testing.assert_close(out["pooled"].norm(dim=-1), torch.ones(1))
