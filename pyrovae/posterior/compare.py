"""How far each method's posterior draws are from a reference, as tables and figures.

Other modules produce posterior draws (MCMC, mean-field and full-rank variational
fits, an amortized encoder); this module only measures them against a reference
sample (analytic, posteriordb or a long NUTS run) and reports the result. Every
input is a plain numpy array of flattened draws, shape ``(S, P)``, whose columns
are named by Stan-style parameter names (``"mu"``, ``"theta[1]"``, ...).

:func:`compare` takes the reference and one :class:`MethodResult` per method and
returns a :class:`Comparison`: per parameter, the mean error, sd ratio and
1-Wasserstein distance in reference sds; per method, the joint energy distance and
MMD^2, the PSIS k-hat of variational fits, timings and effective sample sizes, and
the problems flagged (k-hat above :data:`KHAT_THRESHOLD`, sd ratio outside
[:data:`SD_RATIO_LOW`, :data:`SD_RATIO_HIGH`], mean error beyond
:data:`MEAN_ERROR_FLAG` reference sds; a value within the reference's noise floor
is never flagged). :meth:`Comparison.write` saves it as CSV, markdown and figures.

The metrics themselves live in :mod:`pyrovae.posterior.distances` and the figures in
:mod:`pyrovae.posterior.plots`; their public names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pyrovae.posterior.distances import (
    KHAT_THRESHOLD,
    NOISE_FLOOR_SPLITS,
    abs_log,
    as_draws,
    column_sd,
    energy_distance,
    mean_error_sd,
    mmd,
    noise_floor,
    psis_khat,
    sd_ratio,
    wasserstein1_sd,
)
from pyrovae.posterior.plots import (
    DPI,
    MAX_MARGINAL_PANELS,
    METHOD_COLORS,
    REFERENCE_COLOR,
    method_colors,
    plot_marginals,
    plot_pairs,
)
from pyrovae.posterior.tables import fmt, markdown_table, write_csv

if TYPE_CHECKING:
    import arviz as az

    from pyrovae.posterior.inference.sampler_notes import SamplerNotes
    from pyrovae.posterior.inference.variational import Convergence

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
    "VERDICTS",
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

# --- columns ----------------------------------------------------------------------------------

_FIT_COLUMNS = (
    "converged",
    "fits_converged",
    "fit_steps",
    "offset_sd",
    "elbo_gap_laplace",
    "grad_norm",
    "convergence",
)
"""The columns of ``methods.csv`` that say how a variational fit ended."""

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
    "mass",
    "treedepth_hits",
    "elbo",
    "log_evidence_estimate",
    "log_evidence_error",
    *_FIT_COLUMNS,
    "verdict",
    "flagged",
)
"""Columns of ``methods.csv`` (keys of :attr:`Comparison.method_rows`)."""

VERDICTS = {
    "ok": "nothing flagged",
    "not converged": "the variational fit stopped before its family's optimum: its errors "
    "may be the unfinished fit's, not the family's",
    "family limit": "the fit converged, so what is flagged is what its family cannot "
    "represent of this posterior",
    "flagged": "a method without a fit of its own to judge (an MCMC sampler, a VAE's "
    "amortized encoder) has a flagged problem",
    "failed": "the method raised an error and returned no draws",
    "stopped": "the method was stopped before it finished (a time limit or Ctrl-C) or "
    "not started, and returned no draws",
}
"""The ``verdict`` column of ``methods.csv``: which kind of answer a method's row is."""


