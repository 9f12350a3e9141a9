"""One training loop for every stage (see trainer.py), checkpoints, distributed helpers, losses and the stages."""

from .trainer import Stage, StepContext, TrainConfig, Trainer, TrainingDiverged

__all__ = ["Stage", "StepContext", "TrainConfig", "Trainer", "TrainingDiverged"]
