"""The shared training loop, on a toy regression stage (fast) — resume, accumulation, NaN guard, checkpoints."""

import json
import logging
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from audioldm.training import Stage, TrainConfig, Trainer, TrainingDiverged
from audioldm.training.checkpoint import find_checkpoints
from audioldm.training.trainer import lr_factor


class Toy(Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def collate(items):
    return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items])}


class ToyStage(Stage):
    name = "toy"

    def __init__(self, nan_steps=(), crash_at=None):
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.nan_steps, self.crash_at = set(nan_steps), crash_at

    def modules(self):
        return {"net": self.net}

    def ema_modules(self):
        return ["net"]

    def optimizers(self, cfg):
        return {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr)}

    def train_step(self, batch, ctx):
        if self.crash_at is not None and ctx.step == self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        noise = ctx.randn(batch, (1,))  # per-sample seeded noise, exercised for determinism
        pred = self.net(batch["x"] + 0.01 * noise).squeeze(-1)
        loss = ((pred - batch["y"]) ** 2).mean()
        if ctx.step in self.nan_steps:
            loss = loss * float("nan")
        yield "net", loss, {}

    def evaluate(self, ctx):
        return {"scalars": {"ema_w": float(ctx.ema["net"][0].weight.sum())}}


def run(tmp_path, name, stage=None, **kw):
    cfg = TrainConfig(**{"run_dir": str(tmp_path / name), "max_steps": 12, "batch_size": 8, "lr": 1e-2,
                         "ckpt_every": 3, "log_every": 1, "eval_every": 0, "progress": False, **kw})
    tr = Trainer(cfg, stage or ToyStage(), Toy(), collate)
    tr.fit()
    return tr


