"""Figures of a :class:`~pyrovae.posterior.compare.Comparison`: marginals and pair plots.

:func:`plot_marginals` draws one panel per parameter, :func:`plot_pairs` a pair plot
of the first few parameters (scatter below the diagonal, density contours above).
The reference is always a filled grey (:data:`REFERENCE_COLOR`) and each method keeps
one colour in every figure (:func:`method_colors`). Figures are built with
:class:`matplotlib.figure.Figure` directly (never ``pyplot``) and saved as PNG at
:data:`DPI`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.typing import ColorType
from scipy.stats import gaussian_kde

from pyrovae.posterior.distances import MIN_SD, subsample

__all__ = [
    "DPI",
    "MAX_MARGINAL_PANELS",
    "METHOD_COLORS",
    "REFERENCE_COLOR",
    "Compared",
    "Drawn",
    "method_colors",
    "plot_marginals",
    "plot_pairs",
]


# --- what the figures read ------------------------------------------------------------------


class Drawn(Protocol):
    """One method's draws as the figures read them (a :class:`MethodResult` is one)."""

    @property
    def method(self) -> str: ...

    @property
    def draws(self) -> np.ndarray:
        """``(S, P)``."""


class Compared(Protocol):
    """What the figures read of a comparison (:class:`pyrovae.posterior.compare.Comparison`
    is one); a protocol, so this module needs nothing from the one that computes it."""

    @property
    def reference_name(self) -> str: ...

    @property
    def parameters(self) -> tuple[str, ...]: ...

    @property
    def reference(self) -> np.ndarray:
        """``(R, P)``."""

    @property
    def methods(self) -> Sequence[Drawn]: ...


# --- constants --------------------------------------------------------------------------------

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


# --- colours ----------------------------------------------------------------------------------


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
    tab10 = cast(ListedColormap, colormaps["tab10"])
    palette = [to_hex(c) for c in cast(Sequence[ColorType], tab10.colors)]
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


# --- figures ----------------------------------------------------------------------------------


def _method_names(comparison: Compared) -> list[str]:
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
    values = subsample(values[:, None], KDE_POINTS, rng)[:, 0]
    if np.ptp(values) <= MIN_SD:
        return None
    return gaussian_kde(values)(grid)


def _draw_marginal(
    ax: Axes,
    comparison: Compared,
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


def _legend_handles(comparison: Compared, colors: dict[str, str]) -> list[Any]:
    """Reference patch, then one line per method."""
    handles: list[Any] = [
        Patch(color=REFERENCE_COLOR, alpha=0.6, label=f"reference ({comparison.reference_name})")
    ]
    handles += [Line2D([], [], color=colors[n], lw=2, label=n) for n in _method_names(comparison)]
    return handles


def _finish(fig: Figure, comparison: Compared, colors: dict[str, str], title: str) -> None:
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


def plot_marginals(comparison: Compared, path: Path | str) -> Path:
    """One panel per parameter (the first :data:`MAX_MARGINAL_PANELS`): reference and methods.

    The reference is a filled grey histogram, each method a KDE line in its colour
    (:func:`method_colors`); the legend is drawn once, below the panels.

    Parameters
    ----------
    comparison : Compared
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


def plot_pairs(comparison: Compared, path: Path | str, max_parameters: int = 4) -> Path:
    """Pair plot of the first ``max_parameters`` parameters.

    Below the diagonal: scatter of a seeded subsample (:data:`SCATTER_POINTS`) of the
    reference draws in grey and of each method's draws in its colour. On the diagonal:
    the marginals as in :func:`plot_marginals`. Above the diagonal, the same pairs
    transposed as density contours, easier to read where the clouds overlap: the
    reference's 50% and 90% highest-density regions filled grey, each method's as
    lines (solid 50%, dashed 90%).

    Parameters
    ----------
    comparison : Compared
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
    dense = [(c, subsample(d[:, :k], CONTOUR_POINTS, rng)) for c, d in samples]
    sparse = [(c, subsample(d, SCATTER_POINTS, rng)) for c, d in dense]
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
    return [
        float(values[min(int(np.searchsorted(mass, m)), values.size - 1)]) for m in CONTOUR_MASSES
    ]


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
