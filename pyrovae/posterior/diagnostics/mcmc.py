"""InferenceData of an MCMC run (NUTS, HMC, Metropolis) with its sampler statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import (
    as_array,
    data_groups,
    inference_data,
    method_name,
    optional_float,
    plain,
)
from pyrovae.posterior.targets.zoo import squeeze_padding

if TYPE_CHECKING:
    import torch

    from pyrovae.posterior.inference.mcmc import McmcResult

__all__ = ["from_mcmc"]


def from_mcmc(
    result: McmcResult,
    *,
    method: str,
    parameters: Mapping[str, tuple[int, ...]] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    log_likelihood: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    observed_data: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    posterior_predictive: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    loo_note: str | None = None,
) -> az.InferenceData:
    """An :class:`~pyrovae.posterior.inference.mcmc.McmcResult` as InferenceData (Metropolis
    included).

    ``arviz.from_pyro`` reads ``diagnostics()["divergences"]`` and fails with
    ``KeyError: 'divergences'`` on Pyro's random-walk kernel; this reads the result tuple.

    Parameters
    ----------
    result : McmcResult
        Samples ``(chains, draws, *site_shape)`` and per-chain diagnostics.
    method : str
        Method name stored in ``attrs["method"]`` (e.g. ``"nuts"``).
    parameters : mapping of str to tuple of int, optional
        Keep only these sites, in this order, checked against (and squeezed to) these event
        shapes; default every site of ``result.samples``.
    dims, coords : mapping, optional
        Event dim names per variable and coordinate values per dim (see the module notes).
    log_likelihood : mapping of str to array, optional
        Observed site -> pointwise log-likelihood ``(chains, draws, N)``.
    observed_data : mapping of str to array, optional
        Observed site -> observations ``(N, ...)``.
    posterior_predictive : mapping of str to array, optional
        Observed site -> replicated data ``(chains, draws, N, ...)``.
    loo_note : str, optional
        Why PSIS-LOO does not apply to this log-likelihood (stored in the group's attrs
        under :data:`NO_LOO`; :func:`loo_variables` then lists nothing).

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior``, ``sample_stats`` and those given. ``sample_stats`` per
        ``(chain, draw)``:

        * ``acceptance_rate`` -- the McmcResult keeps only the per-chain mean acceptance
          probability over the kept draws, so that mean is repeated for every draw of the
          chain (``sample_stats.attrs["acceptance_rate"]`` says so);
        * ``step_size`` -- the chain's step size after adaptation (proposal scale for
          Metropolis), constant over the kept draws;
        * ``tree_size`` -- leapfrog steps of each transition (``num_steps``), NUTS/HMC only;
        * ``diverging`` -- which transitions diverged (``McmcResult.diverging``). A result
          with only per-chain *counts* gives an all-False boolean when every count is 0
          (exact) and leaves it out otherwise (the positions are unknown). The counts are
          always in ``attrs["divergences"]`` (a list, one per chain) for NUTS/HMC;
          Metropolis has neither.

        ``attrs``: ``method``, ``kernel``, ``seconds``, ``divergences``, and where the
        result has them ``mass`` (dense, diag, isotropic), ``start`` (how warm-up
        started) and ``max_tree_depth`` (NUTS).
    """
    samples = result.samples
    if parameters is not None:
        missing = [name for name in parameters if name not in samples]
        if missing:
            raise UserError(f"the MCMC result lacks site(s) {missing} (it has {sorted(samples)})")
        posterior = {
            name: squeeze_padding(
                name, as_array(samples[name], f"samples '{name}'"), tuple(event), 2
            )
            for name, event in parameters.items()
        }
    else:
        posterior = {name: as_array(v, f"samples '{name}'") for name, v in samples.items()}
    if not posterior:
        raise UserError("the MCMC result has no samples")
    first = next(iter(posterior.values()))
    if first.ndim < 2:
        raise UserError(f"MCMC samples must be (chains, draws, ...), got {first.shape}")
    chains, draws = first.shape[:2]
    for name, array in posterior.items():
        if array.shape[:2] != (chains, draws):
            raise UserError(
                f"samples '{name}' have shape {array.shape}; every site must be "
                f"({chains}, {draws}, ...)"
            )

    def per_chain(value: Any, what: str) -> np.ndarray:
        array = as_array(value, what).reshape(-1)
        if array.shape != (chains,):
            raise UserError(f"{what} has shape {array.shape}; expected ({chains},)")
        return np.repeat(array[:, None], draws, axis=1)

    stats = {
        "acceptance_rate": per_chain(result.acceptance_rate, "acceptance_rate"),
        "step_size": per_chain(result.step_size, "step_size"),
    }
    if result.num_steps is not None:
        steps = np.asarray(plain(result.num_steps), dtype=np.int64)
        if steps.shape != (chains, draws):
            raise UserError(f"num_steps has shape {steps.shape}; expected ({chains}, {draws})")
        stats["tree_size"] = steps
    divergences = None
    if result.divergences is not None:
        divergences = [int(d) for d in np.asarray(plain(result.divergences)).reshape(-1)]
        if len(divergences) != chains:
            raise UserError(f"divergences has {len(divergences)} values; expected {chains}")
        diverging = getattr(result, "diverging", None)
        if diverging is not None:
            flags = np.asarray(plain(diverging), dtype=bool)
            if flags.shape != (chains, draws):
                raise UserError(f"diverging has shape {flags.shape}; expected ({chains}, {draws})")
            stats["diverging"] = flags
        elif not any(divergences):
            stats["diverging"] = np.zeros((chains, draws), dtype=bool)
    stats_attrs = {
        "acceptance_rate": "per-chain mean acceptance probability over the kept draws, "
        "repeated for every draw of the chain",
        "step_size": "per-chain step size after adaptation (Metropolis: proposal scale)",
    }
    if divergences is not None and "diverging" not in stats:
        stats_attrs["diverging"] = (
            "left out: only per-chain divergence counts are known (attrs['divergences'])"
        )
    attrs = {
        "method": method_name(method),
        "kernel": str(result.kernel),
        "seconds": optional_float("seconds", result.seconds),
        "divergences": divergences,
        "mass": getattr(result, "mass", None),
        "start": getattr(result, "start", None) or None,
        "max_tree_depth": getattr(result, "max_tree_depth", None),
    }
    groups = data_groups(
        chains,
        draws,
        split=False,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        observed_data=observed_data,
    )
    groups["sample_stats"] = stats  # bool and int arrays, not through data_groups' float64
    return inference_data(
        posterior,
        attrs=attrs,
        dims=dims,
        coords=coords,
        sample_stats_attrs=stats_attrs,
        loo_note=loo_note,
        **groups,
    )
