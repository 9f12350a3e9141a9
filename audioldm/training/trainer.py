"""The one training loop, shared by every stage (VAE, vocoder, U-Net).

A stage (:class:`Stage`) supplies its modules, optimizers, a step function and an eval hook. The step function is a
generator that yields ``(optimizer_name, loss, logs)``; the trainer back-propagates each loss into that optimizer's
parameters only (so a GAN's generator loss never leaks gradients into its discriminator), accumulates over
micro-batches, clips, steps, and updates the EMA. Across processes the stage calls the modules of
``ctx.modules``, which torch's engine wraps (distributed.py: DistributedDataParallel, or FSDP2), so gradients are
averaged over ranks during backward, bucketed and overlapped with it, once per optimizer step.

Also here: `torchrun` data parallelism (gloo on CPU, nccl on CUDA) with per-rank sharding, bf16 autocast on CUDA,
warmup + cosine LR, atomic checkpoints every N steps and at the end (keeping the last K), ``resume``, NaN/Inf steps
skipped and counted (training stops after ``max_nan_streak`` in a row), metrics.jsonl / TensorBoard / log lines, and a
tqdm bar. Global RNGs are reseeded from (seed, step, rank) at every step, so a resumed CPU run reproduces the losses
of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import config_to_dict
from ..seeding import mix_seed, randn_per_sample
from .checkpoint import check_resume_settings, find_checkpoints, load_newest_valid, save_checkpoint
from .distributed import (
    PARALLEL_MODES,
    DistInfo,
    StepBatchSampler,
    all_reduce_mean,
    init_distributed,
    no_sync,
    wrap_modules,
)
from .interrupt import Interrupted, StopOnSignal
from .logger import RunLogger

__all__ = ["TrainConfig", "Stage", "StepContext", "Trainer", "TrainingDiverged", "lr_factor"]

log = logging.getLogger("audioldm.train")


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainConfig:
    run_dir: str = "runs/exp"
    max_steps: int = 1000
    batch_size: int = 16  # samples per optimizer step, over all ranks and accumulation steps
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio at max_steps
    grad_clip: float = 1.0  # max global grad norm per optimizer; 0 disables
    ema_decay: float = 0.999  # 0 disables the EMA
    ckpt_every: int = 500
    keep_last: int = 3
    eval_every: int = 500  # 0: only at the end
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    parallel: str = "ddp"  # under torchrun: "ddp" (DistributedDataParallel) or "fsdp" (FSDP2 fully_shard)
    weights_dtype: str = "float32"  # "bfloat16": the trained weights, gradients and optimizer state in bf16 (a GPU
    # memory lever: half of float32's; the forward runs under bf16 autocast; the EMA stays float32)
    device: str = "auto"
    max_nan_streak: int = 10
    resume: bool = False
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        for k in ("max_steps", "batch_size", "grad_accum", "ckpt_every", "log_every", "max_nan_streak"):
            if getattr(self, k) <= 0:
                raise ValueError(f"TrainConfig.{k} must be positive, got {getattr(self, k)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr}")
        if self.weights_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"TrainConfig.weights_dtype must be float32 or bfloat16, got {self.weights_dtype!r}")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(f"TrainConfig.parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from 1 to min_lr_ratio at max_steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class StepContext:
    step: int
    epoch: int
    seed: int
    device: torch.device
    info: DistInfo
    ema: dict  # name -> EMA copy (eval mode), empty when disabled
    logger: RunLogger | None = None
    amp: bool = True  # TrainConfig.amp: bf16 autocast on CUDA
    modules: dict = field(default_factory=dict)  # name -> the module to call in train_step (DDP-wrapped under torchrun)
    bf16_weights: bool = False  # TrainConfig.weights_dtype == "bfloat16": autocast on every device

    def randn(self, batch: dict, shape, salt: int = 0) -> torch.Tensor:
        """Noise [B, *shape] where row k depends only on (seed, epoch, dataset index of sample k, salt)."""
        seeds = [mix_seed(self.seed, self.epoch, int(i), salt) for i in batch["index"]]
        return randn_per_sample(seeds, shape, device=self.device)

    @property
    def autocast(self):
        """bf16 autocast for the stage's forward passes on CUDA when ``amp``, and on any device when the weights are
        bf16; a no-op otherwise (float32 weights on CPU, or amp off)."""
        if (self.amp and self.device.type == "cuda") or self.bf16_weights:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


class Stage:
    """What a training stage provides. Subclasses override the methods below."""

    name = "stage"

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def ema_modules(self) -> list[str]:
        """Names (keys of modules()) whose weights get an EMA copy."""
        return []

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict, ctx: StepContext):
        """Yield (optimizer_name, scalar loss, {name: scalar tensor}) once per optimizer to update."""
        raise NotImplementedError

    def evaluate(self, ctx: StepContext) -> dict:
        """Main process only. Return {"scalars": {...}, "images": {name: [H, W]}, "audio": {name: [T]}}."""
        return {}


class _Indexed(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return i, self.ds[i]


class _IndexedCollate:
    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        batch = self.collate([it for _, it in items])
        batch["index"] = torch.tensor([i for i, _ in items])
        return batch


def _to(batch, device):
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class Trainer:
    def __init__(self, cfg: TrainConfig, stage: Stage, train_dataset: Dataset, collate_fn, info: DistInfo | None = None):
        self.cfg, self.stage = cfg, stage
        self.info = info or init_distributed(cfg.device)
        self.device = self.info.device
        self.run_dir = Path(cfg.run_dir)
        self.dataset = train_dataset
        self.sampler = StepBatchSampler(len(train_dataset), cfg.batch_size, self.info, cfg.grad_accum, cfg.seed)
        self.loader = DataLoader(_Indexed(train_dataset), batch_sampler=self.sampler,
                                 collate_fn=_IndexedCollate(collate_fn), num_workers=cfg.num_workers,
                                 pin_memory=self.device.type == "cuda")
        self.modules = {k: m.to(self.device) for k, m in stage.modules().items()}
        self.ema = {}  # full (unsharded), float32 copies, made before any sharding or bf16 cast
        if cfg.ema_decay > 0:
            for name in stage.ema_modules():
                e = copy.deepcopy(self.modules[name]).float().eval()
                e.requires_grad_(False)
                self.ema[name] = e
        if cfg.weights_dtype == "bfloat16":
            for m in self.modules.values():
                m.to(torch.bfloat16)
        # torch's engine across processes: identical start from rank 0, gradients all-reduced during backward
        self.fsdp = self.info.enabled and cfg.parallel == "fsdp"
        self.wrapped = wrap_modules(self.modules, self.info, cfg.parallel)
        self.optimizers = stage.optimizers(cfg)  # after sharding: FSDP2 replaces the parameters by shards
        if self.fsdp and len(self.optimizers) != 1:
            raise ValueError(f"parallel='fsdp' trains stages with one optimizer (the U-Net); {stage.name} has "
                             f"{sorted(self.optimizers)}: train it with parallel='ddp'")
        if self.fsdp and not self.ema:
            raise ValueError("parallel='fsdp' needs an EMA (ema_decay > 0): the EMA is the full copy of the weights "
                             "that evaluation and the saved model read, on the main process alone")
        self.base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in self.optimizers.items()}
        self.params = {n: [p for g in o.param_groups for p in g["params"]] for n, o in self.optimizers.items()}
        self.logger = RunLogger(self.run_dir, self.info.is_main, cfg.tensorboard, echo=self._echo)
        self.step = self.epoch = self.step_in_epoch = 0
        self.nan_streak = self.nan_total = 0
        self._bar = None
        self._signal = StopOnSignal()  # active during fit(); _stop: whether any rank got SIGTERM / SIGINT
        self._stop = False

    # ---- helpers -------------------------------------------------------------------------------------------------
    def _echo(self, msg: str):
        """A line for the person running this (rank 0): above the progress bar, or on stderr."""
        if not self.info.is_main:
            return
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def context(self) -> StepContext:
        return StepContext(self.step, self.epoch, self.cfg.seed, self.device, self.info, self.ema, self.logger,
                           self.cfg.amp, self.wrapped, self.cfg.weights_dtype == "bfloat16")

    def _update_ema(self):
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for name, e in self.ema.items():
            src = self.modules[name]
            with torch.no_grad():
                for pe, p in zip(e.parameters(), src.parameters()):
                    full = p.full_tensor() if hasattr(p, "full_tensor") else p  # FSDP2 shard: gathered (all ranks)
                    pe.lerp_(full.detach().to(pe.dtype), 1 - d)
                for be, b in zip(e.buffers(), src.buffers()):
                    be.copy_(b.to(be.dtype))

    def _state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "nan_streak": self.nan_streak, "nan_total": self.nan_total, "world_size": self.info.world_size,
                "stage": self.stage.name, "config": config_to_dict(self.cfg)}

    def save(self):
        if self.info.is_main or self.fsdp:  # FSDP2: every rank takes part in gathering the shards
            path = save_checkpoint(self.run_dir, self.step, self.modules, self.ema, self.optimizers, self._state(),
                                   self.cfg.keep_last, write=self.info.is_main)
            if self.info.is_main:
                self._echo(f"saved checkpoint {path}")
        if self.info.enabled:
            torch.distributed.barrier()

    def _maybe_resume(self):
        existing = find_checkpoints(self.run_dir, warn=False)
        if not self.cfg.resume:
            if existing:
                raise FileExistsError(f"{self.run_dir}: already holds checkpoints (newest {existing[-1].name}); "
                                      f"pass --resume to continue it or choose another run directory")
            return
        found = find_checkpoints(self.run_dir)  # warns about incomplete ones
        if not found:
            log.warning("--resume: no complete checkpoint in %s, starting from scratch", self.run_dir)
            return
        check_resume_settings(found[-1], self._state())  # another batch size, lr, process count: refused
        ck, st = load_newest_valid(found, self.modules, self.ema, self.optimizers, self._echo)
        self.step, self.epoch, self.step_in_epoch = st["step"], st["epoch"], st["step_in_epoch"]
        self.nan_streak, self.nan_total = st["nan_streak"], st["nan_total"]
        self.logger.truncate_after(self.step)
        self._echo(f"resumed from {ck} at step {self.step}")

    # ---- one optimizer step ----------------------------------------------------------------------------------------
    def _train_step(self, micro_batches: list[dict]) -> dict:
        torch.manual_seed(mix_seed(self.cfg.seed, self.step, self.info.rank))
        np.random.seed(mix_seed(self.cfg.seed, self.step, self.info.rank) % 2 ** 32)
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        for m in self.modules.values():
            m.train()
        ctx = self.context()
        finite = torch.ones((), device=self.device)
        logs: dict[str, torch.Tensor] = {}
        accum = len(micro_batches)
        for j, mb in enumerate(micro_batches):
            mb = _to(mb, self.device)
            with no_sync(self.wrapped, active=j < accum - 1), ctx.autocast:  # one all-reduce, after the last
                for opt_name, loss, step_logs in self.stage.train_step(mb, ctx):
                    finite = finite * torch.isfinite(loss.detach()).float()
                    # each loss reaches its own optimizer's parameters only; FSDP2 computes gradients for the
                    # gathered parameters, not the shards, so it takes the plain backward (one optimizer)
                    torch.autograd.backward(loss / accum, inputs=None if self.fsdp else self.params[opt_name])
                    for k, v in {f"loss_{opt_name}": loss, **step_logs}.items():
                        v = torch.as_tensor(v, device=self.device).detach().float()
                        logs[k] = logs.get(k, 0.0) + v / accum
        # a finite loss can still give infinite / NaN gradients: their norms count towards the step's finiteness
        norms = {}
        for name in self.optimizers:
            clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
            norm = torch.nn.utils.clip_grad_norm_([p for p in self.params[name] if p.grad is not None], clip)
            norms[name] = (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).detach().float()  # FSDP2
            finite = finite * torch.isfinite(norms[name]).float()
        # one reduction and the one host sync per step: every rank's finiteness, and whether any rank was signalled
        # (all ranks must stop at the same step to save together)
        got = torch.tensor(float(self._signal.signum is not None), device=self.device)
        finite, stop = all_reduce_mean(torch.stack([finite, got]), self.info).tolist()
        ok, self._stop = finite == 1.0, stop > 0
        factor = lr_factor(self.step, self.cfg)
        if ok:
            self.nan_streak = 0
            logs.update({f"grad_norm_{name}": norm for name, norm in norms.items()})
            for name, opt in self.optimizers.items():
                for g, base in zip(opt.param_groups, self.base_lrs[name]):
                    g["lr"] = base * factor
                opt.step()
            self._update_ema()
        else:
            self.nan_streak += 1
            self.nan_total += 1
            for o in self.optimizers.values():
                o.zero_grad(set_to_none=True)
            self._echo(f"step {self.step}: non-finite loss or gradients, step skipped "
                       f"({self.nan_streak} in a row, {self.nan_total} in total)")
            if self.nan_streak >= self.cfg.max_nan_streak:
                raise TrainingDiverged(f"training stopped: {self.nan_streak} consecutive steps had a NaN/Inf loss "
                                       f"(max_nan_streak={self.cfg.max_nan_streak}) at step {self.step}; lower the "
                                       f"learning rate, check the data, or resume from an earlier checkpoint")
        out = {k: all_reduce_mean(v if torch.is_tensor(v) else torch.tensor(v), self.info) for k, v in logs.items()}
        out["lr"] = torch.tensor(self.cfg.lr * factor)
        out["skipped"] = torch.tensor(float(not ok))
        return out

    def _evaluate(self):
        if self.info.is_main:
            for m in self.modules.values():
                m.eval()
            with torch.no_grad():
                res = self.stage.evaluate(self.context()) or {}
            if res.get("scalars"):
                self.logger.scalars(self.step, res["scalars"], kind="valid")
            for k, img in (res.get("images") or {}).items():
                self.logger.image(self.step, k, img)
            sr = res.get("sample_rate", 16000)
            for k, wav in (res.get("audio") or {}).items():
                self.logger.audio(self.step, k, wav, sr)
            self.last_eval = res.get("scalars", {})
        if self.info.enabled:
            torch.distributed.barrier()

    # ---- the loop --------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until max_steps; returns the last logged train scalars (and eval scalars under "valid")."""
        cfg = self.cfg
        self._maybe_resume()
        self.last_eval, last = {}, {}
        if self.step >= cfg.max_steps:
            self._echo(f"already at step {self.step} >= max_steps={cfg.max_steps}; nothing to do")
            return {}
        from tqdm import tqdm
        self._bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.info.is_main),
                         desc=self.stage.name, file=sys.stderr, dynamic_ncols=True)
        t_last, n_last = time.perf_counter(), self.step
        try:
            self._signal.__enter__()
            while self.step < cfg.max_steps:
                self.sampler.set_epoch(self.epoch, self.step_in_epoch)
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(self.epoch)
                it = iter(self.loader)
                for _ in range(self.step_in_epoch, self.sampler.steps_per_epoch):
                    if self.step >= cfg.max_steps:
                        break
                    micro = [next(it) for _ in range(cfg.grad_accum)]
                    logs = self._train_step(micro)
                    self.step += 1
                    self.step_in_epoch += 1
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        now = time.perf_counter()
                        last = {k: float(v) for k, v in logs.items()}
                        last["it_per_s"] = (self.step - n_last) / max(now - t_last, 1e-9)
                        t_last, n_last = now, self.step
                        self.logger.scalars(self.step, last)
                        main = next((k for k in last if k.startswith("loss_")), None)
                        if main:
                            self._bar.set_postfix({"loss": f"{last[main]:.4f}", "it/s": f"{last['it_per_s']:.2f}"})
                    self._bar.update(1)
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                        self._evaluate()
                    saved = self.step % cfg.ckpt_every == 0 or self.step == cfg.max_steps
                    if saved:
                        self.save()
                    if self._stop:
                        if not saved:
                            self.save()
                        raise Interrupted(self._signal.signum or signal.SIGTERM, self.step,
                                          self.run_dir / "checkpoints" / f"step_{self.step:08d}")
                del it
                if self.step_in_epoch >= self.sampler.steps_per_epoch:
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self._evaluate()
        except Interrupted as e:
            self._echo(str(e))
            raise
        finally:
            self._signal.__exit__(None, None, None)
            self._bar.close()
            self._bar = None
            self.logger.close()
        return {**last, "valid": self.last_eval}
