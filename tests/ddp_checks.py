"""What the two spawned processes of tests/test_distributed.py run (gloo, one thread each).

:func:`spawn` starts ``world_size`` processes that join one torch.distributed group and
run every check of :data:`CHECKS` in turn, each saving what it found under ``out`` as
``<check>-rank<r>.pt``; the tests compare those files with one process's results.
One group serves all checks, so the processes start (torch and Pyro imported) once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributions.normal as normal_module
import torch.multiprocessing as mp
from helpers import tiny_spec

from pyrovae.data import load_data
from pyrovae.errors import NonFiniteLossError, UserError
from pyrovae.evaluate.likelihood import evaluate
from pyrovae.pipeline import build, load_spec_data, train_model
from pyrovae.spec import Spec
from pyrovae.train import fit
from pyrovae.train.distributed import agreed, training_processes
from pyrovae.train.objectives import make_objective
from pyrovae.train.process import ProcessGroup, SingleProcess

GRADIENT_CASES: dict[str, tuple[str, ...]] = {
    "elbo": ("train.objective=elbo",),
    "elbo_3_particles": ("train.objective=elbo", "train.particles=3"),
    "analytic_kl": ("train.objective=analytic_kl",),
    "iwae": ("train.objective=iwae", "train.particles=3"),
    "iwae_dreg": ("train.objective=iwae_dreg", "train.particles=3"),
    "vamp_beta0": ("model.prior.name=vamp", "model.prior.components=3", "train.beta=0.0"),
    "ae": ("model.kind=ae",),
    "tied_ae": ("model.kind=tied_ae",),
    "cvae": ("model.kind=cvae",),
    "conv": (
        "model.encoder.kind=conv",
        "model.decoder.kind=conv",
        "model.encoder.channels=[4, 8]",
        "model.decoder.channels=[8, 4]",
    ),  # no group norm here: it zeroes the exact gradient of the bias before it, which
    # leaves only rounding noise for a relative comparison
    "tied_conv_ae": (
        "model.kind=tied_ae",
        "model.encoder.kind=conv",
        "model.decoder.kind=conv",
        "model.encoder.channels=[4, 8]",
        "model.decoder.channels=[8, 4]",
    ),
}
"""Spec overrides per gradient check: every objective, and the cases where a parameter
gets no gradient (a VampPrior's pseudo-inputs at KL weight 0)."""

GRADIENT_ROWS = 9
"""Rows of the gradient checks' minibatch: the two shares are 5 and 4 rows, so the
weighting of unequal shares is checked too."""

MAX_PARTICLES = 3


def spec_for(*overrides: str) -> Spec:
    return tiny_spec("train.threads=1", "train.jit=false", *overrides)


@contextlib.contextmanager
def fixed_eps(table: torch.Tensor, rows: slice) -> Iterator[None]:
    """Every reparameterised Normal draw takes its eps from ``table`` ``(K, N, L)``: the
    rows ``rows`` of it (and the first particles), whatever process draws them."""
    original = normal_module._standard_normal

    def standard_normal(shape, dtype, device):
        picked = table[:, rows] if len(shape) == 3 else table[0, rows]
        if len(shape) == 3:
            picked = picked[: shape[0]]
        assert tuple(picked.shape) == tuple(shape), (picked.shape, shape)
        return picked.to(dtype=dtype, device=device)

    normal_module._standard_normal = standard_normal
    try:
        yield
    finally:
        normal_module._standard_normal = original


def case_gradients(case: str, process: ProcessGroup) -> dict[str, torch.Tensor | None]:
    """Gradients after one backward pass of ``case``'s objective on the first
    :data:`GRADIENT_ROWS` training rows, this process taking its share of them."""
    spec = spec_for(*GRADIENT_CASES[case])
    data = load_spec_data(spec)
    model = build(spec, data.dim, data.classes, data.image_shape)
    model.init_from_data(data.train, torch.Generator().manual_seed(0))
    x = data.train[:GRADIENT_ROWS].clone()
    x[:, : data.dim] = (x[:, : data.dim] > 0.5).float()  # binary, as Bernoulli wants
    rows = slice(None)
    if process.world_size > 1:
        pieces = torch.arange(GRADIENT_ROWS).tensor_split(process.world_size)[process.rank]
        rows = slice(int(pieces[0]), int(pieces[-1]) + 1)
    table = torch.randn(
        MAX_PARTICLES,
        GRADIENT_ROWS,
        spec.model.latent_dim,
        generator=torch.Generator().manual_seed(1),
    )
    t = spec.train
    objective = process.share_gradients(model, make_objective(t.objective, t.particles))
    n_total = data.train.shape[0]
    with fixed_eps(table, rows):
        loss = objective(model.model, model.guide, x[rows], n_total, t.beta)
    loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def fit_result(spec: Spec, process: ProcessGroup, **kwargs: Any):
    data = load_spec_data(spec)
    model = build(spec, data.dim, data.classes, data.image_shape)
    result = fit(model, data, spec.train, progress=False, process=process, **kwargs)
    return model, result


AE_SPEC = ("model.kind=ae", "data.binarize=static", "train.batch_size=64", "train.epochs=2")
"""The plain autoencoder samples nothing: two processes on half batches must follow one
process on the full ones."""


def _stop_outcome(spec: Spec, process: ProcessGroup, poison: bool = False, **kwargs: Any):
    data = load_data(spec.data, spec.model.likelihood.name)
    if poison:
        data = dataclasses.replace(data, train=data.train.clone().fill_(float("nan")))
    model = build(spec, data.dim)
    try:
        result = fit(model, data, spec.train, progress=False, process=process, **kwargs)
    except NonFiniteLossError as err:
        return {"error": "NonFiniteLossError", "epoch": err.epoch, "step": err.step}
    return {
        "epochs": result.epochs,
        "reason": result.stop_reason,
        "step": result.state.step,
        "history": [tuple(r)[:5] for r in result.history],
    }


def stops(process: ProcessGroup, out: Path) -> dict[str, Any]:
    base = ("train.batch_size=32", "train.epochs=6", "data.binarize=static")
    calls = {"n": 0}

    def rank1_stops() -> bool:
        calls["n"] += 1
        return process.rank == 1 and calls["n"] == 3

    return {
        "nan": _stop_outcome(spec_for(*base), process, poison=process.rank == 1),
        "time_limit": _stop_outcome(spec_for(*base, "train.max_seconds=1e-9"), process),
        "early_stopping": _stop_outcome(
            spec_for(*base, "train.early_stopping_patience=1", "train.lr=1e-7"), process
        ),
        "signal": _stop_outcome(spec_for(*base), process, should_stop=rank1_stops),
    }


RESUME_SPEC = ("train.batch_size=64", "train.epochs=3")


def resume(process: ProcessGroup, out: Path) -> dict[str, Any]:
    """Uninterrupted 2-process runs against interrupted and resumed ones: mid-epoch
    through ``fit`` (rank 1 asks to stop), and at an epoch's end through the run
    directory (``train_model`` then ``resume=True`` with more epochs)."""
    spec = spec_for(*RESUME_SPEC)
    whole, _ = fit_result(spec, process)
    saved: list[Any] = []
    calls = {"n": 0}

    def rank1_stops() -> bool:
        calls["n"] += 1
        return process.rank == 1 and calls["n"] == 6  # inside epoch 2

    _, first = fit_result(spec, process, on_epoch_end=saved.append, should_stop=rank1_stops)
    state = process.gather(saved[-1] if saved else None)[0]
    resumed, second = fit_result(spec, process, state=state)
    run = spec_for(*RESUME_SPEC)
    short = spec_for(*RESUME_SPEC[:-1], "train.epochs=1")
    full = train_model(run, out / "full", progress=False)
    train_model(short, out / "resumed", progress=False)
    continued = train_model(run, out / "resumed", resume=True, progress=False)
    return {
        "stopped_at": (first.stop_reason, state.epoch, state.step, len(state.ranks)),
        "whole": whole.state_dict(),
        "resumed": resumed.state_dict(),
        "histories": ([tuple(r)[:5] for r in second.history],),
        "run_full": full.model.state_dict(),
        "run_resumed": continued.model.state_dict(),
        "written": sorted(p.name for p in (out / "full").iterdir()),
        "metrics": continued.metrics,
    }


def evaluation(process: ProcessGroup, out: Path) -> dict[str, Any]:
    spec = spec_for()
    data = load_data(spec.data, spec.model.likelihood.name)
    model = build(spec, data.dim).eval()
    result = evaluate(model, data.test[:70], particles=400, seed=3, process=process)
    return {
        "log_likelihood": result.log_likelihood,
        "se": result.log_likelihood_se,
        "elbo": result.elbo,
    }


def gradients(process: ProcessGroup, out: Path) -> dict[str, Any]:
    return {case: case_gradients(case, process) for case in GRADIENT_CASES}


OTHER_KINDS: dict[str, tuple[str, ...]] = {
    "denoising_ae": ("model.kind=denoising_ae",),
    "sparse_ae": ("model.kind=sparse_ae",),
    "vamp_iwae_dreg": (
        "model.prior.name=vamp",
        "train.objective=iwae_dreg",
        "train.particles=2",
    ),
    "cvae": ("model.kind=cvae",),
    # M2: labelled and unlabelled rows in one batch, the class enumerated
    "m2": ("model.kind=m2", "data.labelled=5", "train.labelled_per_batch=8"),
    # the time budget, not the steps, sets the rate (and stops the run after ~0.5 s)
    "cosine_in_time": ("train.lr_schedule=cosine", "train.max_seconds=0.5", "train.epochs=1000"),
}
"""Runs of one epoch under the group: each process's weights must stay equal (the
learning rate of a cosine schedule over the time budget included)."""


def autoencoder(process: ProcessGroup, out: Path) -> dict[str, Any]:
    model, result = fit_result(spec_for(*AE_SPEC), process)
    others = {}
    for name, overrides in OTHER_KINDS.items():
        kind_spec = spec_for("train.epochs=1", "train.batch_size=64", *overrides)
        trained, run = fit_result(kind_spec, process)
        others[name] = (trained.state_dict(), run.history[-1].train_objective_nats)
    return {
        "model": model.state_dict(),
        "history": [tuple(r)[:3] for r in result.history],
        "others": others,
    }


def memory_map(process: ProcessGroup, out: Path) -> dict[str, Any]:
    """One epoch on a uint8 .npy file memory-mapped and loaded into memory (each process
    writes its own copy): the ranks' shares of a row store's minibatches."""
    path = out / f"x-rank{process.rank}.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, size=(300, 1, 5, 10), dtype=np.uint8))  # grey
    found = {}
    for mapped in (False, True):
        overrides = ("data.name=arrays", f"data.path={str(path)!r}", "train.batch_size=64")
        spec = spec_for("train.epochs=2", *overrides, f"data.memory_map={str(mapped).lower()}")
        model, result = fit_result(spec, process)
        found[mapped] = (model.state_dict(), [tuple(r)[:5] for r in result.history])
    return {"in_memory": found[False], "memory_mapped": found[True]}


def refusal(process: ProcessGroup, out: Path) -> dict[str, Any]:
    """A user error in process 1 only, before training: every process raises it."""

    def prepare() -> int:
        if process.rank == 1:
            raise UserError("no data here")
        return 7

    try:
        agreed(process, prepare)
    except UserError as err:
        return {"error": str(err)}
    return {"error": None}


CHECKS: dict[str, Callable[[ProcessGroup, Path], dict[str, Any]]] = {
    "refusal": refusal,
    "gradients": gradients,
    "autoencoder": autoencoder,
    "stops": stops,
    "resume": resume,
    "evaluation": evaluation,
    "memory_map": memory_map,
}


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        PYROVAE_DIST_TIMEOUT="60",
    )
    folder = Path(out)
    with training_processes("cpu") as process:
        for name, check in CHECKS.items():
            (folder / name).mkdir(exist_ok=True)
            found = check(process, folder / name)
            torch.save(found, folder / f"{name}-rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(out: Path, world_size: int = 2) -> None:
    """Run every check in ``world_size`` spawned processes; raises if one fails."""
    mp.start_processes(
        _worker,
        args=(world_size, free_port(), str(out)),
        nprocs=world_size,
        start_method="spawn",
        join=True,
    )


def single() -> SingleProcess:
    return SingleProcess()
