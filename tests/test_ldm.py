"""A tiny label-conditioned latent diffusion model learns two very different classes."""

import pytest
import torch
from torch.utils.data import Dataset

from audioldm.conditioning import LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.data.latents import collate_latents
from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.sampling import guided, initial_noise, noise_sampler, sample
from audioldm.training import TrainConfig, Trainer
from audioldm.training.ldm_stage import LDMStage
from audioldm.unet import UNET_PRESETS, UNet


def template(cls: str) -> torch.Tensor:
    """'up': +1 in the first half of the time axis, -1 after; 'down': the opposite. [4, 8, 8]."""
    t = torch.ones(4, 8, 8)
    t[:, 4:] = -1
    return t if cls == "up" else -t


class TwoClasses(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        cls = "up" if i % 2 else "down"
        g = torch.Generator().manual_seed(i)
        return {"mean": template(cls) + 0.1 * torch.randn(4, 8, 8, generator=g), "std": torch.full((4, 8, 8), 0.05),
                "caption": cls, "labels": {"shape": cls}}


def test_label_conditioned_model_separates_two_classes(tmp_path):
    torch.manual_seed(0)
    cond = LabelConditioner(LabelConditionerConfig(fields=[LabelField("shape", values=["down", "up"])], dim=16,
                                                   pooled_dim=32))
    unet = UNet(UNET_PRESETS["tiny"]())
    diff = LatentDiffusion(unet, NoiseSchedule(ScheduleConfig(prediction="v")))
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=300, batch_size=16, lr=2e-3, warmup_steps=20,
                      ema_decay=0.0, ckpt_every=1000, log_every=100, progress=False, tensorboard=False)
    Trainer(cfg, LDMStage(diff, cond, scale_factor=1.0, drop_prob=0.1), TwoClasses(), collate_latents).fit()

    unet.eval()
    sig = diff.schedule.sampling_sigmas(20)
    labels = [{"shape": "up"}] * 8 + [{"shape": "down"}] * 8
    seeds = list(range(16))
    with torch.no_grad():
        c, u = cond(labels), cond.null_condition(16)
        x = initial_noise(seeds, (4, 8, 8), float(sig[0]))
        out = sample("ddim", guided(diff.denoise, c, u, 3.0), x, sig, noise=noise_sampler(seeds, (4, 8, 8)))
    # the check: each sample correlates positively with its own class template (and so negatively with the other)
    score = (out * template("up")).mean(dim=(1, 2, 3))
    correct = (score[:8] > 0).sum() + (score[8:] < 0).sum()
    assert correct >= 15, score


def test_latent_cache_round_trip(tiny_notes, tmp_path):
    from audioldm.data import ClipDataset, read_manifest
    from audioldm.data.latents import LatentDataset, build_latent_cache
    from audioldm.vae import VAE_PRESETS, MelVAE
    from audioldm.weights import WeightsError

    clips = read_manifest(tiny_notes[0] / "manifest.jsonl")[:6]
    ds = ClipDataset(clips, clip_seconds=0.32)
    torch.manual_seed(0)
    vae = MelVAE(VAE_PRESETS["tiny"]()).eval()
    vae.config.scale_factor = 0.5
    path = build_latent_cache(vae, ds, tmp_path / "lat.safetensors", batch_size=4)
    lat = LatentDataset(path, seed=1)
    assert len(lat) == 6 and lat.scale_factor == 0.5
    item = lat[2]
    with torch.no_grad():
        post = vae.encode(ds[2]["mel"][None])
    torch.testing.assert_close(item["mean"], post.mean[0], atol=2e-3, rtol=1e-3)  # stored as float16
    assert item["labels"] == clips[2].labels and item["caption"] in clips[2].captions
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        LatentDataset(tmp_path / "bad.safetensors")
