"""Every posterior of a comparison as ArviZ InferenceData on disk, with its ArviZ analysis.

:func:`write_posteriors` takes the reference and each method of a
:class:`~pyrovae.posterior.compare.Comparison` as InferenceData with the same variable names,
dims and 1-based coords (the ``posterior`` a method runner attached to its
:class:`~pyrovae.posterior.compare.MethodResult`, with MCMC chains, sample_stats and
log-likelihood, or else :func:`pyrovae.posterior.diagnostics.from_flat` of its draws) and writes,
under ``folder``:

==============================  ===========================================================
``posteriors/<method>.nc``      each InferenceData (``reference.nc`` for the reference)
``figures/density.png`` ...     ArviZ overlays: density, forest, pair (reference first, grey)
``arviz_summary.csv``           ``arviz.summary`` per method and parameter (all rows)
``arviz_summary.md``            sampler warnings and the summary table of each method
``loo.csv``, ``loo.md``         PSIS-LOO per method and ``arviz.compare`` across methods,
                                where the InferenceData have a log-likelihood
==============================  ===========================================================

Method names, their order (reference first) and their colours
(:func:`~pyrovae.posterior.plots.method_colors`) are those of the comparison's own tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import arviz as az

from pyrovae.posterior import diagnostics
from pyrovae.posterior.compare import Comparison
from pyrovae.posterior.inference.sampler_notes import TREEDEPTH_WARN_FRACTION
from pyrovae.posterior.tables import fmt, markdown_table, write_csv

__all__ = [
    "MAX_SUMMARY_ROWS",
    "SUMMARY_COLUMNS",
    "PosteriorFiles",
    "comparison_posteriors",
    "loo_lines",
    "loo_markdown",
    "summary_markdown",
    "summary_rows",
    "write_posteriors",
]

SUMMARY_COLUMNS = (
    "method",
    "parameter",
    "mean",
    "sd",
    "hdi_3%",
    "hdi_97%",
    "mcse_mean",
    "mcse_sd",
    "ess_bulk",
    "ess_tail",
    "r_hat",
)
"""Columns of ``arviz_summary.csv`` (94% HDI, as ``arviz.summary`` gives by default)."""

MAX_SUMMARY_ROWS = 40
"""Rows of each method's table in ``arviz_summary.md`` (the CSV has them all): a VAE's
local posteriors have points x latent units elements."""

_SUMMARY_TABLE = (
    ("parameter", "parameter"),
    ("mean", "mean"),
    ("sd", "sd"),
    ("HDI 3%", "hdi_3%"),
    ("HDI 97%", "hdi_97%"),
    ("MCSE mean", "mcse_mean"),
    ("MCSE sd", "mcse_sd"),
    ("ESS bulk", "ess_bulk"),
    ("ESS tail", "ess_tail"),
    ("R-hat", "r_hat"),
)

_SUMMARY_NOTE = """\
Per method, ArviZ's summary of its draws: mean, sd and the 94% highest-density interval;
the Monte Carlo standard errors of the mean and sd; bulk and tail effective sample sizes;
rank-normalised split R-hat, which compares chains (– for a single chain of independent
draws: variational fits, exact and posteriordb references). Warnings: R-hat > {rhat},
ESS < {ess} per chain, more than {depth:.0%} of NUTS transitions at the maximum tree depth,
divergent transitions."""

_LOO_NOTE = """\
PSIS-LOO (Vehtari, Gelman and Gabry 2017) of the observed site `{site}` over its {n} observations,
computed by ArviZ from each method's pointwise log-likelihood. *elpd_loo* is the expected log
predictive density of a left-out observation, summed over observations (nats, higher is better);
*se* is its standard error over observations and *MCSE* its Monte Carlo error from the finite
number of draws; *p_loo* is the effective number of parameters; *elpd_diff* is the best method's
elpd_loo minus this one's and *dse* the standard error of that difference over observations, as
`arviz.compare` gives them; *k-hat* is the Pareto shape of the importance ratios: observations
whose k-hat exceeds min(1 − 1 / log10 S, 0.7) for S draws have unreliable LOO estimates (counted
in *k-hat > good*; the method is marked ⚠ and its MCSE is then too small). Every method
approximates the same model, so their elpd_loo should agree within a few MCSE; draws of a
variational guide are importance-corrected by p/q (*q-corrected*), so a poor q shows as large
k-hat rather than as a different elpd."""


class PosteriorFiles(NamedTuple):
    """What :func:`write_posteriors` wrote and found."""

    netcdf: dict[str, Path]
    """method (``"reference"`` first) -> ``posteriors/<method>.nc``."""
    figures: dict[str, Path]
    """``"density"``, ``"forest"``, ``"pair"`` -> PNG."""
    warnings: dict[str, list[str]]
    """method -> sampler warnings (R-hat, ESS, divergences); empty lists when fine."""
    tables: dict[str, Path]
    """``"summary_csv"``, ``"summary_md"`` and, with a log-likelihood, ``"loo_csv"``,
    ``"loo_md"``."""
    loo: list[dict[str, Any]]
    """Rows of :func:`pyrovae.posterior.diagnostics.loo_table` (empty without a log-likelihood)."""


def comparison_posteriors(
    comparison: Comparison, chains: Mapping[str, int] | None = None
) -> dict[str, az.InferenceData]:
    """The reference and every method as InferenceData, reference first.

    Parameters
    ----------
    chains : mapping, optional
        For methods without their own ``posterior``: chains of their draws (MCMC draws
        are stored chain after chain); 1 where not given or where the draws do not
        split evenly.
    """
    names = list(comparison.parameters)
    reference = comparison.reference_posterior
    if reference is None:
        reference = diagnostics.from_flat(
            comparison.reference, names, method=f"reference ({comparison.reference_name})"
        )
    out = {diagnostics.REFERENCE: reference}
    for result in comparison.methods:
        if result.posterior is not None:
            out[result.method] = result.posterior
            continue
        count = (chains or {}).get(result.method, 1)
        if result.draws.shape[0] % count:
            count = 1
        out[result.method] = diagnostics.from_flat(
            result.draws,
            names,
            method=result.method,
            chains=count,
            khat=result.khat,
            khats=result.khats,
            elbo=result.elbo,
            seconds=result.seconds,
        )
    return out


def summary_rows(idatas: Mapping[str, az.InferenceData]) -> list[dict[str, Any]]:
    """``arviz.summary`` of every method as rows with keys :data:`SUMMARY_COLUMNS`."""
    rows = []
    for method, idata in idatas.items():
        table = diagnostics.summary(idata)
        for parameter, values in table.iterrows():
            row: dict[str, Any] = {"method": method, "parameter": str(parameter)}
            row.update({key: float(values[key]) for key in SUMMARY_COLUMNS[2:]})
            rows.append(row)
    return rows


def _summary_cell(row: dict[str, Any], key: str) -> str:
    """Parameter names as they are, ESS as whole draws, other values to 4 figures."""
    value = row[key]
    if key == "parameter":
        return str(value)
    if key.startswith("ess_") and math.isfinite(value):
        return str(round(value))
    return fmt(value, 4)


def summary_markdown(
    rows: Sequence[dict[str, Any]],
    warnings: Mapping[str, list[str]],
    titles: Mapping[str, str] | None = None,
) -> str:
    """``arviz_summary.md``: the warnings, then one summary table per method.

    ``titles``: how to show a method's name (e.g. ``"reference (analytic)"``, as the
    comparison's figures do); default the name itself.
    """
    titles = titles or {}
    lines = [
        "## ArviZ summaries",
        "",
        _SUMMARY_NOTE.format(
            rhat=diagnostics.RHAT_MAX,
            ess=diagnostics.ESS_MIN_PER_CHAIN,
            depth=TREEDEPTH_WARN_FRACTION,
        ),
        "",
        "### Sampler warnings",
        "",
    ]
    found = [f"- **{titles.get(m, m)}**: {line}" for m, lines in warnings.items() for line in lines]
    lines += found or ["None."]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for method in methods:
        own = [row for row in rows if row["method"] == method]
        lines += ["", f"### {titles.get(method, method)}", ""]
        cells = [[_summary_cell(row, key) for _, key in _SUMMARY_TABLE] for row in own]
        cells = cells[:MAX_SUMMARY_ROWS]
        lines += markdown_table([title for title, _ in _SUMMARY_TABLE], cells)
        if len(own) > MAX_SUMMARY_ROWS:
            lines += ["", f"First {MAX_SUMMARY_ROWS} of {len(own)} rows; all in arviz_summary.csv."]
    return "\n".join(lines) + "\n"


def loo_markdown(rows: Sequence[dict[str, Any]], titles: Mapping[str, str] | None = None) -> str:
    """``loo.md``: per observed site, a note on the units and one row per method
    (``titles`` as for :func:`summary_markdown`)."""
    titles = titles or {}
    lines = ["## Leave-one-out cross-validation (PSIS-LOO)"]
    header = [
        "method",
        "rank",
        "elpd_loo",
        "se",
        "MCSE",
        "p_loo",
        "elpd_diff",
        "dse",
        "max k-hat",
        "k-hat > good",
        "q-corrected",
    ]
    for site in dict.fromkeys(row["site"] for row in rows):
        own = [row for row in rows if row["site"] == site]
        first = own[0]
        note = _LOO_NOTE.format(site=site, n=first["n_data"])
        lines += ["", note, ""]
        cells = [
            [
                titles.get(row["method"], row["method"]) + (" ⚠" if row["khat_bad"] else ""),
                str(row["rank"]),
                f"{row['elpd_loo']:.2f}",
                f"{row['se']:.2f}",
                f"{row['mcse']:.2f}",
                f"{row['p_loo']:.2f}",
                f"{row['elpd_diff']:.2f}",
                f"{row['dse']:.2f}",
                f"{row['khat_max']:.2f}",
                f"{row['khat_bad']} of {row['n_data']}",
                fmt(row["q_corrected"]),
            ]
            for row in own
        ]
        lines += markdown_table(header, cells)
    return "\n".join(lines) + "\n"


def loo_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per method for a terminal: ``loo y: nuts elpd -33.1 ± 2.9 ...``."""
    out = []
    for row in rows:
        bad = f", {row['khat_bad']} k-hat > {row['good_k']:.2f}" if row["khat_bad"] else ""
        diff = row["elpd_diff"]
        out.append(
            f"loo {row['site']}: {row['method']:>16}: elpd_loo {row['elpd_loo']:.2f} "
            f"(se {row['se']:.2f}, MCSE {row['mcse']:.2f}), p_loo {row['p_loo']:.2f}, "
            f"elpd_diff {0.0 if math.isclose(diff, 0.0, abs_tol=5e-3) else diff:.2f}, "
            f"max k-hat {row['khat_max']:.2f}{bad}"
        )
    return out


