"""Minibatch SVI for a VAE or autoencoder: the training loop.

:func:`fit` runs the objective declared in a :class:`~pyrovae.spec.TrainSpec`
with one fused ``torch.optim.Adam`` over the VAE's parameters (the loss is Pyro's
differentiable loss, traced once per minibatch shape when ``train.jit`` is on, see
:mod:`pyrovae.train.traced`; one optimizer avoids the per-parameter ``PyroOptim``
wrapper, ``benchmarks/speedups.py``). Everything needed to continue a run is in a
:class:`TrainState`, handed to ``on_epoch_end`` after every epoch; passing it
back as ``state=`` resumes with results identical to an uninterrupted run at
the same seed (random states included). The loop itself touches no files.

Three seams make the loop's surroundings replaceable without editing it: where the
model and data live (:class:`~pyrovae.train.placement.Placement`), how each epoch's
minibatches are drawn (:class:`~pyrovae.train.batches.Batches`), and which process
writes and how processes agree on figures and stops
(:class:`~pyrovae.train.process.ProcessGroup`). The defaults are one device, one
shuffled permutation per epoch and one process. Several processes training one model
(:mod:`pyrovae.train.distributed`) take their shares of the plan's minibatches through
the process group, run the objective through it (DDP, which averages the gradients),
sample from streams of their own (:mod:`pyrovae.train.ranks`) and checkpoint all of
them; the traced objective is used by a single process only.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.data.dataset import Dataset, binarize
from pyrovae.data.disk import Rows
from pyrovae.errors import NonFiniteLossError
from pyrovae.models import LatentModel
from pyrovae.spec import IWAE_OBJECTIVES, TrainSpec
from pyrovae.train.batches import Batches, batches_for
from pyrovae.train.objectives import estimate_bound, estimate_elbo, make_objective
from pyrovae.train.placement import LocalPlacement, Placement
from pyrovae.train.process import ProcessGroup, SingleProcess
from pyrovae.train.ranks import for_rank, own_part, rank_seed, with_ranks
from pyrovae.train.schedule import beta_at, lr_at, set_lr
from pyrovae.train.state import EpochRecord, FitResult, TrainState
from pyrovae.train.threads import resolve_threads, torch_threads

__all__ = ["fit"]


def _initial_state(
    vae: LatentModel,
    x_train: Rows,
    optimizer: torch.optim.Optimizer,
    train: TrainSpec,
    generator: torch.Generator,
    rank: int,
) -> TrainState:
    """Seed both random streams and let the model initialise from data (a VampPrior's
    pseudo-inputs); epoch 0. The batch stream is the same in every process, the sampling
    stream each process's own (:func:`~pyrovae.train.ranks.rank_seed`)."""
    generator.manual_seed(train.seed)
    vae.init_from_data(x_train, generator)
    torch.manual_seed(rank_seed(train.seed, rank))
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


class _Run(NamedTuple):
    """What every step of one :func:`fit` call uses."""

    vae: LatentModel
    x_train: Rows
    """The training rows: in memory, or a row store that reads each minibatch from disk."""
    dynamic_binarization: bool
    pixels: int
    """Columns of a row that are data (a label model's rows end with the class)."""
    train: TrainSpec
    objective: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    batches: Batches
    should_stop: Callable[[], bool]
    bar: tqdm


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
    should_stop: Callable[[], bool] | None = None,
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
        Resume from here instead of starting at epoch 0 (also from inside an epoch).
    on_epoch_end : callable, optional
        Called with the new :class:`TrainState` after each epoch (e.g. to
        write a checkpoint), and with the mid-epoch state when ``should_stop``
        stops the run; in the writing process only.
    progress : bool
        Show a tqdm progress bar with the running objective (writing process only).
    placement : Placement, optional
        Where the model and data live; default ``LocalPlacement(train.device)``.
    batches : Batches, optional
        How each epoch's minibatches are drawn; default a shuffled permutation of
        ``data.train`` in batches of ``train.batch_size``.
    process : ProcessGroup, optional
        The processes training together; default this one alone.
    should_stop : callable, optional
        Asked after every step (e.g. whether a signal arrived); when it says yes the
        run stops there with ``stop_reason = "interrupted"`` and a state that resumes
        exactly, as if it had not been stopped.

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
    batches = process.shard(
        batches
        or batches_for(x_train, data.classes, train.batch_size, device, train.labelled_per_batch)
    )
    optimizer = _adam(vae, train.lr)
    generator = torch.Generator(device=device)
    if state is None:
        state = _initial_state(vae, x_train, optimizer, train, generator, process.rank)
    else:
        state = for_rank(state, process.rank, process.world_size, train.seed)
        vae.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng)
        generator.set_state(state.batch_rng)
    patience = train.early_stopping_patience if x_val.shape[0] else 0
    traced = vae if train.jit and process.world_size == 1 else None
    bar = tqdm(
        total=batches.steps * max(train.epochs - state.epoch, 0) - state.step,
        disable=not (progress and process.is_writer),
        unit="step",
        dynamic_ncols=True,
    )
    run = _Run(
        vae,
        x_train,
        data.dynamic_binarization,
        data.dim,
        train,
        process.share_gradients(
            vae,
            make_objective(
                train.objective,
                train.particles,
                traced,
                enumerate_discrete=vae.discrete_latents,
            ),
        ),
        optimizer,
        generator,
        batches,
        should_stop or (lambda: False),
        bar,
    )
    stop_reason = "epochs"
    was_training = vae.training
    try:
        with pyro.validation_enabled(False), torch_threads(resolve_threads(train.threads)):
            for epoch in range(state.epoch + 1, train.epochs + 1):
                reason = None if state.mid_epoch else _stop_reason(state, train, patience, process)
                if reason:
                    stop_reason = reason
                    break
                bar.set_description(f"epoch {epoch}/{train.epochs}")
                state, beta = _epoch(run, state, epoch, process)
                if not state.mid_epoch:
                    vae.eval()
                    state = _end_epoch(run, state, x_val, beta, patience, process)
                shared = _shared(state, process)
                if on_epoch_end is not None and process.is_writer:
                    on_epoch_end(shared)
                if state.mid_epoch or (epoch < train.epochs and process.any(run.should_stop())):
                    stop_reason = "interrupted"
                    break
    finally:
        bar.close()
        vae.train(was_training)
    vae.load_state_dict(state.final_model)
    seconds = sum(r.seconds for r in state.history)
    return FitResult(state.history, state.epoch, seconds, stop_reason, _shared(state, process))


