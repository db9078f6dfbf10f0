"""One model trained by several processes: torch.distributed and DistributedDataParallel
behind the training loop's seams.

``torchrun --nproc-per-node N -m pyrovae train SPEC --out DIR`` starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment;
:func:`training_processes` joins them into a process group (gloo on the CPU, NCCL when
``train.device`` is a GPU, each process on GPU ``LOCAL_RANK``) and yields a
:class:`DistributedProcess`, the :class:`~pyrovae.train.process.ProcessGroup` of the
loop; without such an environment it yields
:class:`~pyrovae.train.process.SingleProcess`.

What each piece does:

- :meth:`DistributedProcess.shard`: each process takes its contiguous piece of every
  minibatch (:class:`~pyrovae.train.ranks.ShardedBatches`); the plate still scales by
  the whole training set.
- :meth:`DistributedProcess.share_gradients`: the objective runs in the ``forward`` of a
  module that owns the model, wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the gradients
  during the backward pass (Pyro's ``ELBOModule`` cannot be wrapped: its bound methods
  own no parameters). ``find_unused_parameters`` lets a step leave a parameter without
  a gradient (a VampPrior's pseudo-inputs at KL weight 0). Each process's loss is
  weighted by its share of the minibatch, so that the average is the loss of the whole
  minibatch even when the pieces differ in size; one all-reduce per step sums the
  pieces' sizes and whether any loss was NaN or infinite, in which case every process
  gets a NaN loss and stops at the same step.
- :meth:`DistributedProcess.mean`, :meth:`DistributedProcess.any`,
  :meth:`DistributedProcess.gather`: all-reduce and all-gather, so every figure, stop
  decision and checkpoint is agreed.

A process that dies makes the next collective of the others fail: gloo notices the
closed connection at once, and any collective waits at most
``PYROVAE_DIST_TIMEOUT`` seconds (default :data:`DEFAULT_TIMEOUT`) before it raises.
Under a process group the objective always runs eagerly: ``train.jit``'s traced
objective checks itself against the eager step on a copy of the random state, a
decision each process would take alone, so it is not used (and not tested) with DDP.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pyrovae.errors import PyrovaeError, UserError
from pyrovae.train.batches import Batches
from pyrovae.train.objectives import Objective
from pyrovae.train.placement import LocalPlacement, resolve_device
from pyrovae.train.process import ProcessGroup, SingleProcess
from pyrovae.train.ranks import ShardedBatches

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "DataParallelObjective",
    "DistributedPlacement",
    "DistributedProcess",
    "ProcessGroupError",
    "agreed",
    "launch",
    "launched",
    "placement_for",
    "reported_failures",
    "timeout_seconds",
    "training_processes",
]

TIMEOUT_ENV = "PYROVAE_DIST_TIMEOUT"
"""Environment variable: seconds a collective waits for the other processes."""

DEFAULT_TIMEOUT = 300.0
"""Seconds a collective waits by default (the writing process may spend a while on a
checkpoint while the others wait for the next step)."""


def launched() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` > 1, as
    torchrun sets it)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def timeout_seconds() -> float:
    """``PYROVAE_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`.

    Raises
    ------
    UserError
        The variable is set but not a positive number.
    """
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"{TIMEOUT_ENV}: expected a positive number of seconds, got {text!r}")
    return value


class DistributedProcess:
    """This process in an initialised torch.distributed group.

    Parameters
    ----------
    device : torch.device
        Where collectives put their tensors: the CPU for gloo, this process's GPU for
        NCCL.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_writer = self.rank == 0

    def _sum(self, values: list[float]) -> torch.Tensor:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.cpu()

    def mean(self, value: float) -> float:
        return float(self._sum([value])[0]) / self.world_size

    def any(self, flag: bool) -> bool:
        return bool(self._sum([1.0 if flag else 0.0])[0] > 0)

    def gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def shard(self, batches: Batches) -> Batches:
        return ShardedBatches(batches, self.rank, self.world_size)

    def share_gradients(self, model: nn.Module, objective: Objective) -> Objective:
        return DataParallelObjective(model, objective, self)


class _ObjectiveModule(nn.Module):
    """The module DDP wraps: it owns the model and computes the objective in ``forward``."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: torch.Tensor, n_total: int, beta: float) -> torch.Tensor:
        if not x.shape[0]:  # an empty share: no loss, zero gradients (and DDP's reduction)
            return sum((p.sum() * 0.0 for p in self.parameters()), x.new_zeros(()))
        pair: Any = self.model
        return self.objective(pair.model, pair.guide, x, n_total, beta)


class DataParallelObjective:
    """An objective whose backward pass averages the gradients of every process.

    Called as ``loss(model, guide, x, n_total, beta)`` like any objective (``model`` and
    ``guide`` are the wrapped model's own and are not read again). Returns this process's
    loss weighted by ``world_size * B_rank / B``, whose mean over the processes is the
    loss of the whole minibatch, or NaN in every process when any process's loss is not
    finite.
    """

    def __init__(self, model: nn.Module, objective: Objective, process: DistributedProcess):
        self.process = process
        ids = [process.device.index] if process.device.type == "cuda" else None
        self.module = DistributedDataParallel(
            _ObjectiveModule(model, objective),
            device_ids=ids,
            find_unused_parameters=True,
        )

    def __call__(self, model: Any, guide: Any, x: torch.Tensor, n_total: int, beta: float):
        loss = self.module(x, n_total, beta)
        finite = bool(torch.isfinite(loss.detach()))
        rows, bad = self.process._sum([float(x.shape[0]), 0.0 if finite else 1.0]).tolist()
        if bad:
            return torch.full_like(loss.detach(), math.nan)
        return loss * (self.process.world_size * x.shape[0] / rows)


class DistributedPlacement(LocalPlacement):
    """Model and data on this process's device: its GPU ``LOCAL_RANK`` when
    ``train.device`` is ``"cuda"`` (or ``"auto"`` with GPUs), else the CPU."""

    def __init__(self, device: str = "cpu") -> None:
        self._device = _rank_device(device)


def placement_for(process: ProcessGroup, device: str = "cpu") -> LocalPlacement:
    """Where ``process`` trains and evaluates: its own GPU (``LOCAL_RANK``) in a group of
    several processes (:class:`DistributedPlacement`), else ``train.device`` as it is."""
    if process.world_size > 1:
        return DistributedPlacement(device)
    return LocalPlacement(device)


def _rank_device(name: str) -> torch.device:
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise UserError(
            f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPUs; "
            "start at most one process per GPU (torchrun --nproc-per-node)"
        )
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


@contextmanager
def training_processes(device: str = "cpu") -> Iterator[ProcessGroup]:
    """The processes this one trains with, for the block.

    Without a torchrun environment (``WORLD_SIZE`` unset or 1): this process alone. With
    one: the process group, joined here (gloo for ``train.device = "cpu"``, NCCL for a
    GPU, a timeout of :func:`timeout_seconds`) and left at the end of the block, or the
    group already joined by an enclosing block (``pyrovae run`` trains and evaluates in
    one group).
    """
    if not launched():
        yield SingleProcess()
        return
    rank_device = _rank_device(device)
    if dist.is_initialized():
        yield DistributedProcess(rank_device)
        return
    backend = "nccl" if rank_device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_seconds())
    dist.init_process_group(backend, timeout=timeout)
    try:
        yield DistributedProcess(rank_device)
    finally:
        dist.destroy_process_group()


T = TypeVar("T")


class ProcessGroupError(PyrovaeError):
    """The process group failed: another process stopped, or could not be reached within
    the timeout."""


def agreed(process: ProcessGroup, prepare: Callable[[], T]) -> T:
    """``prepare()`` in every process, raising in every process when it raised a
    :class:`~pyrovae.errors.UserError` in any (so that none waits for the others at its
    first collective): the process's own error, or one naming the process that failed."""
    try:
        result, error = prepare(), None
    except UserError as err:
        result, error = None, err
    messages = process.gather(None if error is None else str(error))
    if error is not None:
        raise error
    for rank, message in enumerate(messages):
        if message is not None:
            raise UserError(f"process {rank} of {process.world_size} stopped: {message}")
    return cast(T, result)


_COLLECTIVE_FAILURE = ("gloo", "nccl", "c10d", "connection", "timed out", "timeout")
"""Words of the messages torch raises (as ``RuntimeError`` from DDP's backward pass, as
``DistError`` from a collective) when a peer is gone or late."""


def _collective_failure(err: RuntimeError) -> bool:
    text = str(err).lower()
    return isinstance(err, dist.DistError) or any(w in text for w in _COLLECTIVE_FAILURE)


@contextmanager
def reported_failures(process: ProcessGroup) -> Iterator[None]:
    """Turn torch.distributed's errors in the block (a peer that died or timed out) into
    a one-line :class:`ProcessGroupError` naming this process; nothing for one process."""
    try:
        yield
    except RuntimeError as err:
        if process.world_size == 1 or not _collective_failure(err):
            raise
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise ProcessGroupError(
            f"process {process.rank} of {process.world_size}: the process group failed "
            f"(another process stopped, or did not answer within {timeout_seconds():g} s; "
            f"{TIMEOUT_ENV} sets the limit): {first}"
        ) from err


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m pyrovae ARGV`` in ``nproc`` processes on this machine with torchrun's
    own launcher (``torchrun --standalone --nproc-per-node NPROC -m pyrovae ARGV``) and
    return its exit status: 0, or the status of the first process that failed (which
    printed its own error)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "pyrovae", *argv]
    )
    try:
        run(args)
    except ChildFailedError as err:
        _, failure = err.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0
