"""Minibatch SVI for a VAE or autoencoder: the training loop.

:func:`fit` runs the objective declared in a :class:`~pyrovae.spec.TrainSpec`
with one ``torch.optim.Adam`` over the VAE's parameters (the loss is Pyro's
``differentiable_loss``; this avoids the per-parameter ``PyroOptim`` wrapper,
see DESIGN.md). Everything needed to continue a run is in a
:class:`TrainState`, handed to ``on_epoch_end`` after every epoch; passing it
back as ``state=`` resumes with results identical to an uninterrupted run at
the same seed (random states included). The loop itself touches no files.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.data import Dataset, binarize
from pyrovae.errors import NonFiniteLossError, SpecError
from pyrovae.infer.objectives import estimate_bound, estimate_elbo, make_objective
from pyrovae.models import LatentModel
from pyrovae.spec import IWAE_OBJECTIVES, TrainSpec

__all__ = [
    "LR_FLOOR",
    "EpochRecord",
    "FitResult",
    "TrainState",
    "beta_at",
    "fit",
    "lr_at",
    "resolve_device",
]

LR_FLOOR = 0.01
"""The cosine schedule ends at this share of ``train.lr``, not at 0, so that the last
steps still move."""


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


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "train.device", "'cuda' was asked for but this torch has no usable GPU; use 'cpu'"
        )
    return torch.device(name)


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


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _initial_state(
    vae: LatentModel,
    x_train: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    train: TrainSpec,
    generator: torch.Generator,
) -> TrainState:
    """Seed both random streams and let the model initialise from data (a VampPrior's
    pseudo-inputs); epoch 0."""
    torch.manual_seed(train.seed)
    generator.manual_seed(train.seed)
    vae.init_from_data(x_train, generator)
    return TrainState(
        0,
        vae.state_dict(),
        optimizer.state_dict(),
        torch.get_rng_state(),
        generator.get_state(),
        (),
        0,
        None,
    )


def _adam(vae: LatentModel, lr: float) -> torch.optim.Adam:
    """One Adam over all parameters; the fused kernel where this torch has it."""
    try:
        return torch.optim.Adam(vae.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(vae.parameters(), lr=lr)


def _snapshot(vae: LatentModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


def fit(
    vae: LatentModel,
    data: Dataset,
    train: TrainSpec,
    *,
    state: TrainState | None = None,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``vae`` on ``data.train`` with minibatch SVI.

    Parameters
    ----------
    vae : VAE or Autoencoder
        Updated in place; on return it holds the final weights (the best by
        validation ELBO when early stopping is on) and is in the training mode
        it came in. Steps run in training mode (a denoising autoencoder
        corrupts its input), validation in evaluation mode.
    data : Dataset
        ``train`` ``(N, D)`` is shuffled every epoch (and binarized per
        minibatch when ``data.dynamic_binarization``); ``validation`` gives
        the per-epoch validation ELBO.
    train : TrainSpec
        Objective, epochs, batch size, learning rate, beta, warm-up, seed,
        early stopping and device.
    state : TrainState, optional
        Resume from here instead of starting at epoch 0.
    on_epoch_end : callable, optional
        Called with the new :class:`TrainState` after each epoch (e.g. to
        write a checkpoint).
    progress : bool
        Show a tqdm progress bar with the running objective.

    Raises
    ------
    NonFiniteLossError
        When a loss is NaN or infinite; the last ``on_epoch_end`` state is the
        last good one.

    Notes
    -----
    Sampling uses torch's global random state, which ``fit`` seeds from
    ``train.seed`` (or restores from ``state`` when resuming); shuffling and
    binarization use a generator of their own, also in the state.
    """
    device = resolve_device(train.device)
    vae.to(device)
    x_train, x_val = data.train.to(device), data.validation.to(device)
    n, bs = x_train.shape[0], train.batch_size
    steps = math.ceil(n / bs)
    objective = make_objective(train.objective, train.particles)
    optimizer = _adam(vae, train.lr)
    generator = torch.Generator(device=device)
    if state is None:
        state = _initial_state(vae, x_train, optimizer, train, generator)
    else:
        vae.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng)
        generator.set_state(state.batch_rng)
    patience = train.early_stopping_patience if x_val.shape[0] else 0
    bar = tqdm(
        total=steps * max(train.epochs - state.epoch, 0),
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
    )
    stop_reason = "epochs"
    was_training = vae.training
    try:
        with pyro.validation_enabled(False):
            for epoch in range(state.epoch + 1, train.epochs + 1):
                reason = _stop_reason(state, train, patience)
                if reason:
                    stop_reason = reason
                    break
                bar.set_description(f"epoch {epoch}/{train.epochs}")
                start = time.perf_counter()
                spent = sum(r.seconds for r in state.history)
                vae.train()
                perm = torch.randperm(n, generator=generator, device=device)
                total = 0.0
                for step in range(steps):
                    xb = x_train[perm[step * bs : (step + 1) * bs]]
                    if data.dynamic_binarization:
                        xb = binarize(xb, generator)
                    done = (epoch - 1) * steps + step
                    beta = beta_at(train, done + 1, steps)
                    if train.lr_schedule != "constant":
                        elapsed = spent + time.perf_counter() - start
                        _set_lr(optimizer, lr_at(train, done / (train.epochs * steps), elapsed))
                    loss = objective(vae.model, vae.guide, xb, n, beta)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(epoch, step + 1, value)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += value
                    bar.update(1)
                    if step % 25 == 24:
                        bar.set_postfix_str(
                            f"objective={-total / (step + 1) / n:.2f}", refresh=False
                        )
                vae.eval()
                val, bound = _validation(vae, x_val, train)
                record = EpochRecord(
                    epoch, -total / steps / n, val, bound, beta, time.perf_counter() - start
                )
                shown = f"objective={record.train_objective_nats:.2f}"
                bar.set_postfix_str(shown + (f" val_elbo={val:.2f}" if x_val.shape[0] else ""))
                state = _next_state(state, vae, optimizer, generator, record, patience)
                if on_epoch_end is not None:
                    on_epoch_end(state)
    finally:
        bar.close()
        vae.train(was_training)
    vae.load_state_dict(state.final_model)
    seconds = sum(r.seconds for r in state.history)
    return FitResult(state.history, state.epoch, seconds, stop_reason, state)