def losses(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss_net"] for r in rows if r["kind"] == "train"}


def test_loss_decreases_and_checkpoints_kept(tmp_path):
    tr = run(tmp_path, "a", max_steps=40, keep_last=2, lr=5e-2, grad_clip=0.0)
    l = losses(tmp_path / "a")
    assert l[40] < 0.3 * l[1]
    cks = find_checkpoints(tmp_path / "a")
    assert [c.name for c in cks] == ["step_00000039", "step_00000040"]
    assert tr.epoch == 5  # 64 items / batch 8 = 8 steps per epoch


def test_resume_reproduces_uninterrupted_run(tmp_path):
    run(tmp_path, "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cut", stage=ToyStage(crash_at=7))
    assert [c.name for c in find_checkpoints(tmp_path / "cut")][-1] == "step_00000006"
    run(tmp_path, "cut", resume=True)
    a, b = losses(tmp_path / "full"), losses(tmp_path / "cut")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for s in a:
        assert math.isclose(a[s], b[s], rel_tol=1e-6), (s, a[s], b[s])


def test_existing_run_dir_needs_resume(tmp_path):
    run(tmp_path, "r")
    with pytest.raises(FileExistsError, match="--resume"):
        run(tmp_path, "r")


def test_incomplete_checkpoint_ignored_with_warning(tmp_path, caplog):
    run(tmp_path, "inc", max_steps=6)
    ck = tmp_path / "inc" / "checkpoints"
    (ck / "step_00000099").mkdir()
    (ck / "step_00000099" / "models.safetensors").write_bytes(b"partial")
    (ck / ".tmp-step_00000100").mkdir()
    with caplog.at_level(logging.WARNING, logger="audioldm.train"):
        tr = run(tmp_path, "inc", max_steps=9, resume=True)
    assert "ignoring incomplete checkpoint" in caplog.text and "step_00000099" in caplog.text
    assert ".tmp-step_00000100" in caplog.text
    assert tr.step == 9 and min(s for s in losses(tmp_path / "inc") if s > 6) == 7


def test_grad_accumulation_matches_full_batch(tmp_path):
    run(tmp_path, "one", max_steps=8)
    run(tmp_path, "acc", max_steps=8, grad_accum=2)
    a, b = losses(tmp_path / "one"), losses(tmp_path / "acc")
    for s in a:
        assert math.isclose(a[s], b[s], rel_tol=1e-5), (s, a[s], b[s])


def test_nan_steps_skipped_and_counted(tmp_path):
    tr = run(tmp_path, "nan", stage=ToyStage(nan_steps={2, 5}))
    assert tr.nan_total == 2 and tr.step == 12
    rows = [json.loads(ln) for ln in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("skipped") == 1.0] == [3, 6]


def test_nan_streak_stops_training(tmp_path):
    with pytest.raises(TrainingDiverged, match="3 consecutive steps had a NaN/Inf loss"):
        run(tmp_path, "div", stage=ToyStage(nan_steps=set(range(4, 100))), max_nan_streak=3)


def test_ema_and_eval_hook(tmp_path):
    """The EMA follows its recurrence exactly: after step k (0-based) it is d * EMA + (1 - d) * weights with
    d = min(decay, (1 + k) / (10 + k)); runs are deterministic, so the 1- and 2-step runs share their first step."""
    w0 = ToyStage().net[0].weight.detach().clone()
    one = run(tmp_path, "ema1", max_steps=1, ema_decay=0.9)
    two = run(tmp_path, "ema2", max_steps=2, ema_decay=0.9)
    w1, e1 = one.modules["net"][0].weight.detach(), one.ema["net"][0].weight.detach()
    w2, e2 = two.modules["net"][0].weight.detach(), two.ema["net"][0].weight.detach()
    torch.testing.assert_close(e1, 0.1 * w0 + 0.9 * w1, rtol=0, atol=1e-6)
    torch.testing.assert_close(e2, (2 / 11) * e1 + (9 / 11) * w2, rtol=0, atol=1e-6)
    tr = run(tmp_path, "ema", max_steps=10, ema_decay=0.9)
    e, n = tr.ema["net"][0].weight, tr.modules["net"][0].weight
    assert not torch.equal(e, n)
    rows = [json.loads(ln) for ln in (tmp_path / "ema" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "valid" and "ema_w" in r for r in rows)


def test_lr_schedule():
    cfg = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(100, cfg) == pytest.approx(0.1)
    assert 0.1 < lr_factor(55, cfg) < 1.0


def test_bad_config_and_data_errors(tmp_path):
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="fewer than batch_size"):
        Trainer(TrainConfig(run_dir=str(tmp_path / "x"), batch_size=128), ToyStage(), Toy(), collate)
    with pytest.raises(ValueError, match="divisible"):
        Trainer(TrainConfig(run_dir=str(tmp_path / "x"), batch_size=9, grad_accum=2), ToyStage(), Toy(), collate)


def test_amp_switch_reaches_the_step_context(tmp_path):
    """TrainConfig.amp decides whether the stage runs under bf16 autocast on CUDA (never on CPU)."""
    import contextlib

    from audioldm.training.distributed import DistInfo
    from audioldm.training.trainer import StepContext

    def ctx(device, amp):
        return StepContext(0, 0, 0, torch.device(device), DistInfo(), {}, None, amp)
    assert isinstance(ctx("cpu", True).autocast, contextlib.nullcontext)
    assert isinstance(ctx("cuda", False).autocast, contextlib.nullcontext)
    on = ctx("cuda", True).autocast
    assert isinstance(on, torch.autocast) and on.fast_dtype == torch.bfloat16
    for amp in (True, False):
        cfg = TrainConfig(run_dir=str(tmp_path / f"amp{amp}"), max_steps=1, amp=amp, device="cpu")
        assert Trainer(cfg, ToyStage(), Toy(), collate).context().amp is amp


def test_bf16_weights_train_and_resume(tmp_path):
    """TrainConfig.weights_dtype="bfloat16": weights, gradients and optimizer state in bf16 under autocast (on CPU
    too), the EMA in float32; the loss falls and a resumed run continues the same way."""
    kw = dict(weights_dtype="bfloat16", max_steps=40, lr=5e-2, grad_clip=0.0)
    tr = run(tmp_path, "bf16", **kw)
    assert {p.dtype for p in tr.stage.net.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in tr.ema["net"].parameters()} == {torch.float32}
    st = next(iter(tr.optimizers["net"].state.values()))
    assert st["exp_avg"].dtype == torch.bfloat16
    loss = losses(tmp_path / "bf16")
    assert loss[40] < 0.3 * loss[1]  # as test_loss_decreases_and_checkpoints_kept asks of float32
    import shutil
    shutil.copytree(tmp_path / "bf16", tmp_path / "bf16b")
    for ck in find_checkpoints(tmp_path / "bf16b")[-1:]:
        shutil.rmtree(ck)  # resume from the checkpoint before the last
    run(tmp_path, "bf16b", resume=True, **kw)
    assert losses(tmp_path / "bf16b")[40] == pytest.approx(loss[40], rel=1e-6)
    with pytest.raises(ValueError, match="weights_dtype"):
        TrainConfig(weights_dtype="float16")
