"""The ``pyrovae sbc`` job: simulation-based calibration of a model's methods or of a
trained VAE's encoder, written to a folder.

:func:`sbc_model` (``pyrovae sbc MODEL --methods ...``) runs
:func:`pyrovae.posterior.sbc.model_sbc`; :func:`sbc_run` (``pyrovae sbc RUN_DIR``) runs
:func:`pyrovae.evaluate.sbc.amortized_sbc` on the run's final weights. Both test the
ranks with :mod:`pyrovae.stats.ranks` and write through :func:`write_sbc`:

=======================  ===============================================================
``sbc.md``               what was run, then per method and parameter the p-value, the
                         Bonferroni threshold, pass/fail and the shape hint
``sbc.csv``              the same with the statistic, bins and shape z-scores
``ranks.csv``            every rank: ``method``, ``fit`` (index among the method's
                         successful fits), the parameters' ranks (and per model fit its
                         ``seconds`` and ``min_ess``)
``figures/ecdf_<m>.png`` ArviZ ECDF-difference plots with simultaneous bands, per method
=======================  ===============================================================
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pyrovae.evaluate.sbc import ENCODER, amortized_sbc
from pyrovae.pipeline import open_vae_run
from pyrovae.posterior.diagnostics import plot_rank_ecdf
from pyrovae.posterior.methods import get_method
from pyrovae.posterior.sbc import (
    MCMC_THIN,
    SBC_WARMUP,
    ModelSbc,
    check_proper_prior,
    model_sbc,
)
from pyrovae.posterior.tables import fmt, markdown_table, write_csv
from pyrovae.posterior.targets.zoo import ZooModel
from pyrovae.stats.ranks import ALPHA, HINT_Z, MethodRanks, RankTest
from pyrovae.train.guard import ensure_writable
from pyrovae.train.threads import torch_threads

__all__ = [
    "MODEL_THREADS",
    "SBC_COLUMNS",
    "SBC_DIR",
    "SbcOutcome",
    "sbc_model",
    "sbc_run",
    "summary_lines",
]

SBC_DIR = "sbc"
"""Where ``pyrovae sbc RUN_DIR`` writes, inside the run directory."""

MODEL_THREADS = 1
"""Torch threads while a model's fits run: the zoo's models are too small to gain from a
second thread, and next to one busy process two threads made a variational fit of
``regression_far`` 30x slower (4 s against 130 s)."""

SBC_COLUMNS = (
    "method",
    "parameter",
    "replications",
    "draws",
    "bins",
    "statistic",
    "chi2_p_value",
    "p_value",
    "threshold",
    "passed",
    "bias_z",
    "dispersion_z",
    "hint",
)
"""Columns of ``sbc.csv`` (the fields of :class:`~pyrovae.stats.ranks.RankTest`)."""


class SbcOutcome(NamedTuple):
    """What an SBC job found and wrote."""

    folder: Path
    tests: dict[str, tuple[RankTest, ...]]
    """method -> one test per parameter (or latent dimension)."""
    notes: tuple[str, ...]
    """Failed fits, ESS warnings, timings: shown in ``sbc.md`` and printed."""
    files: dict[str, Path]
    seconds: float
    """Wall time of the simulations and fits (writing excluded)."""


def _ranks_rows(
    ranks: Sequence[MethodRanks], extra: Mapping[str, Mapping[str, np.ndarray]]
) -> tuple[list[str], list[dict]]:
    names = list(dict.fromkeys(p for r in ranks for p in r.parameters))
    more = list(dict.fromkeys(k for cols in extra.values() for k in cols))
    rows = []
    for r in ranks:
        cols = extra.get(r.method, {})
        for i, row in enumerate(r.ranks):
            cells = {
                "method": r.method,
                "fit": i,
                **dict(zip(r.parameters, row.tolist(), strict=True)),
            }
            rows.append(cells | {k: float(v[i]) for k, v in cols.items()})
    return ["method", "fit", *names, *more], rows


def _markdown(title: str, intro: Sequence[str], tests: Mapping[str, Sequence[RankTest]]) -> str:
    header = ["method", "parameter", "p-value", "threshold", "pass", "hint"]
    rows = [
        [m, t.parameter, f"{t.p_value:.3g}", f"{t.threshold:.3g}", fmt(t.passed), t.hint or "–"]
        for m, ts in tests.items()
        for t in ts
    ]
    reading = (
        "How to read it: a rank is how many of a fit's L draws lie below the true value; "
        "for an exact posterior it is uniform on 0..L. The p-value joins Pearson's "
        "chi-square on binned ranks with z-tests of the mean rank (bias) and of the ranks' "
        "distance from the middle (dispersion), by Bonferroni (3 x the smallest of the "
        "three); a parameter passes when it is at least the threshold, "
        f"{ALPHA} / P (Bonferroni over a method's P parameters). The hint names the "
        f"histogram's shape where a shape score passes |z| = {HINT_Z:g}: U-shaped = q too "
        "narrow (over-confident), inverted-U = q too wide, ranks high/low = q biased "
        "low/high. figures/ecdf_<method>.png shows the ECDF of the ranks minus the "
        "uniform, inside a 95% simultaneous band."
    )
    lines = [f"# {title}", "", *intro, "", *markdown_table(header, rows), "", reading, ""]
    return "\n".join(lines)


def write_sbc(
    ranks: Sequence[MethodRanks],
    folder: Path,
    *,
    title: str,
    intro: Sequence[str] = (),
    extra: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    seed: int = 0,
) -> tuple[dict[str, tuple[RankTest, ...]], dict[str, Path]]:
    """Test every method's ranks and write ``sbc.md``, ``sbc.csv``, ``ranks.csv`` and
    ``figures/ecdf_<method>.png`` into ``folder`` (which must exist).

    ``extra``: method -> column -> ``(N_m,)`` values added to its rows of ``ranks.csv``.
    A method without ranks (every fit failed) gets no tests and no figure.
    """
    tested = [r for r in ranks if r.ranks.shape[0]]
    tests = {r.method: r.tests() for r in tested}
    rows = [t._asdict() | {"method": m} for m, ts in tests.items() for t in ts]
    files = {"table": write_csv(folder / "sbc.csv", SBC_COLUMNS, rows)}
    columns, rank_rows = _ranks_rows(tested, extra or {})
    files["ranks"] = write_csv(folder / "ranks.csv", columns, rank_rows)
    for r in tested:
        path = folder / "figures" / f"ecdf_{r.method}.png"
        files[f"ecdf_{r.method}"] = plot_rank_ecdf(r, path, tests=tests[r.method], seed=seed)
    files["markdown"] = folder / "sbc.md"
    files["markdown"].write_text(_markdown(title, intro, tests), encoding="utf-8")
    return tests, files


def _model_notes(result: ModelSbc) -> list[str]:
    notes = []
    for r in result.ranks:
        m, fits = r.method, r.ranks.shape[0]
        failed = result.failed[m]
        if failed:
            notes.append(
                f"{m}: {len(failed)} of {result.replications} fits failed, e.g. {failed[0]}"
            )
        if not fits:
            continue
        line = f"{m}: {fits} fits, median {np.median(result.seconds[m]):.2g} s each"
        ess = result.min_ess[m]
        if np.isfinite(ess).any():
            median = float(np.nanmedian(ess))
            line += f"; median smallest ESS {median:.0f} of {MCMC_THIN * r.draws} draws"
            if median < r.draws:
                line += (
                    f" (below the {r.draws} kept: the kept draws are autocorrelated, which "
                    "alone can pile ranks at both ends; read a U shape with care)"
                )
        notes.append(line)
    return notes


def sbc_model(
    target: ZooModel,
    methods: Sequence[str],
    out: str | Path,
    *,
    replications: int = 100,
    draws: int = 100,
    seed: int = 0,
    warmup: int = SBC_WARMUP,
    dtype: str = "float64",
    progress: bool = False,
) -> SbcOutcome:
    """SBC of ``methods`` on ``target`` (:func:`~pyrovae.posterior.sbc.model_sbc`), written
    to ``out``. The methods, the prior and the folder are checked before anything runs,
    so a bad request leaves no folder behind."""
    for name in methods:
        get_method(name)
    check_proper_prior(target)
    folder = ensure_writable(out)
    start = time.perf_counter()
    with torch_threads(MODEL_THREADS):
        result = model_sbc(
            target,
            methods,
            replications=replications,
            draws=draws,
            seed=seed,
            warmup=warmup,
            dtype=dtype,
            progress=progress,
        )
    seconds = time.perf_counter() - start
    notes = _model_notes(result)
    intro = [
        f"Simulation-based calibration of {', '.join(methods)} on `{target.name}`: "
        f"N = {replications} replications (seed {seed}), L = {draws} posterior draws per fit "
        f"(MCMC: one chain, {warmup} warm-up steps, {MCMC_THIN * draws} draws thinned to {draws}), "
        f"{dtype}, {seconds:.0f} s in all.",
        "",
        *(f"- {n}" for n in notes),
    ]
    extra = {m: {"seconds": result.seconds[m], "min_ess": result.min_ess[m]} for m in methods}
    tests, files = write_sbc(
        result.ranks, folder, title=f"SBC: {target.name}", intro=intro, extra=extra, seed=seed
    )
    return SbcOutcome(folder, tests, tuple(notes), files, seconds)


def sbc_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    replications: int = 2000,
    draws: int = 100,
    seed: int = 0,
) -> SbcOutcome:
    """Amortized SBC of a trained VAE's encoder, written to ``out`` (default
    ``RUN_DIR/sbc``).

    Raises
    ------
    UserError
        Not a run directory, an autoencoder run (no prior p(z)), or bad counts.
    """
    run_dir = Path(run_dir)
    needs = "nothing to draw z from; amortized SBC needs model.kind = 'vae'"
    with open_vae_run(run_dir, needs, label_models=False) as trained:
        folder = ensure_writable(out if out is not None else run_dir / SBC_DIR)
        result = amortized_sbc(trained.model, replications=replications, draws=draws, seed=seed)
        spec = trained.spec.model
        intro = [
            f"Amortized SBC of the encoder of `{run_dir}`: z ~ p(z) ({result.prior} prior), "
            f"x ~ p(x|z) ({result.likelihood} likelihood), rank of each z_d among L = {draws} "
            f"draws of q(z|x); N = {replications} replications (seed {seed}), "
            f"{spec.latent_dim} latent dimensions, {result.seconds:.2f} s.",
            "",
            "A U shape: the encoder is over-confident in that dimension (q(z|x) narrower "
            "than p(z|x)); an inverted U: under-confident; skewed ranks: its mean is biased.",
        ]
        tests, files = write_sbc(
            [result.ranks], folder, title=f"SBC: {trained.spec.name}", intro=intro, seed=seed
        )
        notes = (f"{ENCODER}: {replications} replications in {result.seconds:.2f} s",)
        return SbcOutcome(folder, tests, notes, files, result.seconds)


def summary_lines(outcome: SbcOutcome) -> list[str]:
    """A few lines per method: how many parameters pass, and each failure with its hint."""
    lines = []
    for method, tests in outcome.tests.items():
        passed = sum(t.passed for t in tests)
        worst = min(tests, key=lambda t: t.p_value)
        lines.append(
            f"{method:>12}: {passed} of {len(tests)} pass (alpha {ALPHA} / {len(tests)}); "
            f"lowest p = {worst.p_value:.2g} ({worst.parameter})"
        )
        lines += [
            f"{'':>12}  FAIL {t.parameter}: p = {t.p_value:.2g}; {t.hint}"
            for t in tests
            if not t.passed
        ]
    lines += [f"note: {n}" for n in outcome.notes]
    lines.append(f"tables (sbc.md, sbc.csv), ranks.csv and figures/ecdf_*.png in {outcome.folder}")
    return lines
