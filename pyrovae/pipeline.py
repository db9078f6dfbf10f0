"""The training job: spec -> data -> VAE -> fit -> run directory.

:func:`train_model` is what ``pyrovae train`` calls and what a Python user
calls for the same result. It validates everything it can (device, resume
compatibility, data) before the first step, writes the resolved spec, and
checkpoints after every epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from pyrovae import linear_gaussian
from pyrovae.data import Dataset, binarize, load_data
from pyrovae.errors import UserError
from pyrovae.infer.objectives import estimate_elbo
from pyrovae.infer.svi import FitResult, TrainState, fit, resolve_device
from pyrovae.models.vae import VAE
from pyrovae.runs import (
    CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
    update_metrics,
    write_history,
    write_spec,
)
from pyrovae.spec import Spec, spec_to_dict

__all__ = ["RESUMABLE_FIELDS", "TrainOutcome", "build_vae", "train_model", "training_metrics"]

RESUMABLE_FIELDS = ("train.epochs",)
"""Spec fields that may differ between a run and its resumption."""


class TrainOutcome(NamedTuple):
    """What :func:`train_model` returns."""

    run_dir: Path
    vae: VAE
    data: Dataset
    fit: FitResult
    metrics: dict[str, Any]


def build_vae(spec: Spec, data_dim: int) -> VAE:
    """The VAE a spec declares, initialised from ``spec.train.seed``."""
    torch.manual_seed(spec.train.seed)
    return VAE(spec.model, data_dim)


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            sub = f"{path}.{key}" if path else key
            found = _first_difference(a.get(key), b.get(key), sub)
            if found and found not in RESUMABLE_FIELDS:
                return found
        return None
    return None if a == b else path


def _resume_state(spec: Spec, run_dir: Path, data_dim: int) -> TrainState:
    checkpoint = load_checkpoint(run_dir)
    diff = _first_difference(spec_to_dict(checkpoint.spec), spec_to_dict(spec))
    if diff:
        raise UserError(
            f"--resume: {diff} differs from the run in {run_dir}; only "
            f"{', '.join(RESUMABLE_FIELDS)} may change when resuming"
        )
    if checkpoint.data_dim != data_dim:
        raise UserError(
            f"--resume: the data have {data_dim} values per example, the run was "
            f"trained on {checkpoint.data_dim}"
        )
    return checkpoint.state


def train_model(
    spec: Spec, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainOutcome:
    """Train the VAE a spec declares and write its run directory.

    Parameters
    ----------
    spec : Spec
        The resolved spec.
    run_dir : str or Path
        Where the run goes; created if needed.
    resume : bool
        Continue the run in ``run_dir`` from its checkpoint. Only
        ``train.epochs`` may differ from the run's spec.
    progress : bool
        Show a progress bar.

    Raises
    ------
    UserError
        Bad device, data, or resume request; raised before training starts.
    NonFiniteLossError
        A NaN/inf loss; the checkpoint of the last finished epoch is kept.
    """
    run_dir = Path(run_dir)
    resolve_device(spec.train.device)
    if not resume and (run_dir / CHECKPOINT).exists():
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    data = load_data(spec.data, spec.model.likelihood.name)
    state = _resume_state(spec, run_dir, data.dim) if resume else None
    vae = build_vae(spec, data.dim)
    write_spec(run_dir, spec)

    def on_epoch_end(new_state: TrainState) -> None:
        save_checkpoint(run_dir, spec, data.dim, new_state)
        write_history(run_dir, new_state.history)

    result = fit(vae, data, spec.train, state=state, on_epoch_end=on_epoch_end, progress=progress)
    metrics = update_metrics(run_dir, training_metrics(vae, data, result, spec))
    return TrainOutcome(run_dir, vae, data, result, metrics)


@torch.no_grad()
def training_metrics(vae: VAE, data: Dataset, result: FitResult, spec: Spec) -> dict[str, Any]:
    """ELBOs per split (beta = 1, nats per example) and training facts.

    With dynamic binarization the training split is binarized once, with a
    fixed seed, so that the number is reproducible. When the trained model is
    linear-Gaussian its exact test log p(x) is added
    (``test_exact_log_likelihood_nats``), and for synthetic data the test
    log p(x) under the parameters that generated the data
    (``test_true_log_likelihood_nats``).
    """
    device = next(vae.parameters()).device
    generator = torch.Generator().manual_seed(spec.data.seed + 1)
    splits = {
        "train": binarize(data.train, generator) if data.dynamic_binarization else data.train,
        "validation": data.validation,
        "test": data.test,
    }
    metrics: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.train.seed)
        for name, x in splits.items():
            if x.shape[0]:
                elbo = estimate_elbo(vae.model, vae.guide, x.to(device))
                metrics[f"{name}_elbo_nats"] = elbo.mean().item()
    metrics.update(
        epochs=result.epochs,
        seconds=round(result.seconds, 3),
        stopped_early=result.stopped_early,
        best_epoch=result.state.best_epoch,
    )
    params = vae.linear_gaussian()
    if params is not None:
        exact = linear_gaussian.log_marginal(
            data.test, *(p.cpu() for p in params), prior_scale=spec.model.prior.scale
        )
        metrics["test_exact_log_likelihood_nats"] = exact.mean().item()
    if data.truth is not None:
        t = data.truth
        true = linear_gaussian.log_marginal(data.test, t.weight, t.bias, t.noise)
        metrics["test_true_log_likelihood_nats"] = true.mean().item()
    return metrics
