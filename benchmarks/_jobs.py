"""What the budget benchmarks share: jobs run two at a time in spawned processes, so
that the two sides of a comparison train at the same moment on the same machine, and
figures summarised over seeds as mean ± sd."""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def require_mnist(folder: str, hint: str = "") -> None:
    """Exit with a one-line message unless ``folder`` holds the MNIST test images."""
    if not (Path(folder) / "t10k-images-idx3-ubyte.gz").exists():
        sys.exit(f"no MNIST test images in {folder}; pass --mnist DIR{hint}")


def pair_pool() -> ProcessPoolExecutor:
    """Two worker processes, spawned (each job sets its own torch threads)."""
    return ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"))


def run_pairs(
    pool: ProcessPoolExecutor,
    job: Callable[[dict], dict],
    tasks: list[dict],
    describe: Callable[[dict], str],
) -> list[dict]:
    """``job(task)`` for every task, two at a time (each pair starts together), printing
    ``describe(result)`` as each pair ends; the results in the tasks' order."""
    results: list[dict] = []
    for i in range(0, len(tasks), 2):
        futures = [pool.submit(job, t) for t in tasks[i : i + 2]]
        results += [f.result() for f in futures]
        for r in results[-len(futures) :]:
            print(f"  {describe(r)}", flush=True)
    return results


def mean_sd(values: list[float], digits: int) -> str:
    """``mean ± sd`` over seeds, with ``digits`` decimals (sd nan for one value)."""
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def paired_difference(ours: list[dict], theirs: list[dict]) -> tuple[float, float]:
    """Mean and sd over seeds of ``ours[i]["log_px"] - theirs[i]["log_px"]`` (sd nan for
    one seed)."""
    diffs = [a["log_px"] - b["log_px"] for a, b in zip(ours, theirs, strict=True)]
    sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
    return statistics.mean(diffs), sd


def print_budget_tables(selection: list[dict], sides: list[tuple[str, list[dict]]]) -> None:
    """The selection's validation scores, then each side's epochs and test log p(x) over
    seeds, as Markdown tables."""
    print("| candidate | epochs | validation log p(x) |")
    print("| --- | --- | --- |")
    for r in selection:
        print(f"| {r['name']} | {r['epochs']} | {r['log_px']:.2f} |")
    print("| side | epochs (mean over seeds) | test log p(x), mean ± sd over seeds |")
    print("| --- | --- | --- |")
    for name, rows in sides:
        epochs = statistics.mean(r["epochs"] for r in rows)
        print(f"| {name} | {epochs:.0f} | {mean_sd([r['log_px'] for r in rows], 2)} |")
