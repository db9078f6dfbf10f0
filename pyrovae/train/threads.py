"""How many CPU threads torch uses: chosen deliberately, not left to torch's default.

Torch starts one intra-op thread per core of the machine. Those threads wait for work
by spinning, so when another process keeps a core busy they fight it: on a 2-core
machine next to one busy process, 2 threads fit the digits model 3.5x slower than on
the idle machine (``benchmarks/threads.py``, single runs). pyrovae asks for
``train.threads`` threads, and by default (0, "auto") for the cores this process may
use (``os.sched_getaffinity``) less those other processes keep busy when training
starts (:func:`busy_cores`), at most ``PYROVAE_MAX_THREADS`` when that is set. Next to
one busy process that is 1 thread (0.8x the idle time in that measurement); on an idle
2-core machine it is 2, which for a model as small as digits is no faster than 1.
Processes that torchrun starts together on one machine (``LOCAL_WORLD_SIZE``) share its
cores: each counts its share of them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from pyrovae._cores import available_cores
from pyrovae.errors import UserError

__all__ = [
    "MAX_THREADS_ENV",
    "available_cores",
    "busy_cores",
    "resolve_threads",
    "torch_threads",
]

MAX_THREADS_ENV = "PYROVAE_MAX_THREADS"
"""Environment variable that caps the automatic thread count (e.g. on a shared machine)."""


def busy_cores(samples: int = 5, interval: float = 0.01) -> int:
    """Cores other processes keep busy now: the median over ``samples`` looks of the
    running count in ``/proc/loadavg``, less this process; 0 where the system does not
    say. (Not the load average: it lags a minute and counts this process's own past.)"""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as loadavg:
                counts.append(int(loadavg.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median(counts)))


def resolve_threads(requested: int) -> int:
    """``requested`` threads, or for 0 the available cores (this process's share of them
    under torchrun) less the busy ones (at least 1), capped by ``PYROVAE_MAX_THREADS``.

    Raises
    ------
    UserError
        ``PYROVAE_MAX_THREADS`` is set but not a positive integer.
    """
    if requested > 0:
        return requested
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    cores = max(1, available_cores() // max(1, local) - busy_cores())
    cap = os.environ.get(MAX_THREADS_ENV, "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise UserError(f"{MAX_THREADS_ENV}: expected a positive integer, got {cap!r}")
        cores = min(cores, int(cap))
    return cores


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Run the block with ``count`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