STOPPED_NOTE = (
    "These methods did not finish (a time limit or Ctrl-C) and are left out of every "
    "table above; the finished ones are complete. Rerun with a larger --time-limit or "
    "--method-time-limit, or with only these methods (--methods)."
)
"""What ``comparison.md`` says above its list of stopped methods."""


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
        Effective sample size of each parameter, for MCMC methods: ArviZ's
        rank-normalised bulk ESS (``arviz.ess(method="bulk")`` over the chains, as
        :attr:`~pyrovae.posterior.inference.mcmc.McmcResult.ess` computes it), the
        ``ess_bulk`` of ``arviz_summary.csv``; methods.csv's ``ess_min`` is its minimum
        and ``ess_per_second`` that minimum per second of ``seconds``.
    khat : float or None
        PSIS k-hat of a variational fit, the worst over seeds; defaults to
        ``max(khats)`` when only ``khats`` is given.
    khats : tuple of float
        k-hat of each seed.
    elbo : float or None
        Evidence lower bound in nats, for variational fits.
    log_evidence_estimate : float or None
        An estimate of log p(y) in nats (e.g. importance sampled).
    posterior : arviz.InferenceData or None
        The same draws with everything the method knows about them (MCMC chains and
        sample_stats, pointwise log-likelihood, ...), as :mod:`pyrovae.posterior.diagnostics`
        builds it; ``None`` when the draws are all there is. Only carried here: the
        metrics of this module use ``draws``.
    convergence : Convergence or None
        How a variational method's fits ended
        (:class:`~pyrovae.posterior.inference.variational.Convergence`); ``None`` for
        methods without an optimizer.
    sampler : SamplerNotes or None
        An MCMC method's mass matrix, start and maximum-tree-depth count
        (:class:`~pyrovae.posterior.inference.sampler_notes.SamplerNotes`); its warnings
        are flagged. ``None`` for other methods.
    """

    method: str
    draws: np.ndarray
    seconds: float = math.nan
    ess: np.ndarray | None = None
    khat: float | None = None
    khats: tuple[float, ...] = ()
    elbo: float | None = None
    log_evidence_estimate: float | None = None
    posterior: az.InferenceData | None = None
    convergence: Convergence | None = None
    sampler: SamplerNotes | None = None

    def __post_init__(self) -> None:
        draws = as_draws(self.draws, f"draws of {self.method!r}")
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
    reference_posterior : arviz.InferenceData or None
        The reference as InferenceData with what is known beyond its draws (a long
        NUTS run's chains and sample_stats, a log-likelihood), where the caller has it.
    failed : dict
        method -> one-line reason, for methods that raised instead of returning draws;
        they appear in ``methods.csv`` and ``comparison.md`` with the reason.
    stopped : dict
        method -> why it was stopped before it finished (a time limit, Ctrl-C) or not
        started; listed like ``failed`` but apart from it.
    """

    reference_name: str
    parameters: tuple[str, ...]
    reference: np.ndarray
    methods: tuple[MethodResult, ...]
    log_evidence: float | None
    summary: list[dict] = field(default_factory=list)
    method_rows: list[dict] = field(default_factory=list)
    noise_floor: dict[str, float] = field(default_factory=dict)
    reference_posterior: az.InferenceData | None = None
    failed: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every method asked for returned draws."""
        return not self.failed and not self.stopped

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
            "summary": write_csv(folder / "summary.csv", SUMMARY_COLUMNS, self.summary),
            "methods": write_csv(folder / "methods.csv", METHOD_COLUMNS, self._all_method_rows()),
            "marginals": plot_marginals(self, folder / "figures" / "marginals.png"),
            "pairs": plot_pairs(self, folder / "figures" / "pairs.png"),
        }
        markdown = folder / "comparison.md"
        markdown.write_text(self.to_markdown(), encoding="utf-8")
        paths["markdown"] = markdown
        return paths

    def _all_method_rows(self) -> list[dict]:
        """:attr:`method_rows`, then one row per failed or stopped method (its reason as
        the flag, ``verdict`` "failed" or "stopped")."""
        failed = [
            {"method": m, "verdict": "failed", "flagged": [f"failed: {r}"]}
            for m, r in self.failed.items()
        ]
        stopped = [
            {"method": m, "verdict": "stopped", "flagged": [r]} for m, r in self.stopped.items()
        ]
        return [*self.method_rows, *failed, *stopped]


def compare(
    reference: Any,
    parameters: Sequence[str],
    methods: Iterable[MethodResult],
    *,
    reference_name: str,
    log_evidence: float | None = None,
    seed: int = 0,
    reference_posterior: az.InferenceData | None = None,
    failed: dict[str, str] | None = None,
    stopped: dict[str, str] | None = None,
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
    reference_posterior : arviz.InferenceData or None
        Kept in :attr:`Comparison.reference_posterior` (not used by the metrics).
    failed : dict, optional
        method -> reason, for methods that raised; kept in :attr:`Comparison.failed`.
    stopped : dict, optional
        method -> reason, for methods stopped or not run; kept in
        :attr:`Comparison.stopped`.

    Returns
    -------
    Comparison
    """
    reference = as_draws(reference, "reference")
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
        reference_posterior=reference_posterior,
        failed=dict(failed or {}),
        stopped=dict(stopped or {}),
    )


