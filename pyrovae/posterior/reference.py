"""The reference a comparison measures every method against.

In order of preference: a file of posteriordb reference draws given by the user,
the exact (Gaussian) posterior, the posteriordb reference draws of the model, or a
long NUTS run. The reference also becomes InferenceData, with a log-likelihood where
its draws cover every latent site of the model (not for eight_schools_noncentered,
whose reference draws lack ``theta_trans``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from pyrovae.errors import UserError
from pyrovae.posterior import diagnostics
from pyrovae.posterior.inference.mcmc import McmcResult, run_mcmc
from pyrovae.posterior.inference.pointwise import model_sites, pointwise
from pyrovae.posterior.methods.base import converter_groups, flat_chains
from pyrovae.posterior.methods.mcmc import MCMC_CHAINS, mcmc_posterior
from pyrovae.posterior.targets.posteriordb import load_reference_draws
from pyrovae.posterior.targets.zoo import ZooModel, parameter_names

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "REFERENCE_DRAWS",
    "Reference",
    "find_reference",
    "reference_draws",
    "reference_posterior",
]

REFERENCE_DRAWS = 20_000
"""Draws taken from an exact posterior, and the size of a long-NUTS reference."""


class Reference(NamedTuple):
    """Reference draws and where they came from."""

    draws: np.ndarray
    """``(R, P)`` in the order of ``parameter_names(model.parameters)``."""
    source: str
    """``"posteriordb"``, ``"analytic"`` or ``"nuts (long run)"``."""
    mcmc: McmcResult | None
    """The long NUTS run, when that is the source."""


def find_reference(
    model: ZooModel,
    reference_file: str | Path | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> Reference:
    """The best reference there is for ``model`` (see the module's docstring)."""
    names = parameter_names(model.parameters)
    if reference_file is not None or (
        model.exact is None and model.exact_draws is None and model.reference is not None
    ):
        source = reference_file or model.reference
        assert source is not None
        file_names, draws = load_reference_draws(source)
        missing = [n for n in names if n not in file_names]
        if missing:
            raise UserError(
                f"--reference: the draws have no {', '.join(missing[:3])} "
                f"(they have {', '.join(file_names[:6])}...)"
            )
        columns = [file_names.index(n) for n in names]
        return Reference(draws.reshape(-1, draws.shape[-1])[:, columns], "posteriordb", None)
    if model.exact is not None:
        generator = np.random.default_rng(seed)
        mean, cov = model.exact.mean.numpy(), model.exact.covariance.numpy()
        draws = generator.multivariate_normal(mean, cov, size=REFERENCE_DRAWS)
        return Reference(draws, "analytic", None)
    if model.exact_draws is not None:
        draws = model.exact_draws(np.random.default_rng(seed), REFERENCE_DRAWS)
        return Reference(np.asarray(draws, dtype=np.float64), "analytic", None)
    result = run_mcmc(
        model.model,
        model.data,
        kernel="nuts",
        num_samples=REFERENCE_DRAWS // MCMC_CHAINS,
        warmup_steps=1000,
        num_chains=MCMC_CHAINS,
        seed=seed + 1000,
        progress=progress,
    )
    return Reference(flat_chains(result.samples, model), "nuts (long run)", result)


def reference_draws(
    model: ZooModel,
    reference_file: str | Path | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, str]:
    """Reference draws ``(R, P)`` in the order of ``parameter_names(model.parameters)``,
    and where they came from."""
    reference = find_reference(model, reference_file, seed=seed, progress=progress)
    return reference.draws, reference.source


def _unflatten(draws: np.ndarray, parameters: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """``(S, P)`` columns in :func:`parameter_names` order -> site -> ``(S, *shape)``."""
    out, start = {}, 0
    for name, shape in parameters.items():
        size = math.prod(shape)
        out[name] = draws[:, start : start + size].reshape(draws.shape[0], *shape)
        start += size
    return out


def reference_posterior(
    model: ZooModel, reference: Reference, *, predictive: bool = False, seed: int = 0
) -> az.InferenceData:
    """The reference as InferenceData; a log-likelihood where its draws cover every latent."""
    method = f"reference ({reference.source})"
    if reference.mcmc is not None:
        return mcmc_posterior(model, reference.mcmc, method, predictive=predictive, seed=seed)
    names = parameter_names(model.parameters)
    if not set(model_sites(model.model, model.data).latent) <= set(model.parameters):
        return diagnostics.from_flat(
            reference.draws, names, method=method, parameters=model.parameters
        )
    latent = _unflatten(reference.draws, model.parameters)
    groups = converter_groups(pointwise(model.model, model.data, latent, predictive=predictive))
    return diagnostics.from_flat(
        reference.draws, names, method=method, parameters=model.parameters, **groups
    )