def _validation(vae: LatentModel, x_val: torch.Tensor, train: TrainSpec) -> tuple[float, float]:
    """Validation ELBO and validation bound of the objective (equal unless iwae)."""
    if not x_val.shape[0]:
        return math.nan, math.nan
    elbo = estimate_elbo(vae.model, vae.guide, x_val).mean().item()
    if train.objective not in IWAE_OBJECTIVES or train.particles == 1:
        return elbo, elbo
    return elbo, estimate_bound(vae.model, vae.guide, x_val, train.particles).mean().item()


def _stop_reason(state: TrainState, train: TrainSpec, patience: int) -> str | None:
    """Why training should stop before the next epoch, if it should."""
    if patience and state.epoch - state.best_epoch >= patience:
        return "early_stopping"
    if train.max_seconds and sum(r.seconds for r in state.history) >= train.max_seconds:
        return "time_limit"
    return None


def _next_state(
    state: TrainState,
    vae: LatentModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    record: EpochRecord,
    patience: int,
) -> TrainState:
    best_epoch, best_model = state.best_epoch, state.best_model
    best_val = state.history[best_epoch - 1].validation_bound_nats if best_epoch else -math.inf
    if patience and record.validation_bound_nats > best_val:
        best_epoch, best_model = record.epoch, _snapshot(vae)
    return replace(
        state,
        epoch=record.epoch,
        model=_snapshot(vae),
        optimizer=copy.deepcopy(optimizer.state_dict()),
        rng=torch.get_rng_state(),
        batch_rng=generator.get_state(),
        history=(*state.history, record),
        best_epoch=best_epoch,
        best_model=best_model,
    )
