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

Every method's :class:`~pyrovae.compare.MethodResult` (and the comparison's
reference) also carries its posterior as ArviZ InferenceData
(:mod:`pyrovae.diagnostics`): MCMC through ``from_mcmc`` (chains and
sample_stats kept), guides through ``from_samples`` (``lp`` and ``log_q`` per
draw), each with the pointwise ``log_likelihood`` of the observed sites and
``observed_data`` (:mod:`pyrovae.infer.pointwise`), and ``posterior_predictive``
on request. The reference gets a log-likelihood where its draws cover every
latent site of the model (not for eight_schools_noncentered, whose reference
draws lack ``theta_trans``).
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyrovae import diagnostics
from pyrovae.compare import Comparison, MethodResult, compare, psis_khat
from pyrovae.errors import UserError
from pyrovae.infer.local import METROPOLIS_EXTRA
from pyrovae.infer.mcmc import KERNELS, McmcResult, run_mcmc
from pyrovae.infer.pointwise import Pointwise, model_sites, pointwise
from pyrovae.infer.variational import GUIDES, fit_guide, guide_draws, importance_log_ratios
from pyrovae.models.zoo import ZooModel, flatten, parameter_names
from pyrovae.posteriordb import load_reference_draws

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "DEFAULT_METHODS",
    "MCMC_CHAINS",
    "METHODS",
    "compare_posterior",
    "load_user_model",
    "mcmc_posterior",
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
    draws, source, _ = _reference(model, reference_file, seed, progress)
    return draws, source


def _reference(
    model: ZooModel, reference_file: str | Path | None, seed: int, progress: bool
) -> tuple[np.ndarray, str, McmcResult | None]:
    """:func:`reference_draws` and, for a long NUTS run, its :class:`McmcResult`."""
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
        return draws.reshape(-1, draws.shape[-1])[:, columns], "posteriordb", None
    if model.exact is not None:
        generator = np.random.default_rng(seed)
        mean, cov = model.exact.mean.numpy(), model.exact.covariance.numpy()
        return generator.multivariate_normal(mean, cov, size=REFERENCE_DRAWS), "analytic", None
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
    return _flat_mcmc(result.samples, model), "nuts (long run)", result


def _flat_mcmc(samples: dict[str, torch.Tensor], model: ZooModel) -> np.ndarray:
    flat = flatten(samples, model.parameters, batch_ndim=2)
    return flat.reshape(-1, flat.shape[-1])


