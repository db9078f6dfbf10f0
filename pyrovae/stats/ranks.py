"""Rank statistics of simulation-based calibration (SBC), for both lines.

In SBC (Talts et al. 2018; Modrák et al. 2023) a parameter is drawn from the prior, data
from the model given it, and ``L`` draws from the inference method's posterior given the
data; the *rank* of the true value is how many of the ``L`` draws lie below it, an
integer in ``0..L``. If the method's posterior is the exact posterior, the rank is
uniform on ``0..L`` whatever the prior and the model, so a non-uniform rank histogram over
``N`` replications shows a wrong posterior, and its shape says how it is wrong.

The test of one parameter (:func:`uniformity_test`) joins three:

- Pearson's chi-square on binned ranks, the omnibus test: ``B`` bins of consecutive rank
  values (:func:`bin_count`, at least :data:`MIN_EXPECTED` replications expected per bin),
  each with its exact probability (rank values in it over ``L + 1``, so ``L + 1`` need
  not be a multiple of ``B``), ``B - 1`` degrees of freedom;
- two directed z-tests for the failures SBC is mostly after (:func:`shape_scores`, exact
  moments of the discrete uniform): ``bias_z`` of the mean rank (high ranks: the truth
  lies above q's draws, q is biased low) and ``dispersion_z`` of the mean distance of the
  ranks from the middle ``L / 2`` (positive: a U shape, ranks piled at both ends, q too
  narrow, under-dispersed, overconfident; negative: an inverted U, q too wide). With few
  replications the chi-square has few bins and misses these: with 2 bins a U shape is
  invisible to it (a mean-field fit of ``regression_far`` at N = 20 had chi-square
  p = 0.93 and ``dispersion_z`` = 7.4).

Their two-sided p-values are joined by Bonferroni, ``p = min(1, 3 min(p_chi2, p_bias,
p_dispersion))``. Multiple testing over parameters is explicit too: :func:`rank_tests`
passes a parameter when its p is at least ``alpha / P`` (Bonferroni over the method's
``P`` parameters), so a calibrated method fails anywhere with probability at most about
``alpha``. :func:`hint` words the shape scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import chi2, norm

__all__ = [
    "ALPHA",
    "HINT_Z",
    "MAX_BINS",
    "MIN_EXPECTED",
    "MIN_REPLICATIONS",
    "TESTS_PER_PARAMETER",
    "MethodRanks",
    "RankTest",
    "bin_count",
    "fractional_ranks",
    "hint",
    "rank_of",
    "rank_tests",
    "shape_scores",
    "uniformity_test",
]

ALPHA = 0.05
"""Family-wise level of one method's tests (Bonferroni over its parameters)."""

MIN_EXPECTED = 10
"""Replications expected per bin at least: twice Cochran's rule of five, so the chi-square
approximation of the statistic's null distribution holds with margin."""

MAX_BINS = 20
"""Bins at most (Talts et al. use 20); more only spread the same replications thinner."""

MIN_REPLICATIONS = 2 * MIN_EXPECTED
"""Replications a test needs: two bins of :data:`MIN_EXPECTED`."""

TESTS_PER_PARAMETER = 3
"""The chi-square and the two shape z-tests, joined by Bonferroni into one p-value."""

HINT_Z = 3.0
"""|z| from which a shape score is named in the hint (two-sided p = 0.003 for one score, so
a calibrated method's hint is empty in all but a few of a hundred parameters)."""


class RankTest(NamedTuple):
    """The uniformity test of one parameter's SBC ranks.

    Attributes
    ----------
    parameter : str
        The parameter's name (``mu``, ``theta[3]``, ``z[2]``).
    replications : int
        N, the ranks tested.
    draws : int
        L, posterior draws per replication (ranks are ``0..L``).
    bins : int
        B, chi-square bins.
    statistic : float
        Pearson's chi-square, ``B - 1`` degrees of freedom.
    chi2_p_value : float
        Its upper tail probability.
    p_value : float
        The parameter's p-value: ``min(1, 3 min(p_chi2, p_bias, p_dispersion))``, the
        z-tests two-sided.
    threshold : float
        The level the p-value is held to: ``alpha / P`` (Bonferroni).
    passed : bool
        ``p_value >= threshold``.
    bias_z, dispersion_z : float
        Shape scores, see :func:`shape_scores`.
    hint : str
        The shape in words (:func:`hint`); empty when no score reaches :data:`HINT_Z` and
        the test passed.
    """

    parameter: str
    replications: int
    draws: int
    bins: int
    statistic: float
    chi2_p_value: float
    p_value: float
    threshold: float
    passed: bool
    bias_z: float
    dispersion_z: float
    hint: str


class MethodRanks(NamedTuple):
    """SBC ranks of one method (or one amortized encoder) over N replications.

    Attributes
    ----------
    method : str
        Its name (``nuts``, ``auto_normal``, ``encoder``).
    parameters : tuple of str
        The P parameter names, in the columns' order.
    ranks : ndarray
        ``(N, P)`` int64 in ``0..draws``.
    draws : int
        L, posterior draws per replication.
    """

    method: str
    parameters: tuple[str, ...]
    ranks: np.ndarray
    draws: int

    def tests(self, alpha: float = ALPHA) -> tuple[RankTest, ...]:
        """:func:`rank_tests` of the columns, Bonferroni over the P parameters."""
        return rank_tests(self.ranks, self.draws, self.parameters, alpha)


