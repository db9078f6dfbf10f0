"""What a training run is at the end of an epoch, and what :func:`~pyrovae.train.loop.fit`
returns: the history, the state to resume from, and why it stopped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["EpochRecord", "FitResult", "TrainState"]


class EpochRecord(NamedTuple):
    """One row of the training history (per example, in nats)."""

    epoch: int
    train_objective_nats: float
    """Mean over the epoch's steps of the objective (beta-ELBO or IWAE bound)."""
    validation_elbo_nats: float
    """ELBO (beta = 1) on the validation split after the epoch; NaN without one."""
    validation_bound_nats: float
    """The bound being trained (the ELBO, or the k-sample IWAE bound for ``iwae`` and
    ``iwae_dreg``) on the validation split; early stopping follows it. NaN without a
    validation split."""
    beta: float
    seconds: float
    """Wall time of the epoch, validation included."""


@dataclass(frozen=True)
class TrainState:
    """Everything a run needs to continue exactly where it stopped."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor
    batch_rng: torch.Tensor
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_model: dict[str, torch.Tensor] | None

    def to_checkpoint(self) -> dict[str, Any]:
        """Plain tensors, dicts, lists and numbers: loadable with ``weights_only=True``."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["history"] = [list(r) for r in self.history]
        return out

    @classmethod
    def from_checkpoint(cls, raw: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_checkpoint`."""
        history = tuple(EpochRecord(int(r[0]), *map(float, r[1:])) for r in raw["history"])
        return cls(**{**raw, "history": history})

    @property
    def final_model(self) -> dict[str, torch.Tensor]:
        """The weights a finished run keeps: the best by validation ELBO if tracked."""
        return self.best_model if self.best_model is not None else self.model


class FitResult(NamedTuple):
    """What :func:`fit` returns."""

    history: tuple[EpochRecord, ...]
    epochs: int
    seconds: float
    stop_reason: str
    """``"epochs"`` (all done), ``"early_stopping"`` or ``"time_limit"``."""
    state: TrainState
