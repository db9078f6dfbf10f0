"""The posteriors of several methods overlaid in ArviZ's density, forest and pair plots."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import SAMPLE_DIMS
from pyrovae.posterior.plots import DPI, MAX_MARGINAL_PANELS, REFERENCE_COLOR, method_colors

__all__ = ["MAX_FOREST_ROWS", "MAX_PAIR_ELEMENTS", "PAIR_POINTS", "REFERENCE", "plot_overlays"]

REFERENCE = "reference"
"""Key of :func:`plot_overlays` 's input drawn first and in :data:`REFERENCE_COLOR`."""

MAX_FOREST_ROWS = 40
"""Scalar elements drawn by the forest plot (the first ones); more rows get unreadable."""

MAX_PAIR_ELEMENTS = 4
"""Scalar elements in the pair plot (the first ones): a 3 x 3 grid of panels at most."""

PAIR_POINTS = 400
"""Draws (a seeded subsample) per method in the pair plot; more hide each other."""


def _ordered(idatas: Mapping[str, az.InferenceData]) -> dict[str, az.InferenceData]:
    if not idatas:
        raise UserError("plot_overlays needs at least one InferenceData")
    ordered = {REFERENCE: idatas[REFERENCE]} if REFERENCE in idatas else {}
    ordered.update({k: v for k, v in idatas.items() if k != REFERENCE})
    return ordered


def _elements(
    idatas: Mapping[str, az.InferenceData], var_names: Sequence[str] | None
) -> list[tuple[str, str, dict[Hashable, Any]]]:
    """``(label, variable, selection)`` of every scalar element to draw, first dataset first."""
    posteriors = [idata["posterior"] for idata in idatas.values()]
    first = posteriors[0]
    if var_names is None:
        names = [str(v) for v in first.data_vars if all(v in p.data_vars for p in posteriors)]
    else:
        names = list(var_names)
        for key, posterior in zip(idatas, posteriors, strict=True):
            absent = [n for n in names if n not in posterior.data_vars]
            if absent:
                raise UserError(f"'{key}' has no variable(s) {absent}")
    out = []
    for name in names:
        values = first[name]
        event = [d for d in values.dims if d not in SAMPLE_DIMS]
        for index in itertools.product(*(values[d].values.tolist() for d in event)):
            selection = dict(zip(event, index, strict=True))
            label = f"{name}[{','.join(map(str, index))}]" if index else name
            out.append((label, name, selection))
    if not out:
        raise UserError("the InferenceData objects share no posterior variable to plot")
    return out


def _scalars(
    key: str,
    idata: az.InferenceData,
    elements: Sequence[tuple[str, str, dict[Hashable, Any]]],
    max_draws: int | None = None,
    seed: int = 0,
) -> az.InferenceData:
    """InferenceData whose posterior holds one scalar variable per element (label names)."""
    arrays = {}
    posterior = idata["posterior"]
    for label, name, selection in elements:
        try:
            values = posterior[name].sel(selection).transpose(*SAMPLE_DIMS).values
        except KeyError:
            raise UserError(f"'{key}' has no element {label}") from None
        arrays[label] = np.asarray(values, dtype=np.float64)
    if max_draws is not None:
        total = next(iter(arrays.values())).size
        keep = np.arange(total)
        if total > max_draws:
            keep = np.sort(np.random.default_rng(seed).choice(total, max_draws, replace=False))
        arrays = {label: a.reshape(-1)[keep][None, :] for label, a in arrays.items()}
    return az.InferenceData(posterior=az.dict_to_dataset(arrays, index_origin=0))


def _figure_of(axes: Any):
    return np.ravel(np.asarray(axes, dtype=object))[0].get_figure()


