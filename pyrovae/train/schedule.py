"""The KL weight and the learning rate as functions of training progress."""

from __future__ import annotations

import math

import torch

from pyrovae.spec import TrainSpec

__all__ = ["LR_FLOOR", "beta_at", "lr_at", "set_lr"]

LR_FLOOR = 0.01
"""The cosine schedule ends at this share of ``train.lr``, not at 0, so that the last
steps still move."""


def beta_at(train: TrainSpec, step: int, steps_per_epoch: int) -> float:
    """KL weight at global ``step`` (from 1): linear warm-up to ``train.beta``."""
    if train.kl_warmup_epochs == 0:
        return train.beta
    return train.beta * min(1.0, step / (train.kl_warmup_epochs * steps_per_epoch))


def lr_at(train: TrainSpec, step_progress: float, seconds: float) -> float:
    """Learning rate after ``step_progress`` (share of all steps done, 0..1) and
    ``seconds`` of training.

    With ``lr_schedule = "cosine"`` the progress is the larger of the share of
    steps and the share of ``max_seconds`` used (when set), so a run cut by its
    time budget still ends its anneal. The time share depends on the machine,
    so a resumed run under a time budget is not bit-identical.
    """
    if train.lr_schedule == "constant":
        return train.lr
    progress = step_progress
    if train.max_seconds:
        progress = max(progress, seconds / train.max_seconds)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return train.lr * (LR_FLOOR + (1 - LR_FLOOR) * cosine)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr
