"""Data-parallel training on this machine: samples per second of 1 and 2 processes.

Trains the default spec (the embedded digits VAE) with ``train.jit = false`` (a process
group runs the objective eagerly, so the baseline does too) for ``--epochs`` epochs:

- one process with one thread (the baseline), and with two threads;
- two processes of one thread each, joined in a gloo group (DDP), each taking half of
  every minibatch.

Each figure is the mean (and the spread, min to max) of ``--rounds`` runs after one
untimed warm-up epoch; the seconds are those of :func:`~pyrovae.train.loop.fit` alone
(process start, imports and the group's rendezvous excluded). It also checks the
gradient agreement: one step's gradient on a minibatch of 64 rows, every latent draw's
noise fixed, in 2 processes (each on its 32 rows) against one process on the 64, as
the largest difference relative to each tensor's largest value.

Usage (from the project root)::

    python benchmarks/ddp_scaling.py [--epochs 10] [--rounds 3] [--set KEY=VALUE ...]

``--set`` overrides the spec as on the command line, e.g. a wider network
(``--set model.encoder.hidden=[1024,1024] --set model.decoder.hidden=[1024,1024]``), for
which the arithmetic of a step weighs more against the processes' communication.

The last lines printed are ``gradient_agreement=`` and ``ddp_speedup=`` (samples per
second of 2 processes over 1 process with 1 thread). How busy the machine was (other
processes' running count when the benchmark started and ended) is printed first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
import torch.distributions.normal as normal_module
import torch.multiprocessing as mp

from pyrovae.data import load_data
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit
from pyrovae.train.distributed import training_processes
from pyrovae.train.objectives import make_objective
from pyrovae.train.process import ProcessGroup, SingleProcess
from pyrovae.train.threads import busy_cores

ROWS = 64


OVERRIDES: list[str] = []
"""``--set`` values, applied in every process."""


def _spec(epochs: int, threads: int = 1):
    base = [f"train.epochs={epochs}", "train.jit=false", f"train.threads={threads}"]
    return load_spec(None, [*base, *OVERRIDES])


def _fit_seconds(epochs: int, process: ProcessGroup, threads: int = 1) -> tuple[float, int]:
    """Seconds of ``fit`` and the samples it took."""
    spec = _spec(epochs, threads)
    data = load_data(spec.data, spec.model.likelihood.name)
    model = build(spec, data.dim)
    start = time.perf_counter()
    fit(model, data, spec.train, progress=False, process=process)
    return time.perf_counter() - start, data.train.shape[0] * epochs


def _gradient(process: ProcessGroup) -> dict[str, torch.Tensor]:
    spec = _spec(1)
    data = load_data(spec.data, spec.model.likelihood.name)
    model = build(spec, data.dim)
    x = (data.train[:ROWS] > 0.5).float()
    rows = torch.arange(ROWS).tensor_split(process.world_size)[process.rank]
    eps = torch.randn(ROWS, spec.model.latent_dim, generator=torch.Generator().manual_seed(0))
    original = normal_module._standard_normal
    normal_module._standard_normal = lambda shape, dtype, device: eps[rows].to(dtype)
    try:
        objective = process.share_gradients(model, make_objective("elbo", 1))
        objective(model.model, model.guide, x[rows], data.train.shape[0], 1.0).backward()
    finally:
        normal_module._standard_normal = original
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, port: int, epochs: int, rounds: int, out: str, sets: list[str]) -> None:
    torch.set_num_threads(1)
    OVERRIDES[:] = sets
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2"
    )
    with training_processes("cpu") as process:
        _fit_seconds(1, process)  # warm-up, not timed
        seconds = [_fit_seconds(epochs, process) for _ in range(rounds)]
        grads = _gradient(process)
    if rank == 0:
        torch.save({"seconds": seconds, "grads": grads}, Path(out) / "ddp.pt")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rate(runs: list[tuple[float, int]]) -> tuple[float, float, float]:
    rates = [samples / seconds for seconds, samples in runs]
    return statistics.mean(rates), min(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    OVERRIDES[:] = args.overrides
    print(f"busy cores at start: {busy_cores()} (other processes running)")
    single = SingleProcess()
    _fit_seconds(1, single)  # warm-up, not timed
    one = [_fit_seconds(args.epochs, single) for _ in range(args.rounds)]
    two_threads = [_fit_seconds(args.epochs, single, threads=2) for _ in range(args.rounds)]
    with TemporaryDirectory() as out:
        mp.start_processes(
            _worker,
            args=(_free_port(), args.epochs, args.rounds, out, args.overrides),
            nprocs=2,
            start_method="spawn",
        )
        found = torch.load(Path(out) / "ddp.pt")
    reference = _gradient(single)
    agreement = max(
        float((found["grads"][n] - g).abs().max() / g.abs().max()) for n, g in reference.items()
    )
    rows = {
        "1 process, 1 thread": _rate(one),
        "1 process, 2 threads": _rate(two_threads),
        "2 processes (DDP, gloo), 1 thread each": _rate(found["seconds"]),
    }
    print(f"spec overrides: {args.overrides or 'none'}")
    print(f"samples per second, {args.epochs} epochs, mean (min-max) of {args.rounds} runs:")
    for name, (mean, low, high) in rows.items():
        print(f"  {name:42s} {mean:9.0f} ({low:.0f}-{high:.0f})")
    print(f"busy cores at end: {busy_cores()}")
    base = rows["1 process, 1 thread"][0]
    print(f"threads_speedup={rows['1 process, 2 threads'][0] / base:.2f}")
    print(f"gradient_agreement={agreement:.2e}")
    print(f"ddp_speedup={rows['2 processes (DDP, gloo), 1 thread each'][0] / base:.2f}")


if __name__ == "__main__":
    main()