def write_posteriors(
    comparison: Comparison, folder: str | Path, chains: Mapping[str, int] | None = None
) -> PosteriorFiles:
    """Write the files listed in the module notes under ``folder``.

    Parameters
    ----------
    comparison : Comparison
        Its methods' ``posterior`` (and ``reference_posterior``) are used where set.
    folder : str or Path
        The comparison's folder (created if needed).
    chains : mapping, optional
        See :func:`comparison_posteriors`.
    """
    folder = Path(folder)
    idatas = comparison_posteriors(comparison, chains)
    netcdf = {
        name: diagnostics.save(idata, folder / "posteriors" / f"{name}.nc")
        for name, idata in idatas.items()
    }
    figures = diagnostics.plot_overlays(idatas, folder / "figures")
    warnings = {name: diagnostics.warnings(idata) for name, idata in idatas.items()}
    rows = summary_rows(idatas)
    tables = {"summary_csv": write_csv(folder / "arviz_summary.csv", SUMMARY_COLUMNS, rows)}
    tables["summary_md"] = folder / "arviz_summary.md"
    titles = {name: str(idata.attrs.get("method", name)) for name, idata in idatas.items()}
    tables["summary_md"].write_text(summary_markdown(rows, warnings, titles), encoding="utf-8")
    loo = diagnostics.loo_table(idatas)
    if loo:
        tables["loo_csv"] = write_csv(folder / "loo.csv", diagnostics.LOO_COLUMNS, loo)
        tables["loo_md"] = folder / "loo.md"
        tables["loo_md"].write_text(loo_markdown(loo, titles), encoding="utf-8")
    return PosteriorFiles(netcdf, figures, warnings, tables, loo)
