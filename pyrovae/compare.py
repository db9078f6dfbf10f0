"""How far each method's posterior draws are from a reference, as tables and figures.

Other modules produce posterior draws (MCMC, mean-field and full-rank variational
fits, an amortized encoder); this module only measures them against a reference
sample (analytic, posteriordb or a long NUTS run) and renders the result. Every
input is a plain numpy array of flattened draws, shape ``(S, P)``, whose columns
are named by Stan-style parameter names (``"mu"``, ``"theta[1]"``, ...).

Metrics, all scale-free (in units of the reference's sample sd, ``ddof=1``):

- per parameter: the mean error ``(mean_m - mean_ref) / sd_ref``, the sd ratio
  ``sd_m / sd_ref`` and the 1-Wasserstein distance of the marginals over
  ``sd_ref``;
- per method, on all parameters jointly (columns standardised by the reference
  sd): the energy distance and the squared maximum mean discrepancy (MMD^2, Gaussian
  kernel), both unbiased U-statistics, so they are about 0 (and may be slightly
  negative) when the draws come from the reference distribution;
- for variational fits, the Pareto k-hat of PSIS (Vehtari et al., 2024).

Sampling noise is measured by the *noise floor*: every metric between two random
halves of the reference. A metric within the noise floor is never flagged.

Figures are built with :class:`matplotlib.figure.Figure` directly (never
``pyplot``), and each method keeps one colour in every figure
(:func:`method_colors`); the reference is always grey.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy.spatial.distance import cdist, pdist
from scipy.stats import gaussian_kde, wasserstein_distance

__all__ = [
    "DPI",
    "KHAT_THRESHOLD",
    "MAX_MARGINAL_PANELS",
    "MEAN_ERROR_FLAG",
    "METHOD_COLORS",
    "METHOD_COLUMNS",
    "REFERENCE_COLOR",
    "SD_RATIO_HIGH",
    "SD_RATIO_LOW",
    "SUMMARY_COLUMNS",
    "Comparison",
    "MethodResult",
    "compare",
    "energy_distance",
    "mean_error_sd",
    "method_colors",
    "mmd",
    "noise_floor",
    "plot_marginals",
    "plot_pairs",
    "psis_khat",
    "sd_ratio",
    "wasserstein1_sd",
]

# --- thresholds -------------------------------------------------------------------------------

KHAT_THRESHOLD = 0.7
"""Pareto k-hat above which importance sampling is unreliable and the approximation is
poor (Vehtari et al., 2024, "Pareto smoothed importance sampling", JMLR 25(72): beyond it
the PSIS estimate's error converges too slowly for any practical sample size)."""

SD_RATIO_LOW = 0.7
"""A fit whose sd ratio is below this on any parameter is flagged as underdispersed: its
central 90% interval (+-1.645 sd) then covers only ~75% of the reference's mass."""

SD_RATIO_HIGH = 1 / SD_RATIO_LOW
"""Flagged as overdispersed above this: the mirror of :data:`SD_RATIO_LOW` on a log scale."""

MEAN_ERROR_FLAG = 0.5
"""A mean error beyond this many reference sds is flagged: the fit's central 90% interval
then covers only ~86% of the reference's mass instead of 90%, and the error is far
above the Monte Carlo error of a few hundred effective draws (~0.05 sd)."""

MAX_NAMED_PARAMETERS = 3
"""A flag names at most this many parameters (the worst first), then counts the rest."""

NOISE_FLOOR_SPLITS = 5
"""Random half-splits of the reference behind :func:`noise_floor`; the maximum over five
splits lands, in the median, at the 87th percentile (0.5 ** (1/5)) of the metric's
sampling distribution, so an exact method rarely exceeds a small multiple of it."""

JOINT_MAX_POINTS = 2000
"""Draws per sample (a seeded subsample) in the energy distance and MMD^2 of
:func:`compare`: their cost grows as the square, and at 2000 draws their sampling
noise (~0.002 for a few parameters) is far below any difference worth reporting."""

MIN_SD = 1e-12
"""A reference column with a smaller sd is treated as having sd 1 (no rescaling),
so a constant parameter does not divide by zero."""

# --- figures ----------------------------------------------------------------------------------

DPI = 100
"""Dots per inch of every saved PNG."""

MAX_MARGINAL_PANELS = 12
"""Parameters drawn by :func:`plot_marginals` (the first ones); more panels get too small."""

MARGINAL_COLUMNS = 4
"""Panels per row in :func:`plot_marginals`."""

KDE_POINTS = 2000
"""Draws (a seeded subsample) per density estimate in the figures; enough for a smooth line."""

SCATTER_POINTS = 400
"""Draws (a seeded subsample) per method in each scatter panel; more hide each other."""

MAX_HIST_BINS = 40
"""Most bins of the reference histogram; fewer for small references (Rice rule,
``2 R^(1/3)``, at least 10) so a few hundred draws do not give a ragged outline."""

GRID_POINTS = 200
"""Grid points on which each marginal density line is evaluated."""

LEGEND_ENTRY_INCHES = 1.9
"""Width given to each legend entry: the legend, below the panels, gets
``figure width / LEGEND_ENTRY_INCHES`` entries per row."""

CONTOUR_MASSES = (0.9, 0.5)
"""Probability mass inside the density contours of :func:`plot_pairs` (outer, inner)."""

CONTOUR_POINTS = 800
"""Draws (a seeded subsample) per 2-D density estimate; fewer make wobbly contours."""

CONTOUR_GRID = 50
"""Grid points per axis on which each 2-D density is evaluated for the contours."""

REFERENCE_COLOR = "0.6"
"""The reference is always drawn in grey (filled)."""

METHOD_COLORS: dict[str, str] = {
    "nuts": "tab:blue",
    "metropolis": "tab:purple",
    "auto_normal": "tab:orange",
    "auto_mvn": "tab:green",
    "auto_lowrank_mvn": "tab:olive",
    "auto_iaf": "tab:pink",
    "amortized": "tab:red",
}
"""Fixed colour of each known method, the same in every figure; other names get a
deterministic colour from ``tab10`` (see :func:`method_colors`)."""

SUMMARY_COLUMNS = ("method", "parameter", "mean", "sd", "mean_error_sd", "sd_ratio", "w1_sd", "ess")
"""Columns of ``summary.csv`` (keys of :attr:`Comparison.summary`)."""

METHOD_COLUMNS = (
    "method",
    "n_draws",
    "energy",
    "mmd",
    "max_abs_mean_error_sd",
    "min_sd_ratio",
    "max_sd_ratio",
    "max_w1_sd",
    "khat",
    "khat_ok",
    "khats",
    "seconds",
    "ess_min",
    "ess_per_second",
    "elbo",
    "log_evidence_estimate",
    "log_evidence_error",
    "flagged",
)
"""Columns of ``methods.csv`` (keys of :attr:`Comparison.method_rows`)."""

FLOOR_KEYS = ("energy", "mmd", "max_abs_mean_error_sd", "max_abs_log_sd_ratio", "max_w1_sd")
"""Keys of :func:`noise_floor`'s result."""


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MethodResult:
    """Posterior draws of one inference method, with what the method reports about itself.

    Parameters
    ----------
    method : str
        Name shown in tables and legends (``"nuts"``, ``"auto_normal"``, ...).
    draws : (S, P) array
        Flattened posterior draws, columns in the comparison's parameter order.
    seconds : float
        Wall time to produce the draws (fit plus sampling); NaN when unknown.
    ess : (P,) array or None
        Bulk effective sample size of each parameter, for MCMC methods.
    khat : float or None
        PSIS k-hat of a variational fit, the worst over seeds; defaults to
        ``max(khats)`` when only ``khats`` is given.
    khats : tuple of float
        k-hat of each seed.
    elbo : float or None
        Evidence lower bound in nats, for variational fits.
    log_evidence_estimate : float or None
        An estimate of log p(y) in nats (e.g. importance sampled).
    """

    method: str
    draws: np.ndarray
    seconds: float = math.nan
    ess: np.ndarray | None = None
    khat: float | None = None
    khats: tuple[float, ...] = ()
    elbo: float | None = None
    log_evidence_estimate: float | None = None

    def __post_init__(self) -> None:
        draws = _as_draws(self.draws, f"draws of {self.method!r}")
        object.__setattr__(self, "draws", draws)
        object.__setattr__(self, "khats", tuple(float(k) for k in self.khats))
        if self.khat is None and self.khats:
            object.__setattr__(self, "khat", max(self.khats))
        if self.ess is not None:
            ess = np.asarray(self.ess, dtype=float).reshape(-1)
            if ess.shape != (draws.shape[1],):
                raise ValueError(
                    f"ess of {self.method!r} has shape {ess.shape}, expected ({draws.shape[1]},)"
                )
            object.__setattr__(self, "ess", ess)


def _as_draws(values: Any, what: str) -> np.ndarray:
    """``values`` as a finite ``(S, P)`` float array with ``S >= 2``; 1-D input is one column."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{what} must have shape (S, P) with S >= 2, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain {int(np.sum(~np.isfinite(array)))} non-finite values")
    return array


def _sd(draws: np.ndarray) -> np.ndarray:
    """``(P,)`` sample sd (``ddof=1``) of ``(S, P)`` draws."""
    return draws.std(axis=0, ddof=1)


def _scale(reference: np.ndarray) -> np.ndarray:
    """``(P,)`` reference sd, with 1 in place of (near) zero so it can divide."""
    sd = _sd(reference)
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
    return _sd(draws) / _scale(reference)


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


def _abs_log(ratio: float) -> float:
    """``|log ratio|``, infinite for a ratio of 0 (a constant column)."""
    return abs(math.log(ratio)) if ratio > 0 else math.inf


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as ``(n, P)`` arrays with the same ``P``."""
    x, y = _as_draws(x, "draws"), _as_draws(y, "reference")
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
    return _subsample(x, max_points, rng) / scale, _subsample(y, max_points, rng) / scale


def _subsample(draws: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
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
    return _energy(_Distances.of(x, y, max_points, seed))


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


def _energy(d: _Distances) -> float:
    """Energy distance U-statistic from the distances (``i = j`` pairs excluded)."""
    return float(2.0 * d.xy.mean() - d.xx.mean() - d.yy.mean())


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
    distances = _Distances.of(draws, reference, JOINT_MAX_POINTS, seed)
    return {
        "energy": _energy(distances),
        "mmd": _mmd(distances, None),
        "max_abs_mean_error_sd": float(np.max(np.abs(mean_error_sd(draws, reference)))),
        "max_abs_log_sd_ratio": max(_abs_log(r) for r in sd_ratio(draws, reference)),
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
    reference = _as_draws(reference, "reference")
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


# --- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Comparison:
    """Every method measured against one reference; see :func:`compare`.

    Parameters
    ----------
    reference_name : str
        Where the reference came from: ``"analytic"``, ``"posteriordb"``, ...
    parameters : tuple of str
        ``P`` column names.
    reference : (R, P) array
        Reference draws.
    methods : tuple of MethodResult
        In the order given (tables and legends keep it).
    log_evidence : float or None
        Exact log p(y) in nats, where known.
    summary : list of dict
        One row per (method, parameter), keys :data:`SUMMARY_COLUMNS`.
    method_rows : list of dict
        One row per method, keys :data:`METHOD_COLUMNS`; ``flagged`` is a list of
        problems as text (empty when none).
    noise_floor : dict
        :func:`noise_floor` of the reference.
    """

    reference_name: str
    parameters: tuple[str, ...]
    reference: np.ndarray
    methods: tuple[MethodResult, ...]
    log_evidence: float | None
    summary: list[dict] = field(default_factory=list)
    method_rows: list[dict] = field(default_factory=list)
    noise_floor: dict[str, float] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """Methods table, then the per-parameter table, with units and flagged problems."""
        return _markdown(self)

    def write(self, folder: Path | str) -> dict[str, Path]:
        """Write ``summary.csv``, ``methods.csv``, ``comparison.md`` and two figures.

        Parameters
        ----------
        folder : path
            Created if missing; figures go to ``folder/figures/``.

        Returns
        -------
        dict
            Path of each file, keyed ``summary``, ``methods``, ``markdown``,
            ``marginals`` and ``pairs``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "summary": _write_csv(folder / "summary.csv", SUMMARY_COLUMNS, self.summary),
            "methods": _write_csv(folder / "methods.csv", METHOD_COLUMNS, self.method_rows),
            "marginals": plot_marginals(self, folder / "figures" / "marginals.png"),
            "pairs": plot_pairs(self, folder / "figures" / "pairs.png"),
        }
        markdown = folder / "comparison.md"
        markdown.write_text(self.to_markdown(), encoding="utf-8")
        paths["markdown"] = markdown
        return paths


def compare(
    reference: Any,
    parameters: Sequence[str],
    methods: Iterable[MethodResult],
    *,
    reference_name: str,
    log_evidence: float | None = None,
    seed: int = 0,
) -> Comparison:
    """Measure each method's draws against the reference and flag clear problems.

    A method is flagged when its k-hat exceeds :data:`KHAT_THRESHOLD`, its sd ratio
    on some parameter falls below :data:`SD_RATIO_LOW` (underdispersed) or above
    :data:`SD_RATIO_HIGH` (overdispersed), or its mean error exceeds
    :data:`MEAN_ERROR_FLAG` reference sds; a value within the reference's noise floor
    is never flagged.

    Parameters
    ----------
    reference : (R, P) array
        Reference draws, ``R >= 4``.
    parameters : sequence of str
        ``P`` column names.
    methods : iterable of MethodResult
        Each with ``(S, P)`` draws in the same column order.
    reference_name : str
        Where the reference came from, shown in tables and legends.
    log_evidence : float or None
        Exact log p(y), to compare with each method's ``log_evidence_estimate``.
    seed : int
        Seed of every shuffle and subsample.

    Returns
    -------
    Comparison
    """
    reference = _as_draws(reference, "reference")
    parameters = tuple(str(p) for p in parameters)
    if len(parameters) != reference.shape[1]:
        raise ValueError(
            f"{len(parameters)} parameter names for a reference with {reference.shape[1]} columns"
        )
    methods = tuple(methods)
    for result in methods:
        if result.draws.shape[1] != reference.shape[1]:
            raise ValueError(
                f"{result.method!r} has {result.draws.shape[1]} parameters, "
                f"the reference {reference.shape[1]}"
            )
    floor = noise_floor(reference, seed=seed)
    summary: list[dict] = []
    method_rows: list[dict] = []
    for result in methods:
        rows = _summary_rows(result, reference, parameters)
        summary.extend(rows)
        method_rows.append(_method_row(result, reference, rows, floor, log_evidence, seed))
    return Comparison(
        reference_name=reference_name,
        parameters=parameters,
        reference=reference,
        methods=methods,
        log_evidence=log_evidence,
        summary=summary,
        method_rows=method_rows,
        noise_floor=floor,
    )


def _summary_rows(
    result: MethodResult, reference: np.ndarray, parameters: tuple[str, ...]
) -> list[dict]:
    """One row per parameter of one method (keys :data:`SUMMARY_COLUMNS`)."""
    draws = result.draws
    columns = {
        "mean": draws.mean(axis=0),
        "sd": _sd(draws),
        "mean_error_sd": mean_error_sd(draws, reference),
        "sd_ratio": sd_ratio(draws, reference),
        "w1_sd": wasserstein1_sd(draws, reference),
    }
    rows = []
    for p, name in enumerate(parameters):
        row: dict[str, Any] = {"method": result.method, "parameter": name}
        row.update({key: float(values[p]) for key, values in columns.items()})
        row["ess"] = None if result.ess is None else float(result.ess[p])
        rows.append(row)
    return rows


def _method_row(
    result: MethodResult,
    reference: np.ndarray,
    rows: list[dict],
    floor: dict[str, float],
    log_evidence: float | None,
    seed: int,
) -> dict:
    """One row of :attr:`Comparison.method_rows` (keys :data:`METHOD_COLUMNS`)."""
    ratios = np.array([row["sd_ratio"] for row in rows])
    errors = np.array([row["mean_error_sd"] for row in rows])
    ess_min = None if result.ess is None else float(np.min(result.ess))
    estimate = result.log_evidence_estimate
    distances = _Distances.of(result.draws, reference, JOINT_MAX_POINTS, seed)
    return {
        "method": result.method,
        "n_draws": int(result.draws.shape[0]),
        "energy": _energy(distances),
        "mmd": _mmd(distances, None),
        "max_abs_mean_error_sd": float(np.max(np.abs(errors))),
        "min_sd_ratio": float(np.min(ratios)),
        "max_sd_ratio": float(np.max(ratios)),
        "max_w1_sd": float(max(row["w1_sd"] for row in rows)),
        "khat": result.khat,
        "khat_ok": None if result.khat is None else bool(result.khat <= KHAT_THRESHOLD),
        "khats": list(result.khats),
        "seconds": result.seconds,
        "ess_min": ess_min,
        "ess_per_second": _per_second(ess_min, result.seconds),
        "elbo": result.elbo,
        "log_evidence_estimate": estimate,
        "log_evidence_error": (
            None if estimate is None or log_evidence is None else estimate - log_evidence
        ),
        "flagged": _flags(result, rows, floor),
    }


def _per_second(count: float | None, seconds: float) -> float | None:
    """``count / seconds``, or None when either is unknown or the time is not positive."""
    if count is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return count / seconds


def _flags(result: MethodResult, rows: list[dict], floor: dict[str, float]) -> list[str]:
    """Problems of one method as text, each saying which value crossed which threshold."""
    flags = []
    if result.khat is not None and result.khat > KHAT_THRESHOLD:
        seeds = f" (worst of {len(result.khats)} seeds)" if len(result.khats) > 1 else ""
        flags.append(f"k-hat {result.khat:.2g} > {KHAT_THRESHOLD}{seeds}")
    log_floor = floor["max_abs_log_sd_ratio"]
    beyond = [r for r in rows if _abs_log(r["sd_ratio"]) > log_floor]
    low = [r for r in beyond if r["sd_ratio"] < SD_RATIO_LOW]
    high = [r for r in beyond if r["sd_ratio"] > SD_RATIO_HIGH]
    off = [
        r
        for r in rows
        if abs(r["mean_error_sd"]) > max(MEAN_ERROR_FLAG, floor["max_abs_mean_error_sd"])
    ]
    if low:
        low.sort(key=lambda r: r["sd_ratio"])
        flags.append(_flag_text("underdispersed: sd ratio", f"< {SD_RATIO_LOW}", low, "sd_ratio"))
    if high:
        high.sort(key=lambda r: -r["sd_ratio"])
        flags.append(
            _flag_text("overdispersed: sd ratio", f"> {SD_RATIO_HIGH:.2f}", high, "sd_ratio")
        )
    if off:
        off.sort(key=lambda r: -abs(r["mean_error_sd"]))
        text = f"(|error| > {MEAN_ERROR_FLAG} reference sd)"
        flags.append(_flag_text("mean error", text, off, "mean_error_sd"))
    return flags


def _flag_text(prefix: str, threshold: str, rows: list[dict], key: str) -> str:
    """``"<prefix> 0.42 <threshold> on beta[2], 0.55 on beta[1] and 3 more parameters"``."""
    named = rows[:MAX_NAMED_PARAMETERS]
    first, *rest = named
    parts = [f"{prefix} {first[key]:.2g} {threshold} on {first['parameter']}"]
    parts += [f"{row[key]:.2g} on {row['parameter']}" for row in rest]
    text = ", ".join(parts)
    if len(rows) > len(named):
        text += f" and {len(rows) - len(named)} more parameters"
    return text


# --- tables -----------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    """True for None and NaN: a figure that does not apply or is unknown."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _csv_cell(value: Any) -> str:
    """A CSV cell: empty where the figure does not apply, lists joined by ``"; "``."""
    if _is_missing(value):
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(_csv_cell(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> Path:
    """Write ``rows`` with a header of ``columns``; missing values as empty cells."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    """A markdown cell: ``digits`` significant figures, an en dash where it does not apply."""
    if _is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


_METHOD_TABLE = (
    ("method", "method"),
    ("draws", "n_draws"),
    ("energy", "energy"),
    ("MMD²", "mmd"),
    ("max abs mean error (sd)", "max_abs_mean_error_sd"),
    ("sd ratio min–max", None),
    ("max W1 (sd)", "max_w1_sd"),
    ("k-hat", "khat"),
    ("seconds", "seconds"),
    ("min ESS / s", "ess_per_second"),
    ("ELBO (nats)", "elbo"),
    ("log p(y) estimate (nats)", "log_evidence_estimate"),
    ("estimate − exact log p(y)", "log_evidence_error"),
)

_UNITS = """\
Units: *mean error* is (mean − reference mean) / reference sd; *sd ratio* is sd / reference sd
(1 is exact, below 1 too narrow); *W1* is the 1-Wasserstein distance between the marginals in
reference sds; *energy* is the energy distance and *MMD²* the squared maximum mean discrepancy
(Gaussian kernel, median-heuristic width), both on all parameters jointly with columns divided by
the reference sd (dimensionless; 0 is the same distribution, tiny negative values are sampling
noise); *k-hat* is the PSIS Pareto k of the fit (above {khat} importance sampling is unreliable);
*min ESS / s* is the smallest bulk effective sample size over parameters per second of wall time.
The *noise floor* row is the largest value between two random halves of the reference over
{splits} splits: values of that size are sampling noise.
Flag thresholds: sd ratio < {low} or > {high:.2f}, |mean error| > {mean} sd, k-hat > {khat};
values within the noise floor are not flagged."""


def _markdown(comparison: Comparison) -> str:
    """The comparison as markdown: heading, units, methods table, flags, summary table."""
    lines = [
        f"## Comparison with the {comparison.reference_name} reference",
        "",
        f"{comparison.reference.shape[0]} reference draws of {len(comparison.parameters)} "
        f"parameters; methods: {', '.join(m.method for m in comparison.methods) or 'none'}.",
    ]
    if comparison.log_evidence is not None:
        lines.append(f"Exact log p(y) = {comparison.log_evidence:.6g} nats.")
    lines += [
        "",
        _UNITS.format(
            khat=KHAT_THRESHOLD,
            low=SD_RATIO_LOW,
            high=SD_RATIO_HIGH,
            mean=MEAN_ERROR_FLAG,
            splits=NOISE_FLOOR_SPLITS,
        ),
        "",
        "### Methods",
        "",
    ]
    columns = _method_table_columns(comparison)
    lines += _table([title for title, _ in columns], _method_table_rows(comparison, columns))
    lines += ["", "### Flagged problems", ""]
    flagged = [(row["method"], f) for row in comparison.method_rows for f in row["flagged"]]
    lines += [f"- **{method}**: {text}" for method, text in flagged] or ["None."]
    lines += ["", "### Per parameter", ""]
    header = ["parameter", "method", "mean", "sd", "mean error (sd)", "sd ratio", "W1 (sd)"]
    lines += _table(header, _summary_table_rows(comparison))
    return "\n".join(lines) + "\n"


def _method_table_columns(comparison: Comparison) -> tuple[tuple[str, str | None], ...]:
    """Columns of the methods table; the log p(y) error only where the exact value is known."""
    if comparison.log_evidence is not None:
        return _METHOD_TABLE
    return tuple(c for c in _METHOD_TABLE if c[1] != "log_evidence_error")


def _method_table_rows(
    comparison: Comparison, columns: tuple[tuple[str, str | None], ...]
) -> list[list[str]]:
    """The noise-floor row, then one row per method in the given order."""
    floor = comparison.noise_floor
    ratio = math.exp(floor["max_abs_log_sd_ratio"])
    first = ["noise floor (reference halves)", str(comparison.reference.shape[0] // 2)]
    first += [_fmt(floor["energy"]), _fmt(floor["mmd"]), _fmt(floor["max_abs_mean_error_sd"])]
    first += [f"{1 / ratio:.3g}–{ratio:.3g}", _fmt(floor["max_w1_sd"])]
    rows = [first + ["–"] * (len(columns) - len(first))]
    for row in comparison.method_rows:
        cells = []
        for _, key in columns:
            if key is None:
                cells.append(f"{row['min_sd_ratio']:.3g}–{row['max_sd_ratio']:.3g}")
            elif key == "method" and row["flagged"]:
                cells.append(f"{row['method']} ⚠")
            else:
                cells.append(_fmt(row[key]))
        rows.append(cells)
    return rows


def _summary_table_rows(comparison: Comparison) -> list[list[str]]:
    """For each parameter, the reference row first, then each method in the given order."""
    reference = comparison.reference
    means, sds = reference.mean(axis=0), _sd(reference)
    by_key = {(row["method"], row["parameter"]): row for row in comparison.summary}
    rows = []
    for p, name in enumerate(comparison.parameters):
        reference_cells = [_fmt(float(means[p])), _fmt(float(sds[p])), "0", "1", "0"]
        rows.append([name, f"*{comparison.reference_name}*", *reference_cells])
        for result in comparison.methods:
            row = by_key[(result.method, name)]
            keys = ("mean", "sd", "mean_error_sd", "sd_ratio", "w1_sd")
            rows.append([name, result.method, *(_fmt(row[k]) for k in keys)])
    return rows


# --- figures ----------------------------------------------------------------------------------


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Colour of each method: :data:`METHOD_COLORS` where listed, else a ``tab10`` colour.

    An unlisted name starts at a ``tab10`` colour chosen by a CRC-32 of the name (stable
    across runs and machines) among those :data:`METHOD_COLORS` does not use, and
    steps on to the next colour not yet taken in this figure. Grey is never used (it
    is the reference's).

    Parameters
    ----------
    methods : sequence of str
        Method names, in legend order.

    Returns
    -------
    dict
        Name -> hex colour.
    """
    palette = [to_hex(c) for c in colormaps["tab10"].colors]
    gray = to_hex("tab:gray")
    known = {name: to_hex(color) for name, color in METHOD_COLORS.items()}
    spare = [c for c in palette if c != gray and c not in known.values()]
    spare += [c for c in palette if c != gray and c in known.values()]
    colors = {name: known[name] for name in methods if name in known}
    for name in methods:
        if name in colors:
            continue
        start = zlib.crc32(name.encode("utf-8")) % len(spare)
        order = spare[start:] + spare[:start]
        taken = set(colors.values())
        colors[name] = next((c for c in order if c not in taken), order[0])
    return colors


def _method_names(comparison: Comparison) -> list[str]:
    return [m.method for m in comparison.methods]


def _figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, laid out with constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path | str) -> Path:
    """Save ``fig`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _limits(columns: Sequence[np.ndarray]) -> tuple[float, float]:
    """Axis range covering the central 99% of every sample, padded by 5%."""
    lo = min(float(np.quantile(c, 0.005)) for c in columns)
    hi = max(float(np.quantile(c, 0.995)) for c in columns)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _density(values: np.ndarray, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Gaussian KDE of (a subsample of) ``values`` on ``grid``; None when they are constant."""
    values = _subsample(values[:, None], KDE_POINTS, rng)[:, 0]
    if np.ptp(values) <= MIN_SD:
        return None
    return gaussian_kde(values)(grid)


def _draw_marginal(
    ax: Axes,
    comparison: Comparison,
    p: int,
    colors: dict[str, str],
    rng: np.random.Generator,
    limits: tuple[float, float] | None = None,
) -> None:
    """Reference (filled grey histogram) and each method (KDE line) of parameter ``p``.

    The x range is ``limits``, or the central 99% of every sample when None.
    """
    columns = [comparison.reference[:, p]] + [m.draws[:, p] for m in comparison.methods]
    lo, hi = _limits(columns) if limits is None else limits
    grid = np.linspace(lo, hi, GRID_POINTS)
    ax.hist(
        columns[0],
        bins=int(np.clip(2 * len(columns[0]) ** (1 / 3), 10, MAX_HIST_BINS)),
        range=(lo, hi),
        density=True,
        histtype="stepfilled",
        color=REFERENCE_COLOR,
        alpha=0.6,
    )
    for result, column in zip(comparison.methods, columns[1:], strict=True):
        color = colors[result.method]
        density = _density(column, grid, rng)
        if density is None:
            ax.axvline(float(column[0]), color=color, lw=1.6)
        else:
            ax.plot(grid, density, color=color, lw=1.6)
    ax.set_xlim(lo, hi)


def _legend_handles(comparison: Comparison, colors: dict[str, str]) -> list[Any]:
    """Reference patch, then one line per method."""
    handles: list[Any] = [
        Patch(color=REFERENCE_COLOR, alpha=0.6, label=f"reference ({comparison.reference_name})")
    ]
    handles += [Line2D([], [], color=colors[n], lw=2, label=n) for n in _method_names(comparison)]
    return handles


def _finish(fig: Figure, comparison: Comparison, colors: dict[str, str], title: str) -> None:
    """Title above the panels and the legend (drawn once) below them."""
    fig.suptitle(title, fontsize=12)
    handles = _legend_handles(comparison, colors)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=max(1, min(len(handles), int(fig.get_figwidth() / LEGEND_ENTRY_INCHES))),
        fontsize=9,
        frameon=False,
    )


def _first_of(title: str, shown: int, total: int) -> str:
    """``title``, with ``" (first 12 of 30 parameters)"`` when not every parameter is shown."""
    return title if shown >= total else f"{title} (first {shown} of {total} parameters)"


def plot_marginals(comparison: Comparison, path: Path | str) -> Path:
    """One panel per parameter (the first :data:`MAX_MARGINAL_PANELS`): reference and methods.

    The reference is a filled grey histogram, each method a KDE line in its colour
    (:func:`method_colors`); the legend is drawn once, below the panels.

    Parameters
    ----------
    comparison : Comparison
    path : path
        PNG to write; parent folders are created.

    Returns
    -------
    Path
    """
    n_params = len(comparison.parameters)
    shown = min(n_params, MAX_MARGINAL_PANELS)
    ncols = min(MARGINAL_COLUMNS, shown)
    nrows = math.ceil(shown / ncols)
    fig = _figure(max(3.0 * ncols, 6.0), 2.3 * nrows + 1.1)
    colors = method_colors(_method_names(comparison))
    rng = np.random.default_rng(0)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= shown:
            ax.set_axis_off()
            continue
        _draw_marginal(ax, comparison, index, colors, rng)
        ax.set_title(comparison.parameters[index], fontsize=10)
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
    _finish(fig, comparison, colors, _first_of("Posterior marginals", shown, n_params))
    return _save(fig, path)


def plot_pairs(comparison: Comparison, path: Path | str, max_parameters: int = 4) -> Path:
    """Pair plot of the first ``max_parameters`` parameters.

    Below the diagonal: scatter of a seeded subsample (:data:`SCATTER_POINTS`) of the
    reference draws in grey and of each method's draws in its colour. On the diagonal:
    the marginals as in :func:`plot_marginals`. Above the diagonal, the same pairs
    transposed as density contours, easier to read where the clouds overlap: the
    reference's 50% and 90% highest-density regions filled grey, each method's as
    lines (solid 50%, dashed 90%).

    Parameters
    ----------
    comparison : Comparison
    path : path
        PNG to write; parent folders are created.
    max_parameters : int
        At most this many parameters (the first ones).

    Returns
    -------
    Path
    """
    n_params = len(comparison.parameters)
    k = max(1, min(max_parameters, n_params))
    size = max(2.4 * k, 6.0)
    fig = _figure(size, size + 0.8)
    colors = method_colors(_method_names(comparison))
    rng = np.random.default_rng(0)
    axes = fig.subplots(k, k, squeeze=False)
    samples = [(REFERENCE_COLOR, comparison.reference)]
    samples += [(colors[m.method], m.draws) for m in comparison.methods]
    dense = [(c, _subsample(d[:, :k], CONTOUR_POINTS, rng)) for c, d in samples]
    sparse = [(c, _subsample(d, SCATTER_POINTS, rng)) for c, d in dense]
    limits = [_limits([d[:, p] for _, d in dense]) for p in range(k)]
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                _draw_marginal(ax, comparison, i, colors, rng, limits[i])
                ax.set_yticks([])
            else:
                if j < i:
                    _draw_scatter(ax, sparse, j, i)
                else:
                    _draw_contours(ax, dense, j, i)
                ax.set_xlim(limits[j])
                ax.set_ylim(limits[i])
            _label_pair_axes(ax, comparison.parameters, i, j, k)
    title = _first_of("Pairs", k, n_params)
    _finish(fig, comparison, colors, f"{title}\n{_PAIRS_KEY}")
    return _save(fig, path)


_PAIRS_KEY = "below the diagonal: draws; above: 50% (solid), 90% (dashed) contours"


def _draw_scatter(ax: Axes, samples: list[tuple[str, np.ndarray]], x: int, y: int) -> None:
    """Column ``x`` against column ``y`` of each sample, the reference (first) underneath."""
    for index, (color, draws) in enumerate(samples):
        size, alpha = (6, 0.5) if index == 0 else (4, 0.45)
        ax.scatter(draws[:, x], draws[:, y], s=size, color=color, alpha=alpha, lw=0)


def _draw_contours(ax: Axes, samples: list[tuple[str, np.ndarray]], x: int, y: int) -> None:
    """50% and 90% highest-density contours of each sample's ``(x, y)`` KDE."""
    for index, (color, draws) in enumerate(samples):
        points = draws[:, [x, y]]
        contour = _kde_contour(points)
        if contour is None:
            continue
        gx, gy, density, levels = contour
        if index == 0:
            fills = ("0.88", "0.7")
            ax.contourf(gx, gy, density, levels=[*levels, np.inf], colors=fills)
        else:
            ax.contour(
                gx, gy, density, levels=levels, colors=color, linestyles=("--", "-"), linewidths=1.4
            )


def _kde_contour(
    points: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]] | None:
    """2-D KDE of ``(n, 2)`` points on a grid, with its highest-density levels.

    Returns ``(x grid (G,), y grid (G,), density (G, G), levels)``, the levels (increasing)
    enclosing the masses :data:`CONTOUR_MASSES` of the gridded density; None when the
    points are degenerate (constant or on a line).
    """
    try:
        kde = gaussian_kde(points.T)
    except np.linalg.LinAlgError:
        return None
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.25 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], CONTOUR_GRID)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], CONTOUR_GRID)
    mesh_x, mesh_y = np.meshgrid(gx, gy)
    density = kde(np.vstack([mesh_x.ravel(), mesh_y.ravel()])).reshape(mesh_x.shape)
    levels = _mass_levels(density)
    return (gx, gy, density, levels) if levels[0] < levels[1] else None


def _mass_levels(density: np.ndarray) -> list[float]:
    """Density values whose superlevel sets hold :data:`CONTOUR_MASSES` of a gridded density."""
    values = np.sort(density.ravel())[::-1]
    mass = np.cumsum(values) / values.sum()
    return [float(values[min(np.searchsorted(mass, m), values.size - 1)]) for m in CONTOUR_MASSES]


def _label_pair_axes(ax: Axes, names: Sequence[str], i: int, j: int, k: int) -> None:
    """Parameter names on the outer edges only; inner tick labels hidden."""
    ax.tick_params(labelsize=8)
    if i == k - 1:
        ax.set_xlabel(names[j], fontsize=10)
    else:
        ax.tick_params(labelbottom=False)
    if j == 0 and i > 0:
        ax.set_ylabel(names[i], fontsize=10)
    elif j > 0:
        ax.tick_params(labelleft=False)
