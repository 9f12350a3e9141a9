"""python tests/reliability/toy_train.py RUN_DIR STEPS [--resume] [--sleep S] [--lr LR]

A small training run on the shared loop (an MLP regression, checkpoint every 5 steps) for the interruption tests;
--sleep slows each step so a test can kill it mid-run."""

import sys
import time

import torch
from torch import nn
from torch.utils.data import Dataset

from audioldm.training import Stage, TrainConfig, Trainer


class Data(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(4, generator=g)
        return {"x": x, "y": x.sum().reshape(1)}


def collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class Regress(Stage):
    name = "toy"

    def __init__(self, sleep: float):
        torch.manual_seed(0)
        self.net, self.sleep = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1)), sleep

    def modules(self):
        return {"net": self.net}

    def ema_modules(self):
        return ["net"]

    def optimizers(self, cfg):
        return {"net": torch.optim.AdamW(self.net.parameters(), lr=cfg.lr)}

    def train_step(self, batch, ctx):
        time.sleep(self.sleep)
        yield "net", ((self.net(batch["x"]) - batch["y"]) ** 2).mean(), {}


if __name__ == "__main__":
    run_dir, steps = sys.argv[1], int(sys.argv[2])
    sleep = float(sys.argv[sys.argv.index("--sleep") + 1]) if "--sleep" in sys.argv else 0.0
    lr = float(sys.argv[sys.argv.index("--lr") + 1]) if "--lr" in sys.argv else 1e-2
    cfg = TrainConfig(run_dir=run_dir, max_steps=steps, batch_size=8, lr=lr, ckpt_every=5, keep_last=100,
                      log_every=1, eval_every=0, progress=False, tensorboard=False, resume="--resume" in sys.argv)
    Trainer(cfg, Regress(sleep), Data(), collate).fit()