def _summary_rows(
    result: MethodResult, reference: np.ndarray, parameters: tuple[str, ...]
) -> list[dict]:
    """One row per parameter of one method (keys :data:`SUMMARY_COLUMNS`)."""
    draws = result.draws
    columns = {
        "mean": draws.mean(axis=0),
        "sd": column_sd(draws),
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
    flags = _flags(result, rows, floor)
    return {
        "method": result.method,
        "n_draws": int(result.draws.shape[0]),
        "energy": energy_distance(result.draws, reference, seed=seed),
        "mmd": mmd(result.draws, reference, seed=seed),
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
        "mass": None if result.sampler is None else result.sampler.mass,
        "treedepth_hits": None if result.sampler is None else result.sampler.treedepth_fraction,
        "elbo": result.elbo,
        "log_evidence_estimate": estimate,
        "log_evidence_error": (
            None if estimate is None or log_evidence is None else estimate - log_evidence
        ),
        **_convergence_cells(result.convergence),
        "verdict": _verdict(result.convergence, flags),
        "flagged": flags,
    }


def _convergence_cells(fit: Convergence | None) -> dict[str, Any]:
    """The convergence columns of :data:`METHOD_COLUMNS`; None for methods without a fit."""
    if fit is None:
        return dict.fromkeys(_FIT_COLUMNS)
    return {
        "converged": fit.converged,
        "fits_converged": f"{fit.fits_converged}/{fit.fits}",
        "fit_steps": fit.steps,
        "offset_sd": fit.offset_sd,
        "elbo_gap_laplace": fit.elbo_gap,
        "grad_norm": fit.grad_norm,
        "convergence": fit.judged,
    }


def _verdict(fit: Convergence | None, flags: list[str]) -> str:
    """A key of :data:`VERDICTS`."""
    if fit is not None and not fit.converged:
        return "not converged"
    if not flags:
        return "ok"
    return "flagged" if fit is None else "family limit"


def _per_second(count: float | None, seconds: float) -> float | None:
    """``count / seconds``, or None when either is unknown or the time is not positive."""
    if count is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return count / seconds


def _flags(result: MethodResult, rows: list[dict], floor: dict[str, float]) -> list[str]:
    """Problems of one method as text, each saying which value crossed which threshold;
    a variational fit that did not converge says so first."""
    flags = []
    fit = result.convergence
    if fit is not None and not fit.converged:
        flags.append(fit.judged)
    if result.sampler is not None:
        flags.extend(result.sampler.warnings())
    if result.khat is not None and result.khat > KHAT_THRESHOLD:
        seeds = f" (worst of {len(result.khats)} seeds)" if len(result.khats) > 1 else ""
        flags.append(f"k-hat {result.khat:.2g} > {KHAT_THRESHOLD}{seeds}")
    log_floor = floor["max_abs_log_sd_ratio"]
    beyond = [r for r in rows if abs_log(r["sd_ratio"]) > log_floor]
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
    ("converged", "converged"),
)

_UNITS = """\
Units: *mean error* is (mean − reference mean) / reference sd; *sd ratio* is sd / reference sd
(1 is exact, below 1 too narrow); *W1* is the 1-Wasserstein distance between the marginals in
reference sds; *energy* is the energy distance and *MMD²* the squared maximum mean discrepancy
(Gaussian kernel, median-heuristic width), both on all parameters jointly with columns divided by
the reference sd (dimensionless; 0 is the same distribution, tiny negative values are sampling
noise); *k-hat* is the PSIS Pareto k of the fit (above {khat} importance sampling is unreliable);
*min ESS / s* is the smallest bulk effective sample size over parameters (ArviZ's rank-normalised
bulk ESS, the `ess_bulk` of `arviz_summary.csv`) per second of wall time;
*converged* says whether a variational fit reached its family's optimum (see the convergence
table below; a dash for methods without a fit of their own, such as MCMC).
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
    lines += markdown_table(
        [title for title, _ in columns], _method_table_rows(comparison, columns)
    )
    lines += ["", "### Flagged problems", "", *_flag_lines(comparison.method_rows)]
    lines += _convergence_lines(comparison.method_rows)
    if comparison.failed:
        lines += ["", "### Failed methods", ""]
        lines += [f"- **{method}**: {reason}" for method, reason in comparison.failed.items()]
    if comparison.stopped:
        lines += ["", "### Stopped methods", "", STOPPED_NOTE, ""]
        lines += [f"- **{method}**: {reason}" for method, reason in comparison.stopped.items()]
    lines += ["", "### Per parameter", ""]
    header = ["parameter", "method", "mean", "sd", "mean error (sd)", "sd ratio", "W1 (sd)"]
    lines += markdown_table(header, _summary_table_rows(comparison))
    return "\n".join(lines) + "\n"


def _flag_lines(rows: list[dict]) -> list[str]:
    """The flags grouped by verdict: unfinished fits apart from the families' limits."""
    lines = []
    for verdict in ("not converged", "family limit", "flagged"):
        flagged = [(r["method"], f) for r in rows if r["verdict"] == verdict for f in r["flagged"]]
        if flagged:
            lines += [f"*{verdict}*: {VERDICTS[verdict]}.", ""]
            lines += [f"- **{method}**: {text}" for method, text in flagged]
            lines.append("")
    return lines[:-1] or ["None."]


