"""Which process writes and how processes agree: the process seam of the loop.

:func:`~pyrovae.train.loop.fit` reports its epoch figures through
:meth:`ProcessGroup.mean`, takes every stop decision through
:meth:`ProcessGroup.any` (so all processes stop at the same step), and calls
``on_epoch_end`` (which writes the run directory) only where
:attr:`ProcessGroup.is_writer`. It takes this process's share of every minibatch
through :meth:`ProcessGroup.shard`, runs the objective through
:meth:`ProcessGroup.share_gradients` (where the processes average their gradients)
and collects every process's random state for a checkpoint with
:meth:`ProcessGroup.gather`. :class:`SingleProcess` is the one-process case, where
each of these is the identity; :class:`~pyrovae.train.distributed.DistributedProcess`
is a torch.distributed group.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from torch import nn

from pyrovae.train.batches import Batches
from pyrovae.train.objectives import Objective

__all__ = ["ProcessGroup", "SingleProcess"]

T = TypeVar("T")


class ProcessGroup(Protocol):
    """The processes that train one model together."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files and shows progress (one process does)."""

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes."""

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true in any process."""

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, in rank order (picklable values)."""

    def shard(self, batches: Batches) -> Batches:
        """This process's share of every minibatch ``batches`` draws."""

    def share_gradients(self, model: nn.Module, objective: Objective) -> Objective:
        """The objective through which ``model``'s gradients are combined across processes
        (called with the same arguments as ``objective``; its backward pass leaves the
        gradient of the whole minibatch in every process)."""


class SingleProcess:
    """Training in this process alone."""

    rank = 0
    world_size = 1
    is_writer = True

    def mean(self, value: float) -> float:
        return value

    def any(self, flag: bool) -> bool:
        return flag

    def gather(self, value: T) -> list[T]:
        return [value]

    def shard(self, batches: Batches) -> Batches:
        return batches

    def share_gradients(self, model: nn.Module, objective: Objective) -> Objective:
        return objective
