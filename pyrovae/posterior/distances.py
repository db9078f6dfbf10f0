"""Sample-based discrepancies between posterior draws and a reference sample.

Every input is a plain numpy array of flattened draws, shape ``(S, P)`` (1-D input is
one column); the reference, shape ``(R, P)``, sets the scale. Every measure is
scale-free: columns are expressed in units of the reference's sample sd (``ddof=1``;
a constant reference column, sd below :data:`MIN_SD`, is left unscaled).

Per parameter, each a ``(P,)`` array:

- :func:`mean_error_sd`: ``(mean - reference mean) / reference sd``, in reference
  sds (0 is exact);
- :func:`sd_ratio`: ``sd / reference sd``, a pure ratio (1 is exact, below 1 too
  narrow, above 1 too wide);
- :func:`wasserstein1_sd`: the 1-Wasserstein distance between the two marginals
  over the reference sd, in reference sds (0 is the same marginal).

On all parameters jointly (columns standardised by the reference sd, each sample a
seeded subsample of at most :data:`JOINT_MAX_POINTS` draws), each a float:

- :func:`energy_distance`: the energy distance, in reference sds;
- :func:`mmd`: the squared maximum mean discrepancy with a Gaussian kernel,
  dimensionless, between 0 and 2.

Both are unbiased U-statistics, so they are about 0 (and may be slightly negative)
when the draws come from the reference distribution.

:func:`noise_floor` gives what sampling noise alone produces: every metric above
between two random halves of the reference, the largest over
:data:`NOISE_FLOOR_SPLITS` splits. :func:`psis_khat` is the Pareto k-hat of PSIS
(Vehtari et al., 2024) for a variational fit, dimensionless, unreliable above
:data:`KHAT_THRESHOLD`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist, pdist
from scipy.stats import wasserstein_distance

from pyrovae.stats.energy import energy_distance as stats_energy

__all__ = [
    "FLOOR_KEYS",
    "JOINT_MAX_POINTS",
    "KHAT_THRESHOLD",
    "MIN_SD",
    "NOISE_FLOOR_SPLITS",
    "abs_log",
    "as_draws",
    "column_sd",
    "energy_distance",
    "mean_error_sd",
    "mmd",
    "noise_floor",
    "psis_khat",
    "sd_ratio",
    "subsample",
    "wasserstein1_sd",
]

# --- constants --------------------------------------------------------------------------------

KHAT_THRESHOLD = 0.7
"""Pareto k-hat above which importance sampling is unreliable and the approximation is
poor (Vehtari et al., 2024, "Pareto smoothed importance sampling", JMLR 25(72): beyond it
the PSIS estimate's error converges too slowly for any practical sample size)."""

NOISE_FLOOR_SPLITS = 5
"""Random half-splits of the reference behind :func:`noise_floor`; the maximum over five
splits lands, in the median, at the 87th percentile (0.5 ** (1/5)) of the metric's
sampling distribution, so an exact method rarely exceeds a small multiple of it."""

JOINT_MAX_POINTS = 2000
"""Draws per sample (a seeded subsample) in the energy distance and MMD^2 of
:func:`pyrovae.posterior.compare.compare`: their cost grows as the square, and at 2000 draws
their sampling noise (~0.002 for a few parameters) is far below any difference worth
reporting."""

MIN_SD = 1e-12
"""A reference column with a smaller sd is treated as having sd 1 (no rescaling),
so a constant parameter does not divide by zero."""

FLOOR_KEYS = ("energy", "mmd", "max_abs_mean_error_sd", "max_abs_log_sd_ratio", "max_w1_sd")
"""Keys of :func:`noise_floor`'s result."""


# --- inputs -----------------------------------------------------------------------------------


def as_draws(values: Any, what: str) -> np.ndarray:
    """``values`` as a finite ``(S, P)`` float array with ``S >= 2``; 1-D input is one column."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{what} must have shape (S, P) with S >= 2, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain {int(np.sum(~np.isfinite(array)))} non-finite values")
    return array


def column_sd(draws: np.ndarray) -> np.ndarray:
    """``(P,)`` sample sd (``ddof=1``) of ``(S, P)`` draws."""
    return draws.std(axis=0, ddof=1)


def _scale(reference: np.ndarray) -> np.ndarray:
    """``(P,)`` reference sd, with 1 in place of (near) zero so it can divide."""
    sd = column_sd(reference)
    return np.where(sd > MIN_SD, sd, 1.0)


# --- per-parameter metrics --------------------------------------------------------------------


def mean_error_sd(draws: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Error of each posterior mean in reference sds.

    Parameters
    ----------
    draws : (S, P) array
    reference : (R, P) array

    Returns
    -------
    (P,) array
        ``(mean(draws) - mean(reference)) / sd(reference)``.
    """
    draws, reference = _pair(draws, reference)
    return (draws.mean(axis=0) - reference.mean(axis=0)) / _scale(reference)


def sd_ratio(draws: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Posterior sd of each parameter relative to the reference (1 = exact, < 1 too narrow).

    Parameters
    ----------
    draws : (S, P) array
    reference : (R, P) array

    Returns
    -------
    (P,) array
        ``sd(draws) / sd(reference)``, sample sds with ``ddof=1``.
    """
    draws, reference = _pair(draws, reference)
    return column_sd(draws) / _scale(reference)


def wasserstein1_sd(draws: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1-Wasserstein distance between each pair of marginals, in reference sds.

    Parameters
    ----------
    draws : (S, P) array
    reference : (R, P) array

    Returns
    -------
    (P,) array
        :func:`scipy.stats.wasserstein_distance` of column ``p`` over ``sd(reference)[p]``.
    """
    draws, reference = _pair(draws, reference)
    w1 = [wasserstein_distance(draws[:, p], reference[:, p]) for p in range(draws.shape[1])]
    return np.asarray(w1) / _scale(reference)


def abs_log(ratio: float) -> float:
    """``|log ratio|``, infinite for a ratio of 0 (a constant column)."""
    return abs(math.log(ratio)) if ratio > 0 else math.inf


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as ``(n, P)`` arrays with the same ``P``."""
    x, y = as_draws(x, "draws"), as_draws(y, "reference")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"draws have {x.shape[1]} parameters, the reference {y.shape[1]}")
    return x, y


# --- joint metrics ----------------------------------------------------------------------------


def _standardised_subsamples(
    x: Any, y: Any, max_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both samples divided by ``y``'s column sd, each subsampled to ``max_points`` rows."""
    x, y = _pair(x, y)
    scale = _scale(y)
    rng = np.random.default_rng(seed)
    return subsample(x, max_points, rng) / scale, subsample(y, max_points, rng) / scale


def subsample(draws: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_points`` rows of ``draws``, drawn without replacement."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if draws.shape[0] <= max_points:
        return draws
    return draws[np.sort(rng.choice(draws.shape[0], size=max_points, replace=False))]


def energy_distance(x: Any, y: Any, *, max_points: int = JOINT_MAX_POINTS, seed: int = 0) -> float:
    """Multivariate energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Székely & Rizzo, 2013).

    Columns are divided by ``y``'s sample sd first, so the value is scale-free and
    comparable across models. The within-sample means exclude the ``i = j`` terms
    (U-statistic), so two samples of one distribution give about 0, possibly slightly
    negative; it is reported as is.

    Parameters
    ----------
    x : (n, P) array
        Draws of the method.
    y : (m, P) array
        Reference draws (sets the scale).
    max_points : int
        Each sample is subsampled (seeded, without replacement) to at most this many
        rows; the cost is O(max_points^2 P).
    seed : int
        Seed of the subsampling.

    Returns
    -------
    float
        Energy distance, in reference sds (0 = same distribution).
    """
    return stats_energy(*_standardised_subsamples(x, y, max_points, seed))


def mmd(
    x: Any,
    y: Any,
    *,
    max_points: int = JOINT_MAX_POINTS,
    seed: int = 0,
    bandwidth: float | None = None,
) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel (Gretton et al., 2012).

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` on columns divided by ``y``'s sample sd;
    ``MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean k(x_i, y_j)``.

    Parameters
    ----------
    x : (n, P) array
        Draws of the method.
    y : (m, P) array
        Reference draws (sets the scale).
    max_points : int
        Each sample is subsampled (seeded, without replacement) to at most this many rows.
    seed : int
        Seed of the subsampling.
    bandwidth : float or None
        Kernel width ``h`` in standardised units; ``None`` takes the median heuristic,
        the median distance between distinct points of the pooled (subsampled) sample.

    Returns
    -------
    float
        MMD^2, dimensionless, between 0 (same distribution; may be slightly
        negative) and 2.
    """
    return _mmd(_Distances.of(x, y, max_points, seed), bandwidth)


@dataclass(frozen=True)
class _Distances:
    """Euclidean distances within and between two standardised, subsampled samples.

    ``xx`` and ``yy`` are condensed (:func:`scipy.spatial.distance.pdist`, pairs
    ``i < j``), ``xy`` is ``(n, m)``.
    """

    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray

    @classmethod
    def of(cls, x: Any, y: Any, max_points: int, seed: int) -> _Distances:
        xs, ys = _standardised_subsamples(x, y, max_points, seed)
        return cls(pdist(xs), pdist(ys), cdist(xs, ys))


def _mmd(d: _Distances, bandwidth: float | None) -> float:
    """Unbiased MMD^2 from the distances; median-heuristic width when ``bandwidth`` is None."""
    h = _median_bandwidth(d) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be positive, got {h}")

    def kernel(distance: np.ndarray) -> np.ndarray:
        return np.exp(-(distance**2) / (2.0 * h**2))

    return float(kernel(d.xx).mean() + kernel(d.yy).mean() - 2.0 * kernel(d.xy).mean())


def _median_bandwidth(d: _Distances) -> float:
    """Median distance between distinct pooled points; 1 when that median is 0."""
    h = float(np.median(np.concatenate([d.xx, d.yy, d.xy.ravel()])))
    return h if h > 0 else 1.0


def _all_metrics(draws: np.ndarray, reference: np.ndarray, seed: int) -> dict[str, float]:
    """Every metric of :data:`FLOOR_KEYS` between ``draws`` and ``reference``."""
    return {
        "energy": energy_distance(draws, reference, seed=seed),
        "mmd": mmd(draws, reference, seed=seed),
        "max_abs_mean_error_sd": float(np.max(np.abs(mean_error_sd(draws, reference)))),
        "max_abs_log_sd_ratio": max(abs_log(r) for r in sd_ratio(draws, reference)),
        "max_w1_sd": float(np.max(wasserstein1_sd(draws, reference))),
    }


def noise_floor(reference: Any, *, seed: int = 0) -> dict[str, float]:
    """Every metric between two random halves of the reference: what sampling noise alone gives.

    The rows are shuffled with a seeded generator and split into two halves of
    ``R // 2`` rows, :data:`NOISE_FLOOR_SPLITS` times; each metric's floor is its
    largest value over the splits (one split alone is a single noisy draw, and the
    energy distance and MMD^2 of one split can land arbitrarily close to 0). With a
    method of ``S`` draws compared with all ``R`` reference draws, the noise is
    somewhat smaller than between the halves when ``S >= R / 2``, so the floor is a
    slightly conservative yardstick.

    Parameters
    ----------
    reference : (R, P) array
        ``R >= 4``.
    seed : int
        Seed of the shuffle and of the subsampling in the joint metrics.

    Returns
    -------
    dict
        ``energy``, ``mmd``, ``max_abs_mean_error_sd``, ``max_abs_log_sd_ratio`` and
        ``max_w1_sd`` (maxima over parameters).
    """
    reference = as_draws(reference, "reference")
    if reference.shape[0] < 4:
        raise ValueError(f"the reference needs at least 4 draws, got {reference.shape[0]}")
    rng = np.random.default_rng(seed)
    half = reference.shape[0] // 2
    splits = []
    for split in range(NOISE_FLOOR_SPLITS):
        rows = rng.permutation(reference.shape[0])
        a, b = reference[rows[:half]], reference[rows[half : 2 * half]]
        splits.append(_all_metrics(a, b, seed + split))
    return {key: max(values[key] for values in splits) for key in FLOOR_KEYS}


def psis_khat(log_ratios: Any) -> float:
    """Pareto k-hat of importance log-ratios, from :func:`arviz.psislw`.

    Uses ``arviz.psislw(log_ratios, reff=1.0)``, which fits a generalised Pareto
    distribution to the largest ratios (Pareto smoothed importance sampling, Vehtari
    et al., 2024) and returns ``(smoothed log weights, k-hat)``; ``reff=1`` because the
    draws of a variational approximation are independent.

    Parameters
    ----------
    log_ratios : (S,) array
        ``log p(theta_s, y) - log q(theta_s)`` for draws ``theta_s ~ q``; any constant
        offset (an unknown normaliser) does not matter.

    Returns
    -------
    float
        k-hat: below 0.5 good, up to :data:`KHAT_THRESHOLD` usable, above unreliable.
    """
    import arviz as az  # imported here: slow to import, and only this function needs it

    values = np.asarray(log_ratios, dtype=float).reshape(-1)
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"log_ratios must hold at least 2 finite values, got {values.size}")
    _, khat = az.psislw(values, reff=1.0)
    return float(khat)
