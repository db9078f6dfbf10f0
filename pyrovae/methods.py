"""Run every inference method on one small posterior and compare with a reference.

The posterior is a :class:`~pyrovae.models.zoo.ZooModel`: a built-in model by
name, or a user's own Pyro model loaded with :func:`load_user_model`. Methods:

- MCMC: ``nuts``, ``hmc``, ``metropolis`` (:func:`~pyrovae.infer.mcmc.run_mcmc`);
- variational: ``auto_normal``, ``auto_mvn``, ``auto_lowrank_mvn``, ``auto_iaf``
  (:func:`~pyrovae.infer.variational.fit_guide`), each fitted with several
  seeds for PSIS k-hat; the first seed's draws are compared.

The reference is, in order of preference: a file of posteriordb reference
draws given by the user, the exact (Gaussian) posterior, the posteriordb
reference draws of the model, or a long NUTS run.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyrovae.compare import Comparison, MethodResult, compare, psis_khat
from pyrovae.errors import UserError
from pyrovae.infer.local import METROPOLIS_EXTRA
from pyrovae.infer.mcmc import KERNELS, run_mcmc
from pyrovae.infer.variational import GUIDES, fit_guide, guide_samples, importance_log_ratios
from pyrovae.models.zoo import ZooModel, flatten, parameter_names
from pyrovae.posteriordb import load_reference_draws

__all__ = [
    "DEFAULT_METHODS",
    "MCMC_CHAINS",
    "METHODS",
    "compare_posterior",
    "load_user_model",
    "reference_draws",
    "run_method",
]

METHODS = (*KERNELS, *GUIDES)
DEFAULT_METHODS = ("nuts", "metropolis", "auto_normal", "auto_mvn", "auto_iaf")
MCMC_CHAINS = 4
"""Chains of every MCMC method and of a long-NUTS reference (run one after the other)."""
REFERENCE_DRAWS = 20_000
"""Draws taken from an exact posterior, and the size of a long-NUTS reference."""


def _check_methods(methods: Sequence[str]) -> None:
    for method in methods:
        if method not in METHODS:
            raise UserError(
                f"--methods: unknown method {method!r}; choose from {', '.join(METHODS)}"
            )


def reference_draws(
    model: ZooModel,
    reference_file: str | Path | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, str]:
    """Reference draws ``(R, P)`` in the order of ``parameter_names(model.parameters)``,
    and where they came from."""
    names = parameter_names(model.parameters)
    if reference_file is not None or (model.exact is None and model.reference is not None):
        file_names, draws = load_reference_draws(reference_file or model.reference)
        missing = [n for n in names if n not in file_names]
        if missing:
            raise UserError(
                f"--reference: the draws have no {', '.join(missing[:3])} "
                f"(they have {', '.join(file_names[:6])}...)"
            )
        columns = [file_names.index(n) for n in names]
        return draws.reshape(-1, draws.shape[-1])[:, columns], "posteriordb"
    if model.exact is not None:
        generator = np.random.default_rng(seed)
        mean, cov = model.exact.mean.numpy(), model.exact.covariance.numpy()
        return generator.multivariate_normal(mean, cov, size=REFERENCE_DRAWS), "analytic"
    chains = MCMC_CHAINS
    result = run_mcmc(
        model.model,
        model.data,
        kernel="nuts",
        num_samples=REFERENCE_DRAWS // chains,
        warmup_steps=1000,
        num_chains=chains,
        seed=seed + 1000,
        progress=progress,
    )
    return _flat_mcmc(result.samples, model), "nuts (long run)"


def _flat_mcmc(samples: dict[str, torch.Tensor], model: ZooModel) -> np.ndarray:
    flat = flatten(samples, model.parameters, batch_ndim=2)
    return flat.reshape(-1, flat.shape[-1])


def _mcmc_method(
    model: ZooModel, kernel: str, num_samples: int, seed: int, progress: bool
) -> MethodResult:
    chains = MCMC_CHAINS
    per_chain = max(1, num_samples // chains)
    # a random walk is cheap per step but slow to adapt and to mix: give it more steps
    extra = METROPOLIS_EXTRA if kernel == "metropolis" else 1
    result = run_mcmc(
        model.model,
        model.data,
        kernel=kernel,
        num_samples=per_chain * extra,
        warmup_steps=max(500, per_chain) * extra,
        num_chains=chains,
        seed=seed,
        progress=progress,
    )
    ess = flatten({k: v.unsqueeze(0) for k, v in result.ess.items()}, model.parameters)[0]
    return MethodResult(kernel, _flat_mcmc(result.samples, model), seconds=result.seconds, ess=ess)


def _variational_method(
    model: ZooModel, guide: str, num_samples: int, seeds: int, seed: int, progress: bool
) -> MethodResult:
    sites = list(model.parameters)
    khats, first = [], None
    for offset in range(seeds):
        fit = fit_guide(model.model, model.data, guide, seed=seed + offset, progress=progress)
        log_ratios = importance_log_ratios(
            model.model, fit.guide, model.data, num_samples, seed=seed + offset
        )
        khats.append(psis_khat(log_ratios))
        if first is None:
            samples = guide_samples(model.model, fit.guide, model.data, sites, num_samples, seed)
            top = log_ratios.max()
            evidence = float(top + np.log(np.mean(np.exp(log_ratios - top))))
            first = (flatten(samples, model.parameters), fit, evidence)
    draws, fit, evidence = first
    return MethodResult(
        guide,
        draws,
        seconds=fit.seconds,
        khat=max(khats),
        khats=tuple(khats),
        elbo=fit.elbo,
        log_evidence_estimate=evidence,
    )


def run_method(
    model: ZooModel,
    method: str,
    *,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """One method's draws ``(num_samples, P)`` and its diagnostics."""
    _check_methods([method])
    if method in KERNELS:
        return _mcmc_method(model, method, num_samples, seed, progress)
    return _variational_method(model, method, num_samples, seeds, seed, progress)


