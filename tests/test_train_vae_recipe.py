"""End-to-end checks of recipes/gm_notes/train_vae.py as a user runs it: torchrun with 2 processes (gloo, CPU)
against one process, and kill -9 followed by --resume."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "gm_notes" / "train_vae.py")


def args(data, run_dir, steps, **extra):
    a = ["--data", str(data), "--preset", "tiny", "--run-dir", str(run_dir), "--steps", str(steps),
         "--batch-size", "4", "--log-every", "1", "--examples", "1", "--workers", "0", "--no-progress",
         "--warmup", "0", "--eval-every", "0", "--crop-seconds", "0.32", "--lr", "3e-3"]
    for k, v in extra.items():
        a += [f"--{k.replace('_', '-')}", str(v)]
    return a


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return e


def train_losses(run_dir):
    rows = [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss_vae"]) for r in rows if r["kind"] == "train"]


def test_torchrun_two_processes_match_one(tiny_notes, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    one = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "one", 6, ema=0)], capture_output=True,
                         text=True, env=env())
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          RECIPE, *args(data, tmp_path / "two", 6, ema=0)], capture_output=True, text=True, env=env())
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 7))
    for (s, x), (_, y) in zip(a, b):
        assert math.isclose(x, y, rel_tol=1e-4), (s, x, y)
    summary = json.loads(two.stdout[two.stdout.index("{\n"):])  # torchrun may print notices first
    assert summary["steps"] == 6 and (tmp_path / "two" / "vae" / "model.safetensors").is_file()


def test_kill_9_then_resume_finishes_and_matches(tiny_notes, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    steps = 40
    ref = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "ref", steps, ckpt_every=5)],
                         capture_output=True, text=True, env=env())
    assert ref.returncode == 0, ref.stderr[-3000:]

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, RECIPE, *args(data, run_dir, steps, ckpt_every=5)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "checkpoints" / "step_00000010").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run_dir / "vae").exists()

    res = subprocess.run([sys.executable, RECIPE, *args(data, run_dir, steps, ckpt_every=5), "--resume"],
                         capture_output=True, text=True, env=env())
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr
    assert json.loads(res.stdout)["steps"] == steps
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
    """--ch / --ch-mult / --num-res-blocks / --z-channels (the VAE sweep) change the saved config; an impossible
    combination is refused with the config's own message before training."""
    data = tiny_notes[0] / "manifest.jsonl"
    flags = ["--ch", "16", "--ch-mult", "1", "2", "--num-res-blocks", "2", "--z-channels", "3"]
    res = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "a", 2), *flags], capture_output=True,
                         text=True, env=env())
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = json.loads((tmp_path / "a" / "vae" / "config.json").read_text())
    assert (cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"], cfg["z_channels"]) == (16, [1, 2], 2, 3)
    assert json.loads(res.stdout)["z_channels"] == 3
    bad = subprocess.run([sys.executable, RECIPE, *args(data, tmp_path / "b", 2), "--ch", "6"], capture_output=True,
                         text=True, env=env())
    assert bad.returncode != 0 and "VAEConfig.ch=6 must be a multiple of norm_groups=4" in bad.stderr
    assert not (tmp_path / "b" / "vae").exists()
