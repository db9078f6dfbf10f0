"""InferenceData of draws without chains: a variational guide's, ``Predictive``'s, and the
local posteriors ``(S, N, L)`` of a VAE; the draws are cut into chains of consecutive draws."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import torch

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import (
    as_array,
    data_groups,
    inference_data,
    method_attrs,
    split_chains,
)
from pyrovae.posterior.targets.zoo import squeeze_padding

__all__ = ["LOCAL_DIMS", "LOCAL_LOO_NOTE", "from_local", "from_samples"]

LOCAL_DIMS: dict[str, list[str]] = {"z": ["point", "latent"], "x": ["point", "pixel"]}
"""Dims of a VAE's local latents ``z`` and data ``x`` (its log-likelihood: ``point`` only)."""

LOCAL_LOO_NOTE = (
    "log p(x_n | z_n) of local latents: leaving out point n leaves z_n with its prior, so "
    "PSIS-LOO would be a harmonic-mean estimate of the marginal p(x_n), unreliable "
    "(Pareto k-hat far above 0.7 for images)"
)
"""The :data:`NO_LOO` note of VAE local posteriors (:func:`from_local`)."""


def from_samples(
    samples: Mapping[str, np.ndarray | torch.Tensor],
    *,
    method: str,
    parameters: Mapping[str, tuple[int, ...]],
    chains: int = 1,
    khat: float | None = None,
    khats: Iterable[float] = (),
    elbo: float | None = None,
    seconds: float | None = None,
    log_likelihood: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    posterior_predictive: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    observed_data: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    sample_stats: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    fit: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Draws ``(S, ...)`` of a variational guide (or ``Predictive``) as InferenceData.

    Parameters
    ----------
    samples : mapping of str to array or Tensor
        Site -> ``(S, *padding, *event)``; ``Predictive`` pads scalar sites to ``(S, 1)``
        and global vector sites to ``(S, 1, K)``: singleton dims after the draw axis are
        dropped to reach the declared event shape. Sites not in ``parameters`` (observed
        sites, ...) are ignored.
    method : str
        Stored in ``attrs["method"]``.
    parameters : mapping of str to tuple of int
        Site -> event shape (e.g. ``ZooModel.parameters``); the posterior variables, in order.
    chains : int
        The S draws are cut into ``chains`` chains of ``S // chains`` consecutive draws.
    khat, khats, elbo, seconds : optional
        Pareto k-hat (overall and per site/point), ELBO in nats, fitting time; stored in
        ``attrs`` (``None`` and an empty ``khats`` are left out).
    log_likelihood : mapping of str to array, optional
        Observed site -> pointwise log-likelihood ``(S, N)``
        (:func:`pyrovae.posterior.inference.pointwise.pointwise`).
    posterior_predictive : mapping of str to array, optional
        Observed site -> replicated data ``(S, *value_shape)``.
    observed_data : mapping of str to array, optional
        Observed site -> observations ``value_shape``.
    sample_stats : mapping of str to array, optional
        Per-draw statistics ``(S,)``; for a guide ``lp`` (log p(theta, y)) and ``log_q``
        (log q(theta)), which make :func:`loo` correct for q not being the posterior.
    dims, coords : mapping, optional
        See the module notes.
    fit : mapping, optional
        How the variational fit ended (``Convergence.attrs()``: ``fit_converged``,
        ``fit_convergence``, ``fit_steps``, ...), added to ``attrs``.

    Returns
    -------
    arviz.InferenceData
        Group ``posterior`` and those given; variables ``(chain, draw, *event)``.
    """
    if not parameters:
        raise UserError("parameters must name at least one site")
    missing = [name for name in parameters if name not in samples]
    if missing:
        raise UserError(f"samples lack site(s) {missing} (they have {sorted(samples)})")
    posterior = {}
    for name, event in parameters.items():
        array = squeeze_padding(name, as_array(samples[name], f"samples '{name}'"), tuple(event), 1)
        posterior[name] = split_chains(array, chains, f"samples '{name}'")
    first = next(iter(posterior.values()))
    for name, array in posterior.items():
        if array.shape[:2] != first.shape[:2]:
            raise UserError(
                f"samples '{name}' have {array.shape[0] * array.shape[1]} draws, others "
                f"{first.shape[0] * first.shape[1]}; pass draws from one run"
            )
    return inference_data(
        posterior,
        attrs={
            **method_attrs(method, seconds=seconds, khat=khat, khats=khats, elbo=elbo),
            **(fit or {}),
        },
        dims=dims,
        coords=coords,
        **data_groups(
            first.shape[0],
            first.shape[1],
            split=True,
            log_likelihood=log_likelihood,
            posterior_predictive=posterior_predictive,
            observed_data=observed_data,
            sample_stats=sample_stats,
        ),
    )


def from_local(
    draws: np.ndarray | torch.Tensor,
    *,
    method: str,
    chains: int = 1,
    seconds: float | None = None,
    elbo: float | None = None,
    log_likelihood: np.ndarray | torch.Tensor | None = None,
    observed: np.ndarray | torch.Tensor | None = None,
) -> az.InferenceData:
    """VAE local posteriors ``(S, N, L)`` (``LocalPosteriors.draws[method]``) as InferenceData.

    One variable ``z`` with dims ``("chain", "draw", "point", "latent")`` (:data:`LOCAL_DIMS`),
    coords ``1..N`` and ``1..L`` (the comparison's ``z[n,l]``); the S draws are cut into
    ``chains`` chains of consecutive draws. For the MCMC runs of the same points use
    :func:`from_mcmc` with ``dims=LOCAL_DIMS`` (it keeps their sample_stats).

    Parameters
    ----------
    log_likelihood : (S, N) array, optional
        ``log p(x_n | z_s)`` of each point at each draw (pixels summed), stored as the
        variable ``x`` of the ``log_likelihood`` group, dims ``("chain", "draw", "point")``.
        It gives the reconstruction term of the ELBO per draw; it is *not* meant for
        :func:`loo`: leaving out a point leaves its ``z`` with only its prior, so the LOO
        density is the marginal p(x_n) estimated by a harmonic mean of p(x_n | z), whose
        Pareto k-hat is far above 0.7 for images. The group's attrs carry that note
        (:data:`LOCAL_LOO_NOTE` under :data:`NO_LOO`), so :func:`loo_table` leaves it out.
    observed : (N, D) array, optional
        The points, variable ``x`` of ``observed_data`` with dims ``("point", "pixel")``.
    """
    array = as_array(draws, "draws")
    if array.ndim != 3:
        raise UserError(f"local draws must be (S, N, L), got shape {array.shape}")
    z = split_chains(array, chains, "draws")
    return inference_data(
        {"z": z},
        attrs=method_attrs(method, seconds=seconds, elbo=elbo),
        dims=LOCAL_DIMS,
        loo_note=LOCAL_LOO_NOTE,
        **data_groups(
            z.shape[0],
            z.shape[1],
            split=True,
            log_likelihood=None if log_likelihood is None else {"x": log_likelihood},
            observed_data=None if observed is None else {"x": observed},
        ),
    )
