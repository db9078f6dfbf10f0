"""Torch's CPU threads on an idle and on a loaded machine: why pyrovae sets them.

Trains the default spec (the embedded digits VAE, its default epochs) and, with
``--mnist``, one epoch of the 784-400-50 MNIST VAE, each in a fresh process, with
1 thread and with one thread per available core, with OpenMP's default (spinning)
and passive wait policy, on an idle machine and next to one process that keeps a
core busy (``while True: pass``). Each figure is the median of ``--rounds`` runs.
With ``--run`` it also times the whole default job, ``pyrovae run`` (train, evaluate,
compare, report), once idle and once next to the busy process, with the default threads.

Usage (from the project root, on an otherwise quiet machine)::

    python benchmarks/threads.py [--rounds 3] [--mnist ../shared/data/mnist] [--run]

The last lines printed are ``loaded_slowdown_all_cores=`` (seconds with one thread
per core next to a busy process, over the same idle) and ``loaded_slowdown_auto=``
(the same for pyrovae's default, ``train.threads = 0``); with ``--run``, also
``run_idle_seconds=`` and ``run_loaded_seconds=``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pyrovae.train.threads import available_cores

TRAIN = """
import sys, time
from pyrovae.data import load_data
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit
spec = load_spec({spec!r}, {overrides!r})
data = load_data(spec.data, spec.model.likelihood.name)
model = build(spec, data.dim)
start = time.perf_counter()
fit(model, data, spec.train, progress=False)
print(time.perf_counter() - start)
"""


def _seconds(spec: str | None, overrides: list[str], env: dict[str, str]) -> float:
    code = textwrap.dedent(TRAIN.format(spec=spec, overrides=overrides))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def _run_seconds(loaded: bool) -> float:
    """Wall seconds of ``pyrovae run --quiet`` in a fresh process (``loaded``: next to a
    busy process)."""
    busy = _busy() if loaded else None
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pyrovae.cli", "run", "--quiet", "--out", f"{out}/run"],
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - start
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mnist", type=Path, help="folder of the MNIST IDX files")
    parser.add_argument("--run", action="store_true", help="also time `pyrovae run`")
    args = parser.parse_args()
    cores = available_cores()
    cases = {"digits": (None, [])}
    if args.mnist:
        mnist = [
            f"data.path={args.mnist}",
            "train.epochs=1",
            "model.prior.name=normal",
            "train.objective=elbo",
            "train.particles=1",
        ]
        cases["mnist 1 epoch"] = ("examples/specs/mnist.toml", mnist)
    print(f"{cores} cores available; median of {args.rounds} runs, seconds of fit()")
    print("| model | threads | wait policy | idle | next to a busy process | slowdown |")
    print("| --- | --- | --- | --- | --- | --- |")
    slowdown = {}
    for name, (spec, overrides) in cases.items():
        for threads in ("1", str(cores), "auto"):
            for policy in ("default", "PASSIVE"):
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if policy == "PASSIVE":
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                wanted = [*overrides, f"train.threads={0 if threads == 'auto' else threads}"]
                times = {}
                for load in ("idle", "loaded"):
                    busy = _busy() if load == "loaded" else None
                    try:
                        runs = [_seconds(spec, wanted, env) for _ in range(args.rounds)]
                    finally:
                        if busy is not None:
                            busy.kill()
                            busy.wait()
                    times[load] = statistics.median(runs)
                ratio = times["loaded"] / times["idle"]
                slowdown[(name, threads, policy)] = ratio
                print(
                    f"| {name} | {threads} | {policy} | {times['idle']:.2f} | "
                    f"{times['loaded']:.2f} | {ratio:.1f}x |"
                )
    print(f"loaded_slowdown_all_cores={slowdown[('digits', str(cores), 'default')]:.1f}")
    print(f"loaded_slowdown_auto={slowdown[('digits', 'auto', 'default')]:.1f}")
    if args.run:
        print(f"run_idle_seconds={_run_seconds(loaded=False):.0f}")
        print(f"run_loaded_seconds={_run_seconds(loaded=True):.0f}")


if __name__ == "__main__":
    main()
