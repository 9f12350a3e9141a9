"""End-to-end checks of the VAE stage of the one training path (recipes/audio_folder/run.py --until vae) as a user
runs it: torchrun with 2 processes (gloo, CPU) against one process, kill -9 followed by --resume, and the VAE
architecture overrides of the VAE sweep (--vae-config)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "audio_folder" / "run.py")


def args(data, run_dir, steps):
    """The tiny preset's VAE (batch 8, 0.64 s crops) for ``steps`` steps: a checkpoint every max(10, steps // 4)
    steps (recipes/common.train_plan), metrics in RUN/vae/metrics.jsonl."""
    return ["--data", str(data), "--out", str(run_dir), "--preset", "tiny", "--vae-steps", str(steps),
            "--conditioning", "labels", "--until", "vae", "--no-progress"]


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return e


def train_losses(run_dir):
    rows = [json.loads(ln) for ln in (Path(run_dir) / "vae" / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss_vae"]) for r in rows if r["kind"] == "train"]


def test_torchrun_two_processes_match_one(tiny_notes, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    one = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "one", 6)], capture_output=True,
                         text=True, env=env())
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          RECIPE, *args(data, tmp_path / "two", 6)], capture_output=True, text=True, env=env())
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 7))
    for (s, x), (_, y) in zip(a, b):
        assert math.isclose(x, y, rel_tol=1e-4), (s, x, y)
    summary = json.loads((tmp_path / "two" / "stages" / "vae.json").read_text())
    assert summary["steps"] == 6 and (tmp_path / "two" / "vae" / "vae" / "model.safetensors").is_file()


def test_kill_9_then_resume_finishes_and_matches(tiny_notes, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    steps = 40
    ref = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "ref", steps)],
                         capture_output=True, text=True, env=env())
    assert ref.returncode == 0, ref.stderr[-3000:]

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, RECIPE, *args(data, run_dir, steps)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "vae" / "checkpoints" / "step_00000010").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run_dir / "vae" / "vae").exists()

    res = subprocess.run([sys.executable, RECIPE, *args(data, run_dir, steps), "--resume"],
                         capture_output=True, text=True, env=env())
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr
    assert json.loads((run_dir / "stages" / "vae.json").read_text())["steps"] == steps
    got, want = train_losses(run_dir), train_losses(tmp_path / "ref")
    assert [s for s, _ in got] == list(range(1, steps + 1))  # no gaps or duplicates after the resume
    for (s, x), (_, y) in zip(got, want):
        assert math.isclose(x, y, rel_tol=1e-5), (s, x, y)


def test_recipe_refuses_existing_run_without_resume(tiny_notes, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    r = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "r", 2)], capture_output=True, text=True,
                       env=env())
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "r", 2)], capture_output=True, text=True,
                       env=env())
    assert r.returncode != 0 and "--resume" in r.stderr


def test_architecture_flags_override_the_preset(tiny_notes, tmp_path):
    """--vae-config ch= ch_mult= num_res_blocks= z_channels= (the VAE sweep) change the saved config; an impossible
    combination or an unknown field is refused with a message naming it, before training."""
    data = tiny_notes[0] / "manifest.jsonl"
    flags = ["--vae-config", "ch=16", "ch_mult=1,2", "num_res_blocks=2", "z_channels=3"]
    res = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "a", 2), *flags], capture_output=True,
                         text=True, env=env())
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = json.loads((tmp_path / "a" / "vae" / "vae" / "config.json").read_text())
    assert (cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"], cfg["z_channels"]) == (16, [1, 2], 2, 3)
    bad = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "b", 2), "--vae-config", "ch=6"],
                         capture_output=True, text=True, env=env())
    assert bad.returncode != 0 and "VAEConfig.ch=6 must be a multiple of norm_groups=4" in bad.stderr
    assert not (tmp_path / "b" / "stages").exists()
    bad = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "c", 2), "--vae-config", "chanels=6"],
                         capture_output=True, text=True, env=env())
    assert bad.returncode != 0 and "VAEConfig has no field chanels" in bad.stderr
