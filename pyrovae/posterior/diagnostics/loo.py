"""PSIS-LOO of every method, with the ratios of a variational guide's draws corrected by
p(theta, y) / q(theta), its Monte Carlo error, and the comparison table of methods."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import NO_LOO, SAMPLE_DIMS
from pyrovae.posterior.diagnostics.checks import quiet_arviz

__all__ = ["LOO_COLUMNS", "loo", "loo_mcse", "loo_table", "loo_variables"]


def _log_ratio(idata: az.InferenceData) -> xr.DataArray | None:
    """``lp - log_q`` ``(chain, draw)`` for draws of a variational guide, else None."""
    stats = getattr(idata, "sample_stats", None)
    if stats is None or "lp" not in stats or "log_q" not in stats:
        return None
    return stats["lp"] - stats["log_q"]


def loo_variables(idata: az.InferenceData) -> list[str]:
    """Variables of the ``log_likelihood`` group that PSIS-LOO applies to: empty when there
    is no such group or its attrs carry a :data:`NO_LOO` note."""
    if "log_likelihood" not in idata.groups() or idata["log_likelihood"].attrs.get(NO_LOO):
        return []
    return [str(name) for name in idata["log_likelihood"].data_vars]


def _loo_names(idata: az.InferenceData) -> list[str]:
    """:func:`loo_variables`, or a one-line UserError saying why there are none."""
    names = loo_variables(idata)
    if names:
        return names
    if "log_likelihood" not in idata.groups():
        raise UserError("the InferenceData has no log_likelihood group; LOO needs one")
    raise UserError(f"LOO does not apply: {idata['log_likelihood'].attrs[NO_LOO]}")


def loo(idata: az.InferenceData, var_name: str | None = None) -> az.ELPDData:
    """PSIS-LOO of one ``log_likelihood`` variable, pointwise (``loo_i``, ``pareto_k``).

    Posterior draws (MCMC, exact, reference) go to ``arviz.loo``. Draws of a variational
    guide (``sample_stats`` ``lp`` and ``log_q``) are importance-corrected: the ratios
    p(theta | y_-i) / q(theta) ∝ exp(lp - log_q) / p(y_i | theta) are Pareto smoothed
    (``arviz.psislw``, relative efficiency 1 for independent draws), so the estimate is of
    the same model's elpd as for MCMC and k-hat > ``good_k`` says the guide could not
    give it (Magnusson, Andersen, Jonasson and Vehtari 2019; Vehtari et al. 2024, PSIS).
    ``p_loo`` then uses the importance-weighted lppd.

    Parameters
    ----------
    var_name : str, optional
        Variable of ``log_likelihood``; needed when it has several.

    Raises
    ------
    pyrovae.errors.UserError
        When there is no ``log_likelihood`` group or ``var_name`` is not in it.
    """
    names = _loo_names(idata)
    if var_name is None:
        if len(names) > 1:
            raise UserError(f"log_likelihood has several variables {names}; pass var_name")
        var_name = names[0]
    if var_name not in names:
        raise UserError(f"log_likelihood has no variable {var_name!r} (it has {names})")
    log_ratio = _log_ratio(idata)
    with quiet_arviz():
        if log_ratio is None:
            return az.loo(idata, pointwise=True, var_name=var_name, scale="log")
        return _corrected_loo(idata["log_likelihood"][var_name], log_ratio)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log sum exp over the last axis."""
    top = np.max(x, axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(x - top), axis=-1)) + top[..., 0]


def _corrected_loo(log_lik: xr.DataArray, log_ratio: xr.DataArray) -> az.ELPDData:
    """PSIS-LOO from draws of an approximation q with log-weights ``log p - log q``."""
    stacked = log_lik.stack(__sample__=SAMPLE_DIMS)
    values = np.asarray(stacked.values, dtype=np.float64)  # (*obs, S)
    ratio = np.asarray(log_ratio.stack(__sample__=SAMPLE_DIMS).values, dtype=np.float64)
    n_samples, n_data = values.shape[-1], int(np.prod(values.shape[:-1]))
    loo_weights, pareto_k = az.psislw(ratio - values, reff=1.0)
    full_weights, _ = az.psislw(ratio, reff=1.0)
    loo_i = _logsumexp(np.asarray(loo_weights) + values)
    lppd = float(np.sum(_logsumexp(np.asarray(full_weights) + values)))
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    pareto = np.asarray(pareto_k, dtype=np.float64)
    obs_dims = [d for d in stacked.dims if d != "__sample__"]
    obs_coords = {d: stacked[d].values for d in obs_dims}
    elpd = float(np.sum(loo_i))
    return az.ELPDData(
        data=[
            elpd,
            float((n_data * np.var(loo_i)) ** 0.5),
            lppd - elpd,
            n_samples,
            n_data,
            bool(np.any(pareto > good_k)),
            xr.DataArray(loo_i, dims=obs_dims, coords=obs_coords, name="loo_i"),
            xr.DataArray(pareto, dims=obs_dims, coords=obs_coords, name="pareto_k"),
            "log",
            good_k,
        ],
        index=[
            "elpd_loo",
            "se",
            "p_loo",
            "n_samples",
            "n_data_points",
            "warning",
            "loo_i",
            "pareto_k",
            "scale",
            "good_k",
        ],
    )


