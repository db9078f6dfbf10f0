"""What a training run is at the end of an epoch (or where it was interrupted), and what
:func:`~pyrovae.train.loop.fit` returns: the history, the state to resume from, and why it
stopped."""

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
    """Everything a run needs to continue exactly where it stopped: at the end of epoch
    ``epoch``, or, when interrupted, after ``step`` steps of epoch ``epoch + 1``."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor
    batch_rng: torch.Tensor
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_model: dict[str, torch.Tensor] | None
    step: int = 0
    """Steps of epoch ``epoch + 1`` already taken (0: the epoch has not started)."""
    epoch_batches: tuple[torch.Tensor, ...] = ()
    """That epoch's minibatch indices, every step's, so a resumed run takes the rest."""
    epoch_total: float = 0.0
    """Sum of that epoch's step losses so far."""
    epoch_seconds: float = 0.0
    """Wall time of that epoch so far."""
    ranks: tuple[dict[str, Any], ...] = ()
    """In a run of several processes, what differs between them, one dict per rank in
    rank order: ``rng`` (its sampling stream), ``epoch_batches`` (its shares of the
    epoch's minibatches) and ``epoch_total``; empty for one process, whose own are the
    fields above (:mod:`pyrovae.train.ranks`)."""

    def to_checkpoint(self) -> dict[str, Any]:
        """Plain tensors, dicts, lists and numbers: loadable with ``weights_only=True``."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["history"] = [list(r) for r in self.history]
        out["epoch_batches"] = list(self.epoch_batches)
        out["ranks"] = [{**r, "epoch_batches": list(r["epoch_batches"])} for r in self.ranks]
        return out

    @classmethod
    def from_checkpoint(cls, raw: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_checkpoint` (checkpoints written between epochs before the
        mid-epoch fields existed read as such)."""
        history = tuple(EpochRecord(int(r[0]), *map(float, r[1:])) for r in raw["history"])
        batches = tuple(raw.get("epoch_batches", ()))
        ranks = tuple(
            {**r, "epoch_batches": tuple(r["epoch_batches"])} for r in raw.get("ranks", ())
        )
        return cls(**{**raw, "history": history, "epoch_batches": batches, "ranks": ranks})

    @property
    def mid_epoch(self) -> bool:
        """Whether the state was taken inside an epoch (an interrupted run)."""
        return self.step > 0

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
    """``"epochs"`` (all done), ``"early_stopping"``, ``"time_limit"`` or
    ``"interrupted"`` (``should_stop`` said so; the state is taken mid-epoch)."""
    state: TrainState
