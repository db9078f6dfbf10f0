"""SBC ranks as ArviZ ECDF-difference plots with simultaneous bands.

One panel per parameter: the ECDF of the fractional ranks
(:func:`pyrovae.stats.ranks.fractional_ranks`, exactly Uniform(0, 1) for a calibrated
method) minus the uniform CDF, inside the simultaneous band of Säilynoja, Bürkner and
Vehtari (2022) that ArviZ computes (``arviz.plot_ecdf(..., difference=True,
confidence_bands=True)``). A calibrated method stays inside the band at every point with
probability :data:`BAND_PROBABILITY`. How to read the shapes:

- a hump above zero: ranks piled low, the truth below q's draws, q biased high; a dip
  below zero: ranks piled high, q biased low;
- above zero in the first half and below in the second: ranks at both ends (a U-shaped
  histogram), q too narrow; below, then above: ranks in the middle, q too wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import numpy as np
from matplotlib.figure import Figure
from scipy.stats import uniform

from pyrovae.posterior.plots import DPI
from pyrovae.stats.ranks import MethodRanks, RankTest, fractional_ranks

__all__ = ["BAND_PROBABILITY", "ECDF_POINTS", "MAX_ECDF_PANELS", "plot_rank_ecdf"]

BAND_PROBABILITY = 0.95
"""Simultaneous coverage of each panel's band."""

ECDF_POINTS = 101
"""Evaluation points of the ECDF on [0, 1], fixed in advance as the simultaneous band
requires (points chosen from the data would miscalibrate it)."""

MAX_ECDF_PANELS = 16
"""Panels per figure (the first parameters); a VAE with 50 latents shows 16."""


def _uniform_draws(n: int, random_state: np.random.Generator | None = None) -> np.ndarray:
    """The band's simulations: ``(n,)`` Uniform(0, 1)."""
    return uniform.rvs(size=n, random_state=random_state)


def _title(name: str, test: RankTest | None) -> str:
    if test is None:
        return name
    verdict = "pass" if test.passed else "FAIL"
    return f"{name}: p = {test.p_value:.2g} ({verdict})"


def plot_rank_ecdf(
    ranks: MethodRanks,
    path: Path | str,
    *,
    tests: Sequence[RankTest] | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Draw the ECDF-difference panels of one method's ranks and save them as PNG.

    Parameters
    ----------
    ranks : MethodRanks
        ``(N, P)`` ranks in ``0..L``.
    path : path
        The PNG to write (parents created).
    tests : sequence of RankTest, optional
        One per parameter; each panel's title then gives its p-value and verdict.
    seed : int
        Seeds the fractional ranks' jitter and the band's simulation.
    title : str, optional
        The figure's title (default: the method's name, N and L).

    Returns
    -------
    Path
    """
    rng = np.random.default_rng(seed)
    shown = min(len(ranks.parameters), MAX_ECDF_PANELS)
    cols = min(4, shown)
    rows = math.ceil(shown / cols)
    width = max(3.2 * cols, 4.0)  # room for the title above a single panel
    fig = Figure(figsize=(width, 2.6 * rows + 0.7), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    values = fractional_ranks(ranks.ranks, ranks.draws, rng)
    points = np.linspace(0.0, 1.0, ECDF_POINTS)
    for j, ax in enumerate(axes):
        if j >= shown:
            ax.set_axis_off()
            continue
        az.plot_ecdf(
            values[:, j],
            cdf=uniform.cdf,
            difference=True,
            confidence_bands=True,
            ci_prob=BAND_PROBABILITY,
            eval_points=points,
            rvs=_uniform_draws,
            random_state=rng,
            ax=ax,
        )
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_title(_title(ranks.parameters[j], tests[j] if tests else None), fontsize=9)
        ax.set_xlabel("fractional rank")
    axes[0].set_ylabel("ECDF - uniform")
    n, total = ranks.ranks.shape[0], len(ranks.parameters)
    more = f"; first {shown} of {total} parameters" if shown < total else ""
    default = (
        f"SBC ranks of {ranks.method}: N = {n}, L = {ranks.draws}\n"
        f"{BAND_PROBABILITY:.0%} simultaneous bands{more}"
    )
    fig.suptitle(title or default, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