def _convergence_lines(rows: list[dict]) -> list[str]:
    """The convergence table of the variational fits; nothing when there are none."""
    fitted = [r for r in rows if r["converged"] is not None]
    if not fitted:
        return []
    header = ["method", "converged", "fits converged", "steps", "offset (sd)"]
    header += ["ELBO − Laplace member (nats)", "gradient norm", "how it was judged"]
    body = [
        [r["method"], *(fmt(r[k]) for k in _FIT_COLUMNS[:-1]), r["convergence"]] for r in fitted
    ]
    from pyrovae.posterior.inference.variational import GAP_TOLERANCE, OFFSET_TOLERANCE

    units = _CONVERGENCE_UNITS.format(offset=OFFSET_TOLERANCE, gap=GAP_TOLERANCE)
    lines = ["", "### Convergence of the variational fits", "", units, ""]
    return lines + markdown_table(header, body)


_CONVERGENCE_UNITS = " ".join(
    """Each autoguide family starts at its member nearest the Laplace approximation (the mode and
inverse Hessian) and is fitted in coordinates whitened by it; a guide given as it is (such
as the per-point q* of a VAE's local posteriors, which starts at the encoder's answer) has
no offset or Laplace member and is judged by its plateau alone. A fit *converged* when its
loss plateaued through three learning-rate drops, its *offset* (the distance of its mean
from its family's optimum, in posterior sds, from the noise-free gradient in the whitened
mean) is below {offset}, and its ELBO is not below that of its family's Laplace member by
more than {gap} nats and three standard errors. *ELBO − Laplace member* below zero means the
fit ended worse than where it started: it did not reach its family's optimum. The *gradient
norm* is that of the negative ELBO in all the guide's parameters at the end, noise removed.
*fits converged* counts the restarts from other seeds.""".split()
)


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
    first += [fmt(floor["energy"]), fmt(floor["mmd"]), fmt(floor["max_abs_mean_error_sd"])]
    first += [f"{1 / ratio:.3g}–{ratio:.3g}", fmt(floor["max_w1_sd"])]
    rows = [first + ["–"] * (len(columns) - len(first))]
    for row in comparison.method_rows:
        cells = []
        for _, key in columns:
            if key is None:
                cells.append(f"{row['min_sd_ratio']:.3g}–{row['max_sd_ratio']:.3g}")
            elif key == "method" and row["flagged"]:
                cells.append(f"{row['method']} ⚠")
            else:
                cells.append(fmt(row[key]))
        rows.append(cells)
    return rows


def _summary_table_rows(comparison: Comparison) -> list[list[str]]:
    """For each parameter, the reference row first, then each method in the given order."""
    reference = comparison.reference
    means, sds = reference.mean(axis=0), column_sd(reference)
    by_key = {(row["method"], row["parameter"]): row for row in comparison.summary}
    rows = []
    for p, name in enumerate(comparison.parameters):
        reference_cells = [fmt(float(means[p])), fmt(float(sds[p])), "0", "1", "0"]
        rows.append([name, f"*{comparison.reference_name}*", *reference_cells])
        for result in comparison.methods:
            row = by_key[(result.method, name)]
            keys = ("mean", "sd", "mean_error_sd", "sd_ratio", "w1_sd")
            rows.append([name, result.method, *(fmt(row[k]) for k in keys)])
    return rows
