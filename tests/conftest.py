"""Shared fixtures: tiny audio files and a tiny GM-note data set rendered offline once per session; the paths of
headless Chromium and its driver.

$AUDIOLDM_REQUIRE_ALL (set by .ci/run) turns every skip for a missing optional dependency into a failure:
``pytest.importorskip`` then imports or fails, and a missing browser fails as $AUDIOLDM_REQUIRE_BROWSER makes it."""

import importlib
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(2)

if os.environ.get("AUDIOLDM_REQUIRE_ALL"):
    os.environ.setdefault("AUDIOLDM_REQUIRE_BROWSER", "1")

    def _import_or_fail(modname: str, minversion=None, reason=None, **kw):
        """importorskip under $AUDIOLDM_REQUIRE_ALL: a broken or missing install fails the run instead of skipping."""
        try:
            return importlib.import_module(modname)
        except ImportError as e:
            pytest.fail(f"AUDIOLDM_REQUIRE_ALL is set but {modname} cannot be imported ({e})")

    pytest.importorskip = _import_or_fail


def sine(freq=440.0, sr=16000, seconds=1.0, amp=0.5, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], 1)


def _executable(names: tuple, what: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("AUDIOLDM_REQUIRE_BROWSER"):
        pytest.fail(f"AUDIOLDM_REQUIRE_BROWSER is set but no {what} is installed ({', '.join(names)})")
    pytest.skip(f"no {what} on this machine (CI installs Debian's chromium + chromium-driver and sets "
                f"AUDIOLDM_REQUIRE_BROWSER=1)")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary (fails instead of skipping when $AUDIOLDM_REQUIRE_BROWSER is set)."""
    return _executable(("chromium", "chromium-browser", "google-chrome"), "chromium")


@pytest.fixture(scope="session")
def chromedriver(chromium) -> str:
    """Path of the chromedriver matching it (Debian's chromium-driver); nothing is downloaded."""
    return _executable(("chromedriver",), "chromedriver")


@pytest.fixture
def write_sine(tmp_path):
    def _w(name="a.wav", **kw):
        sr = kw.get("sr", 16000)
        path = tmp_path / name
        sf.write(path, sine(**kw), sr)
        return path
    return _w


@pytest.fixture(scope="session")
def tiny_notes(tmp_path_factory):
    """The `tiny` GM-note preset rendered with the soundfont inside pretty_midi: (out dir, summary)."""
    from audioldm.data.gm_notes import GRID_PRESETS, render_grid

    out = tmp_path_factory.mktemp("gm_tiny")
    summary = render_grid(GRID_PRESETS["tiny"](), out)
    return out, summary


def build_tiny_model(tiny_notes_dir, out_dir, steps: int = 150):
    """A tiny text-conditioned model trained here: untrained tiny VAE with a near-deterministic posterior (scale factor measured on the data), a word-level
    text conditioner + tiny U-Net trained ``steps`` steps on the tiny GM-note latents, Griffin-Lim vocoder. Saved as a
    model folder at ``out_dir``."""
    from audioldm.conditioning import TextConditioner, TextConditionerConfig, WordTokenizer
    from audioldm.data import ClipDataset, read_manifest
    from audioldm.data.latents import LatentDataset, build_latent_cache, collate_latents
    from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
    from audioldm.pipeline import AudioLDM, GenerationDefaults
    from audioldm.training import TrainConfig, Trainer
    from audioldm.training.ldm_stage import LDMStage
    from audioldm.unet import UNET_PRESETS, UNet
    from audioldm.vae import VAE_PRESETS, MelVAE
    from audioldm.vocoders.griffinlim import GriffinLimConfig, GriffinLimVocoder

    torch.manual_seed(0)
    clips = read_manifest(tiny_notes_dir / "manifest.jsonl")
    ds = ClipDataset(clips, clip_seconds=0.64)
    vae = MelVAE(VAE_PRESETS["tiny"]()).eval()
    with torch.no_grad():  # an untrained VAE's posterior std is ~1 and would drown the means: make it ~0.002
        zc = vae.config.z_channels
        vae.quant_conv.weight[zc:].zero_()
        vae.quant_conv.bias[zc:].fill_(-12.0)
        z = torch.cat([vae.encode(ds[i]["mel"][None]).mode() for i in range(0, len(ds), 4)])
    vae.config.scale_factor = float(1 / z.std())
    cache = build_latent_cache(vae, ds, out_dir.parent / f"{out_dir.name}_latents.safetensors")
    vocab = WordTokenizer.from_texts(c for cl in clips for c in (cl.captions or [cl.caption or ""])).vocab
    cond = TextConditioner(TextConditionerConfig(vocab=vocab, dim=32, layers=1, heads=2, pooled_dim=32))
    unet = UNet(UNET_PRESETS["tiny"](cond_dim=32, context_dim=32))
    schedule = NoiseSchedule(ScheduleConfig(prediction="v"))
    cfg = TrainConfig(run_dir=str(out_dir.parent / f"{out_dir.name}_run"), max_steps=steps, batch_size=8, lr=2e-3,
                      warmup_steps=10, ema_decay=0.0, ckpt_every=10 ** 6, log_every=10 ** 6, progress=False,
                      tensorboard=False)
    stage = LDMStage(LatentDiffusion(unet, schedule), cond, scale_factor=vae.config.scale_factor, cond_key="caption")
    Trainer(cfg, stage, LatentDataset(cache), collate_latents).fit()
    vocoder = GriffinLimVocoder(GriffinLimConfig(n_iter=8))
    pipe = AudioLDM(vae, unet, schedule, cond, vocoder, GenerationDefaults(duration=0.64, steps=8), name="tiny-test")
    return pipe.save_pretrained(out_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_notes, tmp_path_factory):
    """Folder of a tiny trained text-conditioned model (see build_tiny_model)."""
    return build_tiny_model(tiny_notes[0], tmp_path_factory.mktemp("model") / "tiny")
