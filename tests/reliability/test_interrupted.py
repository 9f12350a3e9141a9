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
             "--steps", str(steps), "--until", "ldm", "--no-progress"], run / "ldm", max(10, steps // 4))


@pytest.mark.parametrize("kind", ["vocoder", "ldm"])
def test_recipe_kill_9_then_resume(tiny_notes, tmp_path, kind):
    """The vocoder and U-Net recipes (the VAE stage has the same test in tests/test_vae_stage_recipe.py)."""
    data, run = tiny_notes[0] / "manifest.jsonl", tmp_path / "run"
    steps = 40 if kind == "vocoder" else 60
    (script, *rest), ckpts, interval = _recipe_args(kind, data, run, steps, tmp_path)
    cmd = [sys.executable, str(RECIPES / script), *rest]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while not find_checkpoints(ckpts, warn=False) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random(kind).uniform(0.0, 0.5))
    assert proc.poll() is None, "the run finished before it could be killed"
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


def test_sigterm_writes_a_checkpoint_and_resume_reproduces(tmp_path, reference):
    """SIGTERM between checkpoints: the run finishes its step, writes a checkpoint there and exits with 143; --resume
    continues from that step and reproduces the uninterrupted losses."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "30", "--sleep", "0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").exists() or max(losses(run) or {0: 0}) < 7:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    stopped = max(losses(run))
    assert stopped % 5 and "interrupted by SIGTERM" in err  # between two scheduled checkpoints
    assert int(find_checkpoints(run, warn=False)[-1].name.split("_")[-1]) == stopped
    r = train(run, 30, "--resume")
    assert r.returncode == 0 and f"at step {stopped}" in r.stderr, r.stderr[-2000:]
    got = losses(run)
    assert sorted(got) == list(range(1, 31))
    for s in got:
        assert got[s] == pytest.approx(reference[s], rel=1e-6), s


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    """A torn newest checkpoint: resume says so, loads the one before it, and redoes the lost steps exactly."""
    run = tmp_path / "run"
    assert train(run, 10).returncode == 0
    first = losses(run)
    newest = run / "checkpoints" / "step_00000010" / "models.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # torn by a crash of the disk, not of the writer
    with open(run / "metrics.jsonl", "a") as f:  # and a metrics line torn mid-write
        f.write('{"step": 11, "ki')
    r = train(run, 10, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "step_00000010" in r.stderr and "falling back" in r.stderr and "at step 5" in r.stderr
    got = losses(run)
    assert sorted(got) == list(range(1, 11))
    for s in range(6, 11):
        assert got[s] == pytest.approx(first[s], rel=1e-6), s


def test_resume_under_other_settings_is_refused(tmp_path):
    run = tmp_path / "run"
    assert train(run, 10).returncode == 0
    r = train(run, 20, "--resume", "--lr", "0.005")
    assert r.returncode != 0 and "cannot resume with other training settings (lr: 0.01 -> 0.005)" in r.stderr
    assert train(run, 20, "--resume").returncode == 0  # more steps is fine


def test_a_finite_loss_with_non_finite_gradients_is_skipped(tmp_path):
    """sqrt at 0 is finite but its gradient is not: the step is skipped and the weights stay finite."""
    sys.path.insert(0, str(SCRIPT.parent))
    from toy_train import Data, Regress, collate

    from audioldm.training import TrainConfig, Trainer

    class Spiky(Regress):
        def train_step(self, batch, ctx):
            w = self.net[0].weight
            yield "net", ((self.net(batch["x"]) - batch["y"]) ** 2).mean() + (w - w.detach()).abs().sum().sqrt(), {}

    stage = Spiky(0.0)
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=3, batch_size=8, lr=1e-2, ckpt_every=100,
                      log_every=1, eval_every=0, progress=False, tensorboard=False, max_nan_streak=10)
    trainer = Trainer(cfg, stage, Data(), collate)
    trainer.fit()
    assert trainer.nan_total == 3
    assert all(torch.isfinite(p).all() for p in stage.net.parameters())
