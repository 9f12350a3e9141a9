"""Run logging on the main process: ``metrics.jsonl`` always, TensorBoard (scalars, mel images, audio) when the
`tensorboard` package is installed, plain log lines otherwise."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch

__all__ = ["RunLogger"]

log = logging.getLogger("audioldm.train")


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True, echo=None):
        self.enabled, self.run_dir, self.tb = enabled, Path(run_dir), None
        self.echo = echo or (lambda s: log.info(s))
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except Exception:  # tensorboard not installed: plain lines only
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """On resume, drop metric lines logged after the checkpoint we resume from."""
        if not self.enabled or not self.metrics_path.exists():
            return
        keep = []
        for ln in self.metrics_path.read_text().splitlines():
            try:
                row = json.loads(ln)
            except ValueError:  # a line torn by a kill mid-write: dropped
                continue
            if isinstance(row, dict) and row.get("step", 0) <= step:
                keep.append(ln)
        self.metrics_path.write_text("".join(ln + "\n" for ln in keep))

    def scalars(self, step: int, values: dict, kind: str = "train", echo: bool = True) -> None:
        if not self.enabled:
            return
        values = {k: (float(v) if not isinstance(v, str) else v) for k, v in values.items()}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
        if self.tb:
            for k, v in values.items():
                if isinstance(v, float) and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)
        if echo:
            self.echo(f"[{kind}] step {step} " + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))

    def image(self, step: int, name: str, img: torch.Tensor) -> None:
        """img [H, W] (e.g. a log-mel, low frequencies at the bottom), min-max normalised."""
        if self.enabled and self.tb:
            img = img.detach().float().cpu().flip(0)
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
            self.tb.add_image(name, img[None], step)

    def audio(self, step: int, name: str, wav: torch.Tensor, sample_rate: int) -> None:
        if self.enabled and self.tb:
            self.tb.add_audio(name, wav.detach().float().cpu().clamp(-1, 1)[None], step, sample_rate=sample_rate)

    def close(self) -> None:
        if self.tb:
            self.tb.close()
