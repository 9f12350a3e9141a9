"""torch's distributed engine in the shared trainer, on CPU (gloo), with tests/dist_worker.py: DistributedDataParallel
with 2 processes reproduces 1 process's losses (relative 1e-4) for the LDM stage and a GAN stage (the vocoder with
its discriminators), with gradient accumulation (no_sync); 2 nodes x 1 process on localhost (c10d rendezvous) do too;
FSDP2 (fully_shard) trains, saves a checkpoint of gathered shards and resumes from it into shards."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "dist_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, out):
    p = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def losses(run) -> list[tuple[int, dict]]:
    rows = [json.loads(ln) for ln in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], {k: v for k, v in r.items() if k.startswith("loss_")}) for r in rows if r["kind"] == "train"]


def assert_same(a, b, rel=1e-4):
    assert [s for s, _ in a] == [s for s, _ in b]
    for (s, x), (_, y) in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert math.isclose(x[k], y[k], rel_tol=rel), (s, k, x[k], y[k])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """1-process runs, the references: {stage: run folder} (4 steps, 2 accumulation micro-batches)."""
    d = tmp_path_factory.mktemp("one")
    for stage in ("ldm", "vocoder"):
        _run([sys.executable, WORKER, "--stage", stage, "--accum", "2"], d / stage)
    return d


@pytest.mark.parametrize("stage", ["ldm", "vocoder"])
def test_ddp_two_processes_match_one(stage, one_process, tmp_path):
    _run(TORCHRUN + ["--standalone", "--nproc_per_node", "2", WORKER, "--stage", stage, "--accum", "2"], tmp_path)
    got, want = losses(tmp_path), losses(one_process / stage)
    assert len(got) == 4 and ("loss_disc" in got[0][1]) == (stage == "vocoder")
    assert_same(got, want)


def test_two_nodes_on_localhost_match_one(one_process, tmp_path):
    port = _free_port()
    cmd = lambda rank: TORCHRUN + ["--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),  # noqa: E731
                                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id",
                                   "test", WORKER, "--stage", "vocoder", "--accum", "2", "--out", str(tmp_path)]
    nodes = [subprocess.Popen(cmd(r), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for r in (0, 1)]
    for n in nodes:
        _, err = n.communicate(timeout=300)
        assert n.returncode == 0, err[-3000:]
    assert_same(losses(tmp_path), losses(one_process / "vocoder"))


def test_fsdp2_trains_saves_and_resumes(one_process, tmp_path):
    cmd = TORCHRUN + ["--standalone", "--nproc_per_node", "2", WORKER, "--stage", "ldm", "--accum", "2",
                      "--parallel", "fsdp", "--ckpt-every", "2"]
    _run(cmd, tmp_path)
    assert_same(losses(tmp_path), losses(one_process / "ldm"))
    from safetensors import safe_open
    with safe_open(str(tmp_path / "checkpoints" / "step_00000004" / "models.safetensors"), "pt") as f:
        ref = safe_open(str(one_process / "ldm" / "checkpoints" / "step_00000004" / "models.safetensors"), "pt")
        assert sorted(f.keys()) == sorted(ref.keys())  # full tensors, gathered from the shards
        assert all(f.get_slice(k).get_shape() == ref.get_slice(k).get_shape() for k in f.keys())
    import shutil
    shutil.rmtree(tmp_path / "checkpoints" / "step_00000004")
    _run(cmd + ["--resume"], tmp_path)  # back into shards from step 2's checkpoint
    assert_same(losses(tmp_path), losses(one_process / "ldm"))
    p = subprocess.run(TORCHRUN + ["--standalone", "--nproc_per_node", "2", WORKER, "--stage", "vocoder",
                                   "--parallel", "fsdp", "--out", str(tmp_path / "gan")],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode != 0 and "train it with parallel='ddp'" in p.stderr


def test_audio_folder_under_torchrun_builds_shared_files_once(tiny_notes, tmp_path):
    """recipes/audio_folder under torchrun --nproc_per_node 2: both ranks finish the U-Net stage, and the latent
    cache (a shared file) is built once, by rank 0, behind a barrier."""
    import subprocess
    import sys

    import torch

    from audioldm.vae import VAE_PRESETS, MelVAE

    torch.manual_seed(0)
    MelVAE(VAE_PRESETS["tiny"]()).save_pretrained(tmp_path / "vae")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(root / "recipes/audio_folder/run.py"), "--data", str(tiny_notes[0] / "manifest.jsonl"),
                        "--out", str(tmp_path / "run"), "--vae", str(tmp_path / "vae"), "--preset", "tiny",
                        "--steps", "4", "--until", "ldm", "--no-progress"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("latent cache latents_train.safetensors") == 1, r.stderr[-3000:]
    assert (tmp_path / "run" / "stages" / "ldm.json").is_file()
    assert not list((tmp_path / "run" / "ldm").glob(".*tmp"))