def plot_overlays(
    idatas: Mapping[str, az.InferenceData],
    folder: str | Path,
    *,
    var_names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Overlay the posteriors of several methods in ArviZ's density, forest and pair plots.

    Parameters
    ----------
    idatas : mapping of str to InferenceData
        Method name -> its InferenceData (same variable names, dims and coords, as the
        converters give). A key ``"reference"`` is drawn first, in grey
        (:data:`~pyrovae.posterior.plots.REFERENCE_COLOR`); the other methods keep the
        colours of :func:`~pyrovae.posterior.plots.method_colors`.
    folder : str or Path
        Created if needed.
    var_names : sequence of str, optional
        Variables to draw; default those every input has, in the order of the first.

    Returns
    -------
    dict of str to Path
        ``"density"`` (``density.png``: the first
        :data:`~pyrovae.posterior.plots.MAX_MARGINAL_PANELS` scalar elements),
        ``"forest"`` (``forest.png``: 94% HDI of the first :data:`MAX_FOREST_ROWS`
        elements, chains combined) and ``"pair"`` (``pair.png``: scatter of the first
        :data:`MAX_PAIR_ELEMENTS` elements, :data:`PAIR_POINTS` draws per method; only
        when there are at least two elements).

    Every figure this function opens through pyplot (``arviz.plot_*`` use it) is closed
    before it returns, also on error; ``plt.show`` is never called.
    """
    import matplotlib.pyplot as plt  # arviz.plot_* draw on pyplot figures
    from matplotlib.lines import Line2D

    ordered = _ordered(idatas)
    elements = _elements(ordered, var_names)
    keys = list(ordered)
    colors = method_colors([k for k in keys if k != REFERENCE])
    colors[REFERENCE] = REFERENCE_COLOR
    palette = [colors[k] for k in keys]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    before = set(plt.get_fignums())
    try:
        density = elements[:MAX_MARGINAL_PANELS]
        axes = az.plot_density(
            [_scalars(k, ordered[k], density) for k in keys],
            data_labels=keys,
            var_names=[label for label, _, _ in density],
            colors=palette,
            shade=0.1,
            hdi_prob=0.99,
            show=False,
        )
        paths["density"] = _save_figure(_figure_of(axes), folder / "density.png")

        forest = elements[:MAX_FOREST_ROWS]
        axes = az.plot_forest(
            [_scalars(k, ordered[k], forest) for k in keys],
            model_names=keys,
            var_names=[label for label, _, _ in forest],
            combined=True,
            colors=palette,
            show=False,
        )
        paths["forest"] = _save_figure(_figure_of(axes), folder / "forest.png")

        pair = elements[:MAX_PAIR_ELEMENTS]
        if len(pair) >= 2:
            axes = None
            for i, key in enumerate(keys):
                axes = az.plot_pair(
                    _scalars(key, ordered[key], pair, max_draws=PAIR_POINTS, seed=i),
                    var_names=[label for label, _, _ in pair],
                    kind="scatter",
                    scatter_kwargs=_pair_style(key, colors[key]),
                    ax=axes,
                    show=False,
                )
            fig = _figure_of(axes)
            handles = [
                Line2D([], [], marker="o", ls="", ms=8, color=colors[k], label=k) for k in keys
            ]
            fig.legend(
                handles=handles,
                loc="upper right",
                bbox_to_anchor=(0.9, 0.88),  # the empty upper triangle of the grid
                title="method",
                fontsize=12,
                title_fontsize=12,
                frameon=False,
            )
            paths["pair"] = _save_figure(fig, folder / "pair.png")
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
    return paths


def _pair_style(key: str, color: str) -> dict[str, Any]:
    """The reference as a large, faint background cloud; each method in small dots over it.

    ``az.plot_pair`` defaults to the ``"."`` marker, which stays tiny whatever its size.
    """
    size, alpha = (40, 0.2) if key == REFERENCE else (9, 0.6)
    return {"color": color, "alpha": alpha, "s": size, "marker": "o", "edgecolors": "none"}


def _save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # arviz's forest labels overflow
    return path
