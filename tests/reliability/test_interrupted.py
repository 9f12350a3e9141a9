"""Interrupted training: kill -9 at random points, then resume; a failing checkpoint write keeps the previous one."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audioldm.training.checkpoint import find_checkpoints, load_checkpoint

SCRIPT = Path(__file__).with_name("toy_train.py")


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return {r["step"]: r["loss_net"] for r in rows if r.get("kind") == "train"}


def train(run_dir, steps, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), str(steps), *extra], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    assert train(d, 30).returncode == 0
    return losses(d)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_then_resume(tmp_path, reference, seed):
    rng = random.Random(seed)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "30", "--sleep", "0.05"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not find_checkpoints(run, warn=False) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.6))  # somewhere later: mid-step, mid-checkpoint-write, ...
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = find_checkpoints(run, warn=False)
    assert done, "the first checkpoint was complete before the kill"
    for ck in done:  # every complete checkpoint loads, model + EMA + optimizer
        net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        ema = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        st = load_checkpoint(ck, {"net": net}, {"net": ema}, {"net": torch.optim.AdamW(net.parameters())})
        assert st["step"] == int(ck.name.split("_")[-1])
    killed_at = max(losses(run)) if (run / "metrics.jsonl").exists() else 0
    assert killed_at - int(done[-1].name.split("_")[-1]) <= 5  # at most one checkpoint interval lost
    r = train(run, 30, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    got = losses(run)
    assert max(got) == 30
    assert got[30] == pytest.approx(reference[30], rel=1e-6)  # the resumed run ends where an uninterrupted one does


def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    import audioldm.training.checkpoint as ck_mod
    sys.path.insert(0, str(SCRIPT.parent))
    from toy_train import Data, Regress, collate

    from audioldm.training import TrainConfig, Trainer
    real, calls = ck_mod.save_file, {"n": 0}

    def flaky(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # the second checkpoint (3 files each) fails: disk full
            raise OSError(28, "No space left on device")
        return real(tensors, path, *a, **k)
    monkeypatch.setattr(ck_mod, "save_file", flaky)
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=12, batch_size=8, lr=1e-2, ckpt_every=5,
                      log_every=1, eval_every=0, progress=False, tensorboard=False)
    with pytest.raises(OSError, match="No space"):
        Trainer(cfg, Regress(0.0), Data(), collate).fit()
    done = find_checkpoints(tmp_path / "run", warn=False)
    assert [c.name for c in done] == ["step_00000005"]
    leftovers = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p not in done]
    assert not leftovers, leftovers  # the half-written folder was removed
    monkeypatch.setattr(ck_mod, "save_file", real)
    cfg.resume = True
    Trainer(cfg, Regress(0.0), Data(), collate).fit()  # resumes from step 5 and finishes
    assert [c.name for c in find_checkpoints(tmp_path / "run", warn=False)][-1] == "step_00000012"


RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _recipe_args(kind, data, run, steps, tmp_path):
    """(command, the folder holding its checkpoints, its checkpoint interval)."""
    if kind == "vocoder":  # the generic vocoder recipe checkpoints every steps // 8 (at least 10) steps
        return (["vocoder/run.py", "--data", str(data), "--out", str(run), "--preset", "tiny", "--steps", str(steps),
                 "--no-progress", "--report-items", "2", "--report-seconds", "0.5"], run / "vocoder_run", 10)
    vae = tmp_path / "vae"
    if not vae.exists():
        from audioldm.vae import VAE_PRESETS, MelVAE
        torch.manual_seed(0)
        MelVAE(VAE_PRESETS["tiny"]()).save_pretrained(vae)
    # the U-Net stage of the one training path, on a given VAE: a checkpoint every max(10, steps // 4) steps
    return (["audio_folder/run.py", "--data", str(data), "--out", str(run), "--vae", str(vae), "--preset", "tiny",
             "--steps", str(steps), "--until", "ldm", "--no-progress"], run / "ldm", 10)


@pytest.mark.parametrize("kind", ["vocoder", "ldm"])
def test_recipe_kill_9_then_resume(tiny_notes, tmp_path, kind):
    """The vocoder and U-Net recipes (the VAE stage has the same test in tests/test_vae_stage_recipe.py)."""
    data, run = tiny_notes[0] / "manifest.jsonl", tmp_path / "run"
    steps = 40 if kind == "vocoder" else 20
    (script, *rest), ckpts, interval = _recipe_args(kind, data, run, steps, tmp_path)
    cmd = [sys.executable, str(RECIPES / script), *rest]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while not find_checkpoints(ckpts, warn=False) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random(kind).uniform(0.0, 1.0))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = find_checkpoints(ckpts, warn=False)
    assert done, proc.stderr.read()[-2000:]
    from audioldm.weights import read_safetensors
    for ck in done:  # no complete checkpoint is corrupt
        for f in ck.glob("*.safetensors"):
            assert read_safetensors(f)
    killed_at = max(losses_any(ckpts)) if (ckpts / "metrics.jsonl").exists() else 0
    assert killed_at - int(done[-1].name.split("_")[-1]) <= interval  # at most one checkpoint interval lost
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(find_checkpoints(ckpts, warn=False)[-1].name.split("_")[-1]) == steps
    assert max(losses_any(ckpts)) == steps


def losses_any(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return {r["step"]: r for r in rows if r.get("kind") == "train"}
