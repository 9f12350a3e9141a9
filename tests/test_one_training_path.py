"""The shipped teacher comes from the generic training path: recipes/audio_folder/run.py with the settings of
recipes/gm_notes/run.sh builds a model folder whose model_index.json and component configs match
audioldm/pretrained/gm-notes, apart from weights (and what the weights decide: the VAE's latent scale)."""

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "audioldm" / "pretrained" / "gm-notes"


def _teacher_flags() -> list[str]:
    """The audio_folder flags run.sh gives the teacher (read from run.sh itself, so the two cannot drift)."""
    text = (ROOT / "recipes" / "gm_notes" / "run.sh").read_text()
    cmd = re.search(r"python recipes/audio_folder/run\.py (.*?)\n\S", text, re.S).group(1)
    words = shlex.split(cmd.replace("\\\n", " "))
    words = [w for w in words if "$(" not in w and not w.endswith(")")]
    out, skip = [], False
    for i, w in enumerate(words):  # --data/--out are this test's; steps are cut to 1
        if skip:
            skip = False
            continue
        if w in ("--data", "--out", "--steps", "--vae-steps"):
            skip = True
            continue
        out.append(w.replace("$R/", "recipes/gm_notes/"))
    return out


@pytest.fixture(scope="module")
def generic_teacher(tmp_path_factory):
    from audioldm.data.gm_notes import GRID_PRESETS, render_grid

    tmp = tmp_path_factory.mktemp("teacher")
    demo = GRID_PRESETS["demo"]()  # its instruments and velocities, and the ends of its pitch range
    render_grid(dataclasses.replace(demo, pitches=[48, 83]), tmp / "notes")
    cmd = [sys.executable, str(ROOT / "recipes/audio_folder/run.py"), "--data", str(tmp / "notes/manifest.jsonl"),
           "--out", str(tmp / "run"), "--steps", "1", "--vae-steps", "1", "--until", "package", *_teacher_flags()]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run" / "model"


def _json(p: Path) -> dict:
    return json.loads(p.read_text())


def test_run_sh_flags_are_read():
    flags = _teacher_flags()
    assert "--schedule" in flags and "scaled_linear" in flags and "--label-words" in flags


def test_model_index_matches_the_shipped_teacher(generic_teacher):
    ours, shipped = _json(generic_teacher / "model_index.json"), _json(TEACHER / "model_index.json")
    for key in ("name", "sample_rate", "conditioning", "components", "mel", "schedule", "defaults"):
        assert ours[key] == shipped[key], key


def test_component_configs_match_the_shipped_teacher(generic_teacher):
    """Read as the library reads them (fields added since the teacher was saved take their defaults)."""
    from audioldm.conditioning import LabelConditionerConfig
    from audioldm.config import config_from_dict, config_to_dict
    from audioldm.unet import UNetConfig
    from audioldm.vae import VAEConfig

    for part, cls in (("unet", UNetConfig), ("conditioner", LabelConditionerConfig), ("vae", VAEConfig)):
        ours, shipped = ({k: v for k, v in _json(folder / part / "config.json").items() if k != "kind"}
                         for folder in (generic_teacher, TEACHER))
        assert _json(generic_teacher / part / "config.json")["kind"] == _json(TEACHER / part / "config.json")["kind"]
        ours, shipped = (config_to_dict(config_from_dict(cls, d)) for d in (ours, shipped))
        if part == "vae":  # the latent scale is measured on the trained weights
            ours.pop("scale_factor"), shipped.pop("scale_factor")
        assert ours == shipped, part


def test_base_preset_is_audioldm_s_sized_and_trains_on_the_cpu():
    """The `base` preset (for GPUs) builds AudioLDM-S's VAE and U-Net shapes and takes optimizer steps on the CPU
    (a few steps here, no run folder: its checkpoints would be gigabytes)."""
    import torch

    sys.path.insert(0, str(ROOT / "recipes" / "audio_folder"))
    import stages

    from audioldm.diffusion import LatentDiffusion, NoiseSchedule
    from audioldm.mel import MelConfig
    from audioldm.unet import UNET_PRESETS, UNet
    from audioldm.vae import MelVAE

    pre = stages.PRESETS["base"]()
    assert (pre.vae, pre.unet, pre.batch, pre.lr) == ("audioldm-s", "audioldm-s", 2, 1e-4)
    torch.manual_seed(0)
    vae = MelVAE(stages.vae_config(pre, MelConfig()))
    unet = UNet(UNET_PRESETS[pre.unet](in_channels=8, out_channels=8, cond_dim=pre.text_dim))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 50e6 < n(vae) < 60e6 and 150e6 < n(unet) < 200e6
    mel = torch.randn(pre.vae_batch, 64, 32) - 6
    opt = torch.optim.AdamW(vae.parameters(), lr=pre.vae_lr)
    for _ in range(2):
        rec, post = vae(mel)
        loss = (rec - mel).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    diffusion = LatentDiffusion(unet, NoiseSchedule(stages.SCHEDULES["scaled_linear"]))
    opt = torch.optim.AdamW(unet.parameters(), lr=pre.lr)
    z = torch.randn(pre.batch, 8, 8, 16)
    first = None
    for _ in range(3):  # the same batch: the loss must fall
        torch.manual_seed(1)
        loss = diffusion.loss(z, {"pooled": torch.ones(pre.batch, pre.text_dim)})
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


def test_resume_never_deletes_partial_work(tmp_path):
    """A run stopped before its first stage finished (distill's teacher chunks, a stage's checkpoints) is kept by
    --resume; without --resume it is refused, not wiped; --overwrite starts over."""
    sys.path.insert(0, str(ROOT / "recipes"))
    import common

    out = tmp_path / "run"
    common.open_run(out, {"data": "d"}, resume=False, overwrite=False)
    (out / "pairs").mkdir()
    (out / "pairs" / "chunk_0000000.safetensors").write_bytes(b"x")
    common.open_run(out, {"data": "d"}, resume=True, overwrite=False)
    assert (out / "pairs" / "chunk_0000000.safetensors").is_file()
    with pytest.raises(SystemExit, match="--resume"):
        common.open_run(out, {"data": "d"}, resume=False, overwrite=False)
    assert (out / "pairs" / "chunk_0000000.safetensors").is_file()
    common.open_run(out, {"data": "d"}, resume=False, overwrite=True)
    assert not (out / "pairs").exists()


@pytest.mark.parametrize("flag", ["--steps", "--lr", "--vae-steps", "--batch-size"])
def test_zero_is_an_error_not_the_presets_value(tmp_path, flag):
    r = subprocess.run([sys.executable, str(ROOT / "recipes/audio_folder/run.py"), "--data", str(tmp_path),
                        "--out", str(tmp_path / "o"), flag, "0"], capture_output=True, text=True)
    assert r.returncode == 2 and f"argument {flag}: expected a" in r.stderr and "positive" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