def _shared(state: TrainState, process: ProcessGroup) -> TrainState:
    """``state`` with every process's own part when there are several (a collective: every
    process calls it at the same point)."""
    if process.world_size == 1:
        return state
    return with_ranks(state, process.gather(own_part(state)))


def _epoch(
    run: _Run, state: TrainState, epoch: int, process: ProcessGroup
) -> tuple[TrainState, float]:
    """Take epoch ``epoch``'s steps (the rest of them when ``state`` is mid-epoch).

    Returns the state, mid-epoch if ``run.should_stop`` stopped it (else only the
    epoch's running sums are in it), and the last step's beta.
    """
    train, n, steps = run.train, run.batches.n_total, run.batches.steps
    start = time.perf_counter() - state.epoch_seconds
    spent = sum(r.seconds for r in state.history)
    first, total = state.step, state.epoch_total
    epoch_batches = state.epoch_batches or tuple(run.batches.epoch(run.generator))
    run.vae.train()
    beta = beta_at(train, (epoch - 1) * steps + 1, steps)
    for step in range(first, len(epoch_batches)):
        xb = run.x_train[epoch_batches[step]]
        if run.dynamic_binarization:  # several processes: from each one's own stream
            generator = run.generator if process.world_size == 1 else None
            xb = binarize(xb, generator, run.pixels)
        done = (epoch - 1) * steps + step
        beta = beta_at(train, done + 1, steps)
        if train.lr_schedule != "constant":
            elapsed = spent + time.perf_counter() - start
            if train.max_seconds:  # the rate follows the time: the same in every process
                elapsed = process.mean(elapsed)
            set_lr(run.optimizer, lr_at(train, done / (train.epochs * steps), elapsed))
        loss = run.objective(run.vae.model, run.vae.guide, xb, n, beta)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(epoch, step + 1, value)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        total += value
        run.bar.update(1)
        if step % 25 == 24:
            shown = -process.mean(total) / (step + 1) / n
            run.bar.set_postfix_str(f"objective={shown:.2f}", refresh=False)
        if step + 1 < len(epoch_batches) and process.any(run.should_stop()):
            return _mid_epoch_state(run, state, step + 1, epoch_batches, total, start), beta
    done_state = replace(
        state,
        step=0,
        epoch_batches=(),
        epoch_total=total,
        epoch_seconds=time.perf_counter() - start,
    )
    return done_state, beta


def _end_epoch(
    run: _Run,
    state: TrainState,
    x_val: torch.Tensor,
    beta: float,
    patience: int,
    process: ProcessGroup,
) -> TrainState:
    """Validate, record the epoch and take the state at its end."""
    n, steps = run.batches.n_total, run.batches.steps
    start = time.perf_counter() - state.epoch_seconds
    val, bound = (process.mean(v) for v in _validation(run.vae, x_val, run.train))
    seconds = process.mean(time.perf_counter() - start)
    objective = process.mean(-state.epoch_total / steps / n)
    record = EpochRecord(state.epoch + 1, objective, val, bound, beta, seconds)
    shown = f"objective={record.train_objective_nats:.2f}"
    run.bar.set_postfix_str(shown + (f" val_elbo={val:.2f}" if x_val.shape[0] else ""))
    return _next_state(state, run.vae, run.optimizer, run.generator, record, patience)


def _mid_epoch_state(
    run: _Run,
    state: TrainState,
    step: int,
    epoch_batches: tuple[torch.Tensor, ...],
    total: float,
    start: float,
) -> TrainState:
    """The state after ``step`` steps of the current epoch: resuming from it takes the
    epoch's remaining minibatches with the same random streams."""
    return replace(
        state,
        model=_snapshot(run.vae),
        optimizer=copy.deepcopy(run.optimizer.state_dict()),
        rng=torch.get_rng_state(),
        batch_rng=run.generator.get_state(),
        step=step,
        epoch_batches=tuple(epoch_batches),
        epoch_total=total,
        epoch_seconds=time.perf_counter() - start,
    )


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
        step=0,
        epoch_batches=(),
        epoch_total=0.0,
        epoch_seconds=0.0,
    )
