"""Minibatch SVI for a VAE or autoencoder: the training loop.

:func:`fit` runs the objective declared in a :class:`~pyrovae.spec.TrainSpec`
with one ``torch.optim.Adam`` over the VAE's parameters (the loss is Pyro's
``differentiable_loss``; this avoids the per-parameter ``PyroOptim`` wrapper,
see DESIGN.md). Everything needed to continue a run is in a
:class:`TrainState`, handed to ``on_epoch_end`` after every epoch; passing it
back as ``state=`` resumes with results identical to an uninterrupted run at
the same seed (random states included). The loop itself touches no files.

Three seams make the loop's surroundings replaceable without editing it: where the
model and data live (:class:`~pyrovae.train.placement.Placement`), how each epoch's
minibatches are drawn (:class:`~pyrovae.train.batches.Batches`), and which process
writes and how processes agree on figures and stops
(:class:`~pyrovae.train.process.ProcessGroup`). The defaults are one device, one
shuffled permutation per epoch and one process.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.data.dataset import Dataset, binarize
from pyrovae.errors import NonFiniteLossError
from pyrovae.models import LatentModel
from pyrovae.spec import IWAE_OBJECTIVES, TrainSpec
from pyrovae.train.batches import Batches, ShuffledBatches
from pyrovae.train.objectives import estimate_bound, estimate_elbo, make_objective
from pyrovae.train.placement import LocalPlacement, Placement
from pyrovae.train.process import ProcessGroup, SingleProcess
from pyrovae.train.schedule import beta_at, lr_at, set_lr
from pyrovae.train.state import EpochRecord, FitResult, TrainState

__all__ = ["fit"]


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
    placement: Placement | None = None,
    batches: Batches | None = None,
    process: ProcessGroup | None = None,
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
        write a checkpoint), in the writing process only.
    progress : bool
        Show a tqdm progress bar with the running objective (writing process only).
    placement : Placement, optional
        Where the model and data live; default ``LocalPlacement(train.device)``.
    batches : Batches, optional
        How each epoch's minibatches are drawn; default a shuffled permutation of
        ``data.train`` in batches of ``train.batch_size``.
    process : ProcessGroup, optional
        The processes training together; default this one alone.

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
    placement = placement or LocalPlacement(train.device)
    process = process or SingleProcess()
    device = placement.device
    placement.place_model(vae)
    x_train, x_val = placement.place_data(data.train), placement.place_data(data.validation)
    batches = batches or ShuffledBatches(x_train.shape[0], train.batch_size, device)
    n, steps = batches.n_total, batches.steps
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
        disable=not (progress and process.is_writer),
        unit="step",
        dynamic_ncols=True,
    )
    stop_reason = "epochs"
    was_training = vae.training
    try:
        with pyro.validation_enabled(False):
            for epoch in range(state.epoch + 1, train.epochs + 1):
                reason = _stop_reason(state, train, patience, process)
                if reason:
                    stop_reason = reason
                    break
                bar.set_description(f"epoch {epoch}/{train.epochs}")
                start = time.perf_counter()
                spent = sum(r.seconds for r in state.history)
                vae.train()
                total = 0.0
                for step, rows in enumerate(batches.epoch(generator)):
                    xb = x_train[rows]
                    if data.dynamic_binarization:
                        xb = binarize(xb, generator)
                    done = (epoch - 1) * steps + step
                    beta = beta_at(train, done + 1, steps)
                    if train.lr_schedule != "constant":
                        elapsed = spent + time.perf_counter() - start
                        set_lr(optimizer, lr_at(train, done / (train.epochs * steps), elapsed))
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
                val, bound = (process.mean(v) for v in _validation(vae, x_val, train))
                seconds = process.mean(time.perf_counter() - start)
                record = EpochRecord(
                    epoch, process.mean(-total / steps / n), val, bound, beta, seconds
                )
                shown = f"objective={record.train_objective_nats:.2f}"
                bar.set_postfix_str(shown + (f" val_elbo={val:.2f}" if x_val.shape[0] else ""))
                state = _next_state(state, vae, optimizer, generator, record, patience)
                if on_epoch_end is not None and process.is_writer:
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


def _stop_reason(
    state: TrainState, train: TrainSpec, patience: int, process: ProcessGroup
) -> str | None:
    """Why training should stop before the next epoch, if it should; agreed by every
    process, so all stop at the same step."""
    if process.any(bool(patience) and state.epoch - state.best_epoch >= patience):
        return "early_stopping"
    spent = sum(r.seconds for r in state.history)
    if process.any(bool(train.max_seconds) and spent >= train.max_seconds):
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