def rank_of(
    truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Rank of each true value among the draws: how many draws lie below it.

    Parameters
    ----------
    truth : ndarray
        ``(*batch, P)`` true values.
    draws : ndarray
        ``(L, *batch, P)`` posterior draws.
    rng : numpy.random.Generator, optional
        Breaks ties (a draw equal to the truth) uniformly at random; without it a tie
        counts as not below.

    Returns
    -------
    ndarray
        ``(*batch, P)`` int64 in ``0..L``.
    """
    truth = np.asarray(truth)
    draws = np.asarray(draws)
    below = (draws < truth).sum(axis=0)
    if rng is not None:
        ties = (draws == truth).sum(axis=0)
        if ties.any():
            below = below + rng.integers(0, ties + 1)
    return below.astype(np.int64)


def bin_count(replications: int, draws: int) -> int:
    """B: as many bins as :data:`MIN_EXPECTED` replications each allow, between 2 and
    :data:`MAX_BINS`, and no more than the ``L + 1`` rank values."""
    return max(2, min(MAX_BINS, draws + 1, replications // MIN_EXPECTED))


def _bin_probabilities(draws: int, bins: int) -> np.ndarray:
    """``(B,)`` probability of each bin under the discrete uniform on ``0..L``."""
    values = np.arange(draws + 1)
    return np.bincount(values * bins // (draws + 1), minlength=bins) / (draws + 1)


def _check(ranks: np.ndarray, draws: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.shape[0] < MIN_REPLICATIONS:
        raise ValueError(
            f"expected (N,) ranks with N >= {MIN_REPLICATIONS}, got shape {ranks.shape}"
        )
    if ranks.min() < 0 or ranks.max() > draws:
        raise ValueError(f"ranks must lie in 0..{draws}, got {ranks.min()}..{ranks.max()}")
    return ranks.astype(np.int64)


def shape_scores(ranks: np.ndarray, draws: int) -> tuple[float, float]:
    """``(bias_z, dispersion_z)`` of ranks ``(N,)`` in ``0..L``.

    ``bias_z`` is the mean rank's z-score, ``dispersion_z`` that of the mean of
    ``|rank - L/2|``, each against the exact mean and variance of the discrete uniform on
    ``0..L`` over N independent replications.
    """
    ranks = _check(ranks, draws)
    n = ranks.shape[0]
    values = np.arange(draws + 1, dtype=np.float64)
    spread = np.abs(values - draws / 2)
    bias = (ranks.mean() - values.mean()) / math.sqrt(values.var() / n)
    distance = np.abs(ranks - draws / 2).mean()
    dispersion = (distance - spread.mean()) / math.sqrt(spread.var() / n)
    return float(bias), float(dispersion)


def hint(bias_z: float, dispersion_z: float, passed: bool = True) -> str:
    """The rank histogram's shape in words, for the scores beyond :data:`HINT_Z`."""
    words = []
    if dispersion_z > HINT_Z:
        words.append("U-shaped: q too narrow (under-dispersed, overconfident)")
    elif dispersion_z < -HINT_Z:
        words.append("inverted-U: q too wide (over-dispersed, underconfident)")
    if bias_z > HINT_Z:
        words.append("ranks high: q's draws lie below the truth (q biased low)")
    elif bias_z < -HINT_Z:
        words.append("ranks low: q's draws lie above the truth (q biased high)")
    if not words and not passed:
        words.append("non-uniform without a simple shape (see the ECDF figure)")
    return "; ".join(words)


def uniformity_test(
    ranks: np.ndarray, draws: int, parameter: str = "", threshold: float = ALPHA
) -> RankTest:
    """Test ranks ``(N,)`` against the discrete uniform on ``0..L`` (chi-square and the two
    shape z-tests, joined by Bonferroni).

    Parameters
    ----------
    ranks : ndarray
        ``(N,)`` integers in ``0..draws``, N >= :data:`MIN_REPLICATIONS`.
    draws : int
        L.
    parameter : str
        Name carried into the result.
    threshold : float
        The level the p-value is held to (already corrected for multiple testing).

    Returns
    -------
    RankTest
    """
    ranks = _check(ranks, draws)
    n = ranks.shape[0]
    bins = bin_count(n, draws)
    expected = n * _bin_probabilities(draws, bins)
    observed = np.bincount(ranks * bins // (draws + 1), minlength=bins)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    chi2_p = float(chi2.sf(statistic, bins - 1))
    bias_z, dispersion_z = shape_scores(ranks, draws)
    smallest = min(chi2_p, *(2 * float(norm.sf(abs(z))) for z in (bias_z, dispersion_z)))
    p_value = min(1.0, TESTS_PER_PARAMETER * smallest)
    passed = p_value >= threshold
    return RankTest(
        parameter,
        n,
        draws,
        bins,
        statistic,
        chi2_p,
        p_value,
        threshold,
        passed,
        bias_z,
        dispersion_z,
        hint(bias_z, dispersion_z, passed),
    )


def rank_tests(
    ranks: np.ndarray, draws: int, parameters: Sequence[str], alpha: float = ALPHA
) -> tuple[RankTest, ...]:
    """One :class:`RankTest` per column of ranks ``(N, P)``, each held to ``alpha / P``.

    Raises
    ------
    ValueError
        When the columns and ``parameters`` differ in number.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(parameters):
        raise ValueError(f"expected (N, {len(parameters)}) ranks, got shape {ranks.shape}")
    threshold = alpha / len(parameters)
    return tuple(
        uniformity_test(ranks[:, j], draws, name, threshold) for j, name in enumerate(parameters)
    )


def fractional_ranks(ranks: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(rank + U) / (L + 1)`` with U ~ Uniform(0, 1): exactly Uniform(0, 1) when the ranks
    are uniform on ``0..L``, so continuous ECDF bands apply. Same shape as ``ranks``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return (ranks + rng.random(ranks.shape)) / (draws + 1)
