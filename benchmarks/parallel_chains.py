"""MCMC chains in parallel processes against the same chains in sequence.

Eight schools (non-centered), NUTS with pyrovae's defaults, 4 chains of ``--warmup``
warm-up steps and ``--draws`` draws: :func:`~pyrovae.posterior.inference.mcmc.run_mcmc`
with ``workers=1`` (in sequence, this process) and ``workers=0`` (one spawned process
per core, at most one per chain), side by side, ``--rounds`` times each. The wall
seconds include the processes' start (spawn, imports) and the Laplace warm start; the
draws of the two are compared bit for bit.

Usage (from the project root)::

    python benchmarks/parallel_chains.py [--warmup 1000] [--draws 1000] [--rounds 2]

The last lines printed are ``same_draws=`` and ``chains_speedup=`` (sequential seconds
over parallel seconds, means over the rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pyrovae.posterior.inference.chains import available_cores, resolve_workers
from pyrovae.posterior.inference.mcmc import run_mcmc
from pyrovae.posterior.targets import zoo

CHAINS = 4


def _timed(workers: int, warmup: int, draws: int):
    target = zoo.get_model("eight_schools_noncentered")
    start = time.perf_counter()
    result = run_mcmc(
        target.model,
        target.data,
        num_samples=draws,
        warmup_steps=warmup,
        num_chains=CHAINS,
        seed=0,
        workers=workers,
    )
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from pyrovae.train.threads import busy_cores

    print(
        f"cores: {available_cores()}, busy at start: {busy_cores()}; "
        f"{resolve_workers(0, CHAINS)} worker processes"
    )
    torch.set_num_threads(1)
    sequential, parallel, same = [], [], True
    for _ in range(args.rounds):
        s_seconds, s_result = _timed(1, args.warmup, args.draws)
        p_seconds, p_result = _timed(0, args.warmup, args.draws)
        sequential.append(s_seconds)
        parallel.append(p_seconds)
        same &= all(torch.equal(v, p_result.samples[k]) for k, v in s_result.samples.items())
    for name, runs in (("sequential", sequential), ("parallel", parallel)):
        print(f"  {name:10s} {statistics.mean(runs):7.1f} s ({min(runs):.1f}-{max(runs):.1f})")
    print(f"busy at end: {busy_cores()}")
    print(f"same_draws={same}")
    print(f"chains_speedup={statistics.mean(sequential) / statistics.mean(parallel):.2f}")


if __name__ == "__main__":
    main()
