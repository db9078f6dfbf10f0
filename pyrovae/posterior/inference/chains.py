"""MCMC chains in parallel processes, with the draws of the chains run one after the other.

:func:`~pyrovae.posterior.inference.mcmc.run_mcmc` runs chain ``c`` as one call of
:func:`~pyrovae.posterior.inference.mcmc.run_chain` seeded with ``seed + c`` on a fresh
kernel. With ``workers`` > 1 it hands those calls to :func:`run_in_processes`: each
chain is the same call in a spawned process (one torch thread each), so a chain's draws
are those it would have drawn in sequence (tested bit for bit), and the results come
back in chain order. A time limit in force (:mod:`~pyrovae.posterior.inference.deadline`)
is passed on as the time left.

Pyro's own multi-chain mode (``MCMC(num_chains=...)`` with processes) is not used: its
``hook_fn`` runs in the workers, so pyrovae's per-chain diagnostics would stay there,
and it seeds its workers its own way, so its draws are not the sequential chains'.
The model, its keyword arguments and the initialisation strategy must pickle (a
model defined at the top level of a module does; a closure does not, and then the
chains run in sequence, see :func:`picklable`).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, NamedTuple

import torch

from pyrovae._cores import available_cores
from pyrovae.posterior.inference import deadline

__all__ = ["ChainJob", "available_cores", "picklable", "resolve_workers", "run_in_processes"]


class ChainJob(NamedTuple):
    """One chain's call: ``run(*args, **kwargs)``, every part picklable."""

    run: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def resolve_workers(requested: int, num_chains: int) -> int:
    """Processes to run ``num_chains`` chains in: ``requested`` (0: the cores this process
    may use), at most one per chain; 1 means in sequence, in this process."""
    wanted = requested if requested > 0 else available_cores()
    return max(1, min(wanted, num_chains))


def picklable(*values: Any) -> bool:
    """Whether every value pickles (so it can be sent to a spawned process)."""
    try:
        pickle.dumps(values)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _run_one(job: ChainJob, seconds_left: float, dtype: torch.dtype) -> Any:
    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    limit = None if math.isinf(seconds_left) else max(seconds_left, 0.0)
    with deadline.time_limit(limit, "the time limit passed on to a chain's process"):
        return job.run(*job.args, **job.kwargs)


def run_in_processes(jobs: Sequence[ChainJob], workers: int) -> list[Any]:
    """``job.run(*job.args, **job.kwargs)`` of every job, ``workers`` at a time in spawned
    processes (with this process's default dtype); the results in the jobs' order. An
    exception in a job is raised here."""
    left, dtype = deadline.remaining(), torch.get_default_dtype()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, job, left, dtype) for job in jobs]
        return [f.result() for f in futures]