def _unflatten(draws: np.ndarray, parameters: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """``(S, P)`` columns in :func:`parameter_names` order -> site -> ``(S, *shape)``."""
    out, start = {}, 0
    for name, shape in parameters.items():
        size = math.prod(shape)
        out[name] = draws[:, start : start + size].reshape(draws.shape[0], *shape)
        start += size
    return out


def _groups(pw: Pointwise, chains: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Keyword arguments of the converters; ``chains``: reshape ``(S, ...)`` to
    ``(chains, S // chains, ...)``."""

    def split(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if chains is None:
            return arrays
        return {k: a.reshape(chains, -1, *a.shape[1:]) for k, a in arrays.items()}

    return {
        "log_likelihood": split(pw.log_likelihood),
        "posterior_predictive": split(pw.posterior_predictive),
        "observed_data": pw.observed_data,
    }


def mcmc_posterior(
    model: ZooModel, result: McmcResult, method: str, *, predictive: bool = False, seed: int = 0
) -> az.InferenceData:
    """An MCMC run on ``model`` as InferenceData with every group it can have.

    Posterior (the reported sites ``model.parameters``), sample_stats (acceptance,
    step size, tree size, divergences), the pointwise log-likelihood and observed data
    of the observed sites, and ``posterior_predictive`` if ``predictive``.
    """
    first = next(iter(result.samples.values()))
    chains, draws = first.shape[:2]
    latent = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in result.samples.items()}
    pw = pointwise(model.model, model.data, latent, predictive=predictive, seed=seed)
    return diagnostics.from_mcmc(
        result, method=method, parameters=model.parameters, **_groups(pw, chains)
    )


def _reference_posterior(
    model: ZooModel,
    draws: np.ndarray,
    source: str,
    mcmc: McmcResult | None,
    predictive: bool,
    seed: int,
) -> az.InferenceData:
    """The reference as InferenceData; a log-likelihood where its draws cover every latent."""
    method = f"reference ({source})"
    if mcmc is not None:
        return mcmc_posterior(model, mcmc, method, predictive=predictive, seed=seed)
    names = parameter_names(model.parameters)
    groups = {}
    if set(model_sites(model.model, model.data).latent) <= set(model.parameters):
        latent = _unflatten(draws, model.parameters)
        groups = _groups(pointwise(model.model, model.data, latent, predictive=predictive))
    return diagnostics.from_flat(draws, names, method=method, parameters=model.parameters, **groups)


def _mcmc_method(
    model: ZooModel, kernel: str, num_samples: int, seed: int, progress: bool, predictive: bool
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
    return MethodResult(
        kernel,
        _flat_mcmc(result.samples, model),
        seconds=result.seconds,
        ess=ess,
        posterior=mcmc_posterior(model, result, kernel, predictive=predictive, seed=seed),
    )


def _variational_method(
    model: ZooModel,
    guide: str,
    num_samples: int,
    seeds: int,
    seed: int,
    progress: bool,
    predictive: bool,
) -> MethodResult:
    """Fit ``seeds`` times for k-hat; the first fit's draws are the method's posterior."""
    latent = model_sites(model.model, model.data).latent
    sites = list(dict.fromkeys([*model.parameters, *latent]))
    khats, first = [], None
    for offset in range(seeds):
        fit = fit_guide(model.model, model.data, guide, seed=seed + offset, progress=progress)
        if first is None:
            draws = guide_draws(model.model, fit.guide, model.data, sites, num_samples, seed)
            log_ratios = draws.log_ratios
            first = (draws, fit)
        else:
            log_ratios = importance_log_ratios(
                model.model, fit.guide, model.data, num_samples, seed=seed + offset
            )
        khats.append(psis_khat(log_ratios))
    draws, fit = first
    ratios = draws.log_ratios
    top = ratios.max()
    evidence = float(top + np.log(np.mean(np.exp(ratios - top))))
    pw = pointwise(model.model, model.data, draws.samples, predictive=predictive, seed=seed)
    posterior = diagnostics.from_samples(
        draws.samples,
        method=guide,
        parameters=model.parameters,
        khat=max(khats),
        khats=khats,
        elbo=fit.elbo,
        seconds=fit.seconds,
        sample_stats={"lp": draws.log_joint, "log_q": draws.log_q},
        **_groups(pw),
    )
    return MethodResult(
        guide,
        flatten(draws.samples, model.parameters),
        seconds=fit.seconds,
        khat=max(khats),
        khats=tuple(khats),
        elbo=fit.elbo,
        log_evidence_estimate=evidence,
        posterior=posterior,
    )


def run_method(
    model: ZooModel,
    method: str,
    *,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
    predictive: bool = False,
) -> MethodResult:
    """One method's draws ``(num_samples, P)``, its diagnostics and its InferenceData
    (``MethodResult.posterior``; ``posterior_predictive`` too if ``predictive``)."""
    _check_methods([method])
    if method in KERNELS:
        return _mcmc_method(model, method, num_samples, seed, progress, predictive)
    return _variational_method(model, method, num_samples, seeds, seed, progress, predictive)


def compare_posterior(
    model: ZooModel,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    reference_file: str | Path | None = None,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
    predictive: bool = False,
) -> Comparison:
    """Every method in ``methods`` against the reference for ``model``.

    ``predictive``: add ``posterior_predictive`` draws (one replicate of the data per
    posterior draw) to every method's and the reference's InferenceData.
    """
    _check_methods(methods)
    reference, source, mcmc = _reference(model, reference_file, seed, progress)
    results = [
        run_method(
            model,
            m,
            num_samples=num_samples,
            seeds=seeds,
            seed=seed,
            progress=progress,
            predictive=predictive,
        )
        for m in methods
    ]
    return compare(
        reference,
        tuple(parameter_names(model.parameters)),
        results,
        reference_name=source,
        log_evidence=model.log_evidence,
        seed=seed,
        reference_posterior=_reference_posterior(model, reference, source, mcmc, predictive, seed),
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