def loo_mcse(idata: az.InferenceData, var_name: str | None = None) -> float:
    """Monte Carlo standard error of :func:`loo`'s ``elpd_loo`` (nats), by the delta method.

    The importance-sampling estimate is ``elpd = sum_i [log A - log B_i]`` with
    ``A = mean_s a_s`` and ``B_i = mean_s a_s / p(y_i | theta_s)`` (``a_s = 1`` for posterior
    draws, ``exp(lp - log_q)`` for a guide's). Its linearisation is the mean over draws of
    ``h_s = n a_s / A - sum_i a_s / (p(y_i | theta_s) B_i)``, so the MCSE is
    ``sd(h) / sqrt(ESS(h))`` with ArviZ's ESS of ``h`` over the chains (independent draws:
    about S). It is the error of the unsmoothed estimate, which PSIS matches when every
    k-hat is small; with large k-hat the variance may be infinite and this is too small.
    It measures the error from using finitely many draws, the noise to allow for when
    methods that approximate the same posterior are compared; ``se`` is the data-level
    uncertainty of elpd and does not shrink with more draws.
    """
    names = _loo_names(idata)
    if var_name not in (None, *names):
        raise UserError(f"log_likelihood has no variable {var_name!r} (it has {names})")
    var_name = var_name or names[0]
    log_lik = idata["log_likelihood"][var_name]
    obs_dims = [d for d in log_lik.dims if d not in SAMPLE_DIMS]
    values = np.asarray(log_lik.transpose(*SAMPLE_DIMS, *obs_dims).values, dtype=np.float64)
    chains, draws = values.shape[:2]
    values = values.reshape(chains, draws, -1)
    log_ratio = _log_ratio(idata)
    log_a = (
        np.zeros((chains, draws))
        if log_ratio is None
        else np.asarray(log_ratio.transpose(*SAMPLE_DIMS).values, dtype=np.float64)
    )
    total = chains * draws

    def log_mean(x: np.ndarray) -> np.ndarray:  # log mean over all draws, per last-axis item
        flat = x.reshape(total, -1)
        top = flat.max(axis=0)
        return np.log(np.mean(np.exp(flat - top), axis=0)) + top

    log_ar = log_a[..., None] - values  # log a_s - log p(y_i | theta_s)
    h = values.shape[-1] * np.exp(log_a - log_mean(log_a)[0])
    h = h - np.exp(log_ar - log_mean(log_ar)).sum(axis=-1)
    with quiet_arviz():
        ess = float(az.ess(h, method="mean"))
    return float(np.std(h) / math.sqrt(ess))


LOO_COLUMNS = (
    "site",
    "method",
    "rank",
    "elpd_loo",
    "se",
    "mcse",
    "p_loo",
    "elpd_diff",
    "dse",
    "khat_max",
    "khat_bad",
    "good_k",
    "n_data",
    "n_draws",
    "q_corrected",
)
"""Keys of the rows of :func:`loo_table` (the columns of ``loo.csv``)."""


def loo_table(idatas: Mapping[str, az.InferenceData]) -> list[dict[str, Any]]:
    """PSIS-LOO of every method with a log-likelihood, compared with ``arviz.compare``.

    Parameters
    ----------
    idatas : mapping of str to InferenceData
        Method name -> its InferenceData (the same model); those without a
        ``log_likelihood`` group are left out.

    Returns
    -------
    list of dict
        One row per observed site and method, in the order of ``idatas``, keys
        :data:`LOO_COLUMNS`: ``elpd_loo`` and its ``se`` (nats, higher is better), its
        Monte Carlo error ``mcse`` (:func:`loo_mcse`), ``p_loo``; from ``arviz.compare``
        the ``rank`` (0 = highest elpd), ``elpd_diff`` (best minus this) and ``dse``
        (standard error of that difference, over observations); the largest
        Pareto k-hat, the number of observations whose k-hat exceeds ``good_k``
        (``min(1 - 1 / log10(S), 0.7)``: their LOO estimates are unreliable), and whether
        the ratios were corrected for a variational q. Empty when no method has a
        log-likelihood.
    """
    by_site: dict[str, dict[str, az.ELPDData]] = {}
    corrected = {}
    for method, idata in idatas.items():
        for site in loo_variables(idata):
            by_site.setdefault(site, {})[method] = loo(idata, site)
        corrected[method] = _log_ratio(idata) is not None
    rows = []
    for site, elpds in by_site.items():
        with quiet_arviz():
            ranked = az.compare(elpds, ic="loo", scale="log")
        for method, elpd in elpds.items():
            k = np.asarray(elpd["pareto_k"], dtype=np.float64)
            rows.append(
                {
                    "site": site,
                    "method": method,
                    "rank": int(ranked.loc[method, "rank"]),
                    "elpd_loo": float(elpd["elpd_loo"]),
                    "se": float(elpd["se"]),
                    "mcse": loo_mcse(idatas[method], site),
                    "p_loo": float(elpd["p_loo"]),
                    "elpd_diff": float(ranked.loc[method, "elpd_diff"]),
                    "dse": float(ranked.loc[method, "dse"]),
                    "khat_max": float(np.max(k)),
                    "khat_bad": int(np.sum(k > elpd["good_k"])),
                    "good_k": float(elpd["good_k"]),
                    "n_data": int(elpd["n_data_points"]),
                    "n_draws": int(elpd["n_samples"]),
                    "q_corrected": corrected[method],
                }
            )
    return rows
