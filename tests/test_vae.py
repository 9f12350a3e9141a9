import json

import pytest
import torch

from audioldm.data import ClipDataset, collate_clips, read_manifest
from audioldm.mel import MelConfig
from audioldm.training import TrainConfig, Trainer
from audioldm.training.vae_stage import VAELossConfig, VAEStage, latent_scale_factor
from audioldm.vae import VAE_PRESETS, MelVAE, VAEConfig
from audioldm.weights import WeightsError


def test_preset_shapes_and_sizes():
    n = sum(p.numel() for p in MelVAE(VAE_PRESETS["audioldm-s"]()).parameters())
    assert 50e6 < n < 60e6  # AudioLDM-S's VAE has ~55M parameters
    vae = MelVAE(VAE_PRESETS["tiny"]())
    for frames in (1, 4, 7, 101, 200):
        mel = torch.randn(2, 64, frames) - 5
        post = vae.encode(mel)
        assert post.mean.shape == (2, 4, -(-frames // 4), 16)
        rec, _ = vae(mel)
        assert rec.shape == mel.shape
        assert vae.decode(post.mode()).shape == (2, 64, 4 * -(-frames // 4))


def test_bad_inputs_and_config():
    vae = MelVAE(VAE_PRESETS["tiny"]())
    with pytest.raises(ValueError, match=r"expected log-mel \[B, 64, frames\]"):
        vae.encode(torch.randn(2, 80, 10))
    with pytest.raises(ValueError, match="norm_groups"):
        VAEConfig(ch=10, norm_groups=4)
    with pytest.raises(ValueError, match="n_mels"):
        VAEConfig(ch=8, norm_groups=4, ch_mult=[1, 2, 4, 4], mel=MelConfig(n_mels=20, fmax=8000.0))


def test_save_load_round_trip_identical(tmp_path):
    torch.manual_seed(0)
    vae = MelVAE(VAE_PRESETS["tiny"]()).eval()
    vae.config.scale_factor = 0.37
    vae.save_pretrained(tmp_path / "vae")
    with pytest.raises(FileExistsError):
        vae.save_pretrained(tmp_path / "vae")
    loaded = MelVAE.from_pretrained(tmp_path / "vae")
    mel = torch.randn(2, 64, 30) - 5
    torch.testing.assert_close(loaded(mel, sample=False)[0], vae(mel, sample=False)[0], rtol=0, atol=0)
    assert loaded.config.scale_factor == 0.37 and loaded.config.mel == MelConfig()


def test_mismatched_checkpoint_errors(tmp_path):
    vae = MelVAE(VAE_PRESETS["tiny"]())
    vae.save_pretrained(tmp_path / "vae")
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    cfg["z_channels"] = 8
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"model.safetensors: weights do not match the config: shape mismatches"):
        MelVAE.from_pretrained(tmp_path / "vae")
    cfg["z_channels"], cfg["bogus"] = 4, 1
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=r"config.json: unknown VAEConfig field\(s\) \['bogus'\]"):
        MelVAE.from_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "model.safetensors").unlink()
    (tmp_path / "vae" / "pytorch_model.bin").write_bytes(b"not unpickled")
    del cfg["bogus"]
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="pickle"):
        MelVAE.from_pretrained(tmp_path / "vae")


def test_training_improves_reconstruction_within_50_steps(tiny_notes, tmp_path):
    out, _ = tiny_notes
    clips = read_manifest(out / "manifest.jsonl")[:8]
    ds = ClipDataset(clips, clip_seconds=0.64)
    torch.manual_seed(0)
    vae = MelVAE(VAE_PRESETS["tiny"]())
    batch = collate_clips([ds[i] for i in range(8)])

    def l1():
        with torch.no_grad():
            return (vae(batch["mel"], sample=False)[0] - batch["mel"]).abs().mean().item()

    before = l1()
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=50, batch_size=8, lr=3e-3, warmup_steps=5,
                      ema_decay=0.0, ckpt_every=50, log_every=10, progress=False, tensorboard=False)
    Trainer(cfg, VAEStage(vae, VAELossConfig(disc_start=25)), ds, collate_clips).fit()
    after = l1()
    assert after < before / 2, (before, after)  # stated factor: 2x lower log-mel L1 on the training batch
    s = latent_scale_factor(vae, ds, "cpu")
    vae.config.scale_factor = s  # the scaled posterior samples over the data then have unit spread
    torch.manual_seed(1)
    z = torch.cat([vae.encode_latents(batch["mel"], sample=True) for _ in range(4)])
    assert s > 0 and abs(z.std().item() - 1) < 0.1, (s, z.std().item())


def _counting(fn, calls):
    def run(*a, **k):
        calls.append(1)
        return fn(*a, **k)
    return run


def test_gradient_checkpointing_recomputes_and_matches():
    """VAEConfig.gradient_checkpointing: the same gradients, with each level's forward run again in backward."""
    torch.manual_seed(0)
    vae = MelVAE(VAE_PRESETS["tiny"]()).train()
    mel = torch.randn(2, 64, 16) - 5
    calls = []
    for m in (vae.encoder.down_blocks[0], vae.decoder.up_blocks[-1], vae.encoder.mid_block):
        m.forward = _counting(m.forward, calls)  # (a recompute in backward runs forward but no module hooks)

    def grads():
        vae.zero_grad()
        calls.clear()
        rec, post = vae(mel, noise=torch.ones(2, *post_shape))
        ((rec - mel).abs().mean() + post.kl().mean() * 1e-3).backward()
        return [p.grad.clone() for p in vae.parameters()], len(calls)

    c = vae.config
    post_shape = (c.z_channels, 16 // c.downsample, 64 // c.downsample)
    g1, n1 = grads()
    vae.config.gradient_checkpointing = True
    g2, n2 = grads()
    assert (n1, n2) == (3, 6)  # each checkpointed block ran twice
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # inference never recomputes
        calls.clear()
        vae(mel)
        assert len(calls) == 3