def compare_posterior(
    model: ZooModel,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    reference_file: str | Path | None = None,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """Every method in ``methods`` against the reference for ``model``."""
    _check_methods(methods)
    reference, source = reference_draws(model, reference_file, seed=seed, progress=progress)
    results = [
        run_method(model, m, num_samples=num_samples, seeds=seeds, seed=seed, progress=progress)
        for m in methods
    ]
    return compare(
        reference,
        tuple(parameter_names(model.parameters)),
        results,
        reference_name=source,
        log_evidence=model.log_evidence,
        seed=seed,
    )


# ------------------------------------------------------------------ user models


def _import_function(target: str) -> tuple[Callable[..., Any], str]:
    path_text, sep, function = target.rpartition(":")
    if not sep or not path_text or not function:
        raise UserError(f"expected path/to/file.py:function, got {target!r}")
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"model file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"pyrovae_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report, never crash
        raise UserError(f"importing {path} failed: {type(err).__name__}: {err}") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UserError(f"{path} has no function {function!r} (it has: {', '.join(found)})")
    return fn, path.stem


def _tensor(value: Any) -> Any:
    if isinstance(value, list):
        return torch.tensor(value, dtype=torch.get_default_dtype())
    return value


def load_user_model(target: str, data_file: str | Path | None = None) -> ZooModel:
    """A user's Pyro model ``path/to/file.py:function`` with keyword data from JSON.

    Lists in the JSON become float tensors; numbers stay numbers. The reported
    parameters are the model's latent sample sites, in the order they appear.

    Raises
    ------
    UserError
        Missing file or function, unreadable data, or a model that fails on the data.
    """
    fn, stem = _import_function(target)
    data: dict[str, Any] = {}
    if data_file is not None:
        try:
            raw = json.loads(Path(data_file).read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"--data: cannot read {data_file}: {err}") from None
        if not isinstance(raw, dict):
            raise UserError(f"--data: {data_file} must hold a JSON object of keyword arguments")
        data = {k: _tensor(v) for k, v in raw.items()}
    try:
        with torch.no_grad():
            trace = poutine.trace(fn).get_trace(**data)
    except Exception as err:  # the user's model on the user's data
        raise UserError(
            f"{target} failed on the data: {type(err).__name__}: "
            f"{' '.join(str(err).split())}; check the data's keys and shapes"
        ) from None
    latent = {
        name: tuple(site["value"].shape)
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary")
    }
    if not latent:
        raise UserError(f"{target} has no latent sample sites to infer")
    if any(math.prod(shape) > 100 for shape in latent.values()):
        raise UserError(
            f"{target}: a latent site has more than 100 values; pyrovae compares small posteriors"
        )
    return ZooModel(
        name=stem, model=fn, data=data, parameters=latent, description=f"user model {target}"
    )
