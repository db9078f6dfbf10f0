"""Which process writes and how processes agree: the process seam of the loop.

:func:`~pyrovae.train.loop.fit` reports its epoch figures through
:meth:`ProcessGroup.mean`, takes every stop decision through
:meth:`ProcessGroup.any` (so all processes stop at the same step), and calls
``on_epoch_end`` (which writes the run directory) only where
:attr:`ProcessGroup.is_writer`. :class:`SingleProcess` is the one-process case, where
each of these is the identity; a torch.distributed group implements the same three.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProcessGroup", "SingleProcess"]


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


class SingleProcess:
    """Training in this process alone."""

    rank = 0
    world_size = 1
    is_writer = True

    def mean(self, value: float) -> float:
        return value

    def any(self, flag: bool) -> bool:
        return flag
