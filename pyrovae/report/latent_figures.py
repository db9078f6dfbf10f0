"""Figures of the autoencoder family: unit features, denoising and the kinds side by side.

Like :mod:`pyrovae.report.figures`, every function takes plain tensors or arrays,
writes one PNG of ``plots.SIZES[name]`` inches at ``plots.DPI`` and returns
its path; no ``pyplot`` state is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from pyrovae.report.figures import (
    IMAGE_CMAP,
    as_array,
    as_images,
    image_hw,
    image_range,
    mosaic,
    new_figure,
    save_figure,
    show_image,
)

__all__ = [
    "DISTANCE_BARS",
    "ENERGY_BARS",
    "MAX_FILTERS",
    "MAX_UNITS",
    "plot_conv_filters",
    "plot_denoising",
    "plot_family_distances",
    "plot_family_rows",
    "plot_max_activation",
]

MAX_UNITS = 100
"""Most units drawn by :func:`plot_max_activation` (a 10 x 10 grid)."""

FEATURE_CMAP = "RdBu_r"
"""Diverging: a feature's weights are signed (red positive, blue negative, white 0)."""

DISTANCE_BARS = {
    "prior_sample_distance": ("samples z ~ N(0, I) → data", "tab:blue", ""),
    "fitted_sample_distance": ("samples z ~ fitted Gaussian → data", "tab:blue", "//"),
    "prior_coverage_distance": ("data → samples z ~ N(0, I)", "tab:orange", ""),
    "fitted_coverage_distance": ("data → samples z ~ fitted Gaussian", "tab:orange", "//"),
    "interpolation_distance": ("interpolation frames → data", "tab:green", ""),
}
"""Right panel of :func:`plot_family_distances`: metric -> (legend label, colour, hatch)."""

ENERGY_BARS = {
    "prior_energy_distance": ("z ~ N(0, I)", "tab:purple", ""),
    "fitted_energy_distance": ("z ~ fitted Gaussian", "tab:purple", "//"),
}
"""Left panel of :func:`plot_family_distances` (log scale)."""


def _row_labels(ax, labels: Sequence[str], height: int) -> None:
    ax.set_yticks([k * (height + 1) + (height - 1) / 2 for k in range(len(labels))], labels)
    ax.tick_params(length=0)


def plot_max_activation(inputs, image_shape: Sequence[int], path) -> Path:
    """The norm-1 inputs that maximally activate each unit, as an image grid.

    Parameters
    ----------
    inputs : Tensor or array, shape (U, D), U >= 1
        Row i is W_i / ||W_i|| (:func:`pyrovae.evaluate.units.max_activation_inputs`);
        the first :data:`MAX_UNITS` are drawn. Grey images (C = 1) share one symmetric
        diverging scale; colour images (C = 3) are drawn in colour, each unit stretched
        to [0, 1]; other channel counts show the mean over the channels.
    image_shape : (C, H, W) or (H, W)
        C * H * W == D.
    path : str or Path
        PNG to write; ``SIZES["max_activation"]``.
    """
    inputs = as_array(inputs, "inputs", 2)
    if inputs.shape[0] == 0:
        raise ValueError("max_activation: no units to plot")
    shown = inputs[:MAX_UNITS]
    channels = int(image_shape[0]) if len(image_shape) == 3 else 1
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig = new_figure("max_activation")
    ax = fig.subplots()
    if channels == 3:
        stretched = _stretched(shown)
        show_image(ax, mosaic(as_images(stretched, image_shape, "inputs"), rows, cols), (0, 1))
        how = "colour: each unit stretched to [0, 1]"
    else:
        grey = shown.reshape(len(shown), channels, -1).mean(1)
        images = as_images(grey, image_hw(image_shape), "inputs")
        limit = float(np.nanmax(np.abs(images))) or 1.0
        cmap = colormaps[FEATURE_CMAP].with_extremes(bad="white")
        tiled = np.ma.masked_invalid(mosaic(images, rows, cols))
        mesh = ax.imshow(tiled, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        label = "x_j = W_ij / ||W_i||" + (" (mean over channels)" if channels > 1 else "")
        fig.colorbar(mesh, ax=ax, shrink=0.6, label=label)
        how = "red: positive weight, blue: negative"
    ax.set_title(
        f"Inputs of norm 1 that maximally activate each first-layer unit\n"
        f"({len(shown)} of {inputs.shape[0]} units; {how})",
        fontsize=12,
    )
    return save_figure(fig, path)


def _stretched(rows: np.ndarray) -> np.ndarray:
    """Each row ``(n, D)`` mapped linearly onto [0, 1] (a constant row to 0)."""
    lo, hi = rows.min(1, keepdims=True), rows.max(1, keepdims=True)
    return (rows - lo) / np.where(hi > lo, hi - lo, 1.0)


MAX_FILTERS = 16
"""Most filters drawn by :func:`plot_conv_filters`, one row each."""


def plot_conv_filters(filters, patches, path) -> Path:
    """A conv encoder's first-layer filters, each beside the data patches that excite it
    most, one row per filter.

    Parameters
    ----------
    filters : Tensor or array, shape (F, C, k, k)
        The first :data:`MAX_FILTERS` are drawn: one channel on a symmetric diverging
        scale (red positive, blue negative), colour ones (C = 3) each stretched to [0, 1].
    patches : Tensor or array, shape (F, top, C, k, k)
        :attr:`~pyrovae.evaluate.units.FilterPatches.patches`, largest activation first,
        drawn on the data's shared scale.
    path : str or Path
        PNG to write; ``SIZES["conv_filters"]``.
    """
    w = as_array(filters, "filters", 4)[:MAX_FILTERS]
    p = as_array(patches, "patches", 5)[:MAX_FILTERS]
    if len(w) == 0 or p.shape[0] != len(w) or p.shape[2:] != w.shape[1:]:
        raise ValueError(f"conv filters: filters {w.shape} and patches {p.shape} disagree")
    n, top = p.shape[:2]
    tiles = np.concatenate([_filter_colours(w)[:, None], _patch_colours(p)], axis=1)
    fig = new_figure("conv_filters")
    ax = fig.subplots()
    size = tiles.shape[2]
    show_image(ax, mosaic(tiles.reshape(n * (top + 1), *tiles.shape[2:]), n, top + 1), (0, 1))
    ax.set_xticks(
        [k * (size + 1) + (size - 1) / 2 for k in range(top + 1)],
        ["filter", *[str(k + 1) for k in range(top)]],
    )
    ax.tick_params(length=0)
    ax.set_title(
        f"First-layer convolution filters ({n} of {len(filters)}), each beside the\n"
        f"{top} data patches that excite it most (1: most)",
        fontsize=12,
    )
    return save_figure(fig, path)


def _filter_colours(w: np.ndarray) -> np.ndarray:
    """Kernels ``(F, C, k, k)`` as RGB ``(F, k, k, 3)``."""
    n = len(w)
    if w.shape[1] == 3:
        return as_images(_stretched(w.reshape(n, -1)), w.shape[1:], "filters")
    mean = w.mean(1)
    limit = float(np.abs(mean).max()) or 1.0
    return colormaps[FEATURE_CMAP]((mean / limit + 1) / 2)[..., :3]


def _patch_colours(p: np.ndarray) -> np.ndarray:
    """Patches ``(F, top, C, k, k)`` as RGB ``(F, top, k, k, 3)`` on one shared scale."""
    lo, hi = image_range(p)
    scaled = np.clip((p - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    if p.shape[2] == 3:
        return np.moveaxis(scaled, 2, -1)
    return colormaps[IMAGE_CMAP](scaled.mean(2))[..., :3]


def plot_denoising(clean, corrupted, reconstructed, image_shape: Sequence[int], path) -> Path:
    """Clean inputs, their corrupted copies and the reconstructions from the corrupted copies.

    Parameters
    ----------
    clean, corrupted, reconstructed : Tensor or array, shape (n, D), n >= 1
        The first 10 of each are drawn, one row each.
    image_shape : (C, H, W) or (H, W)
    path : str or Path
        PNG to write; ``SIZES["denoising"]``.
    """
    rows = [as_array(a, name, 2) for a, name in ((clean, "clean"), (corrupted, "corrupted"))]
    rows.append(as_array(reconstructed, "reconstructed", 2))
    if len({r.shape for r in rows}) != 1 or rows[0].shape[0] == 0:
        raise ValueError("denoising: clean, corrupted and reconstructed need one shape (n, D)")
    n = min(rows[0].shape[0], 10)
    images = np.concatenate([as_images(r[:n], image_shape, "x") for r in rows])
    fig = new_figure("denoising")
    ax = fig.subplots()
    show_image(ax, mosaic(images, 3, n), image_range(images))
    labels = ["clean", "corrupted", "reconstructed\nfrom corrupted"]
    _row_labels(ax, labels, image_hw(image_shape)[0])
    ax.set_title("Reconstructing clean test inputs from corrupted copies", fontsize=13)
    return save_figure(fig, path)


def plot_family_rows(
    rows: Mapping[str, object], image_shape: Sequence[int], path, name: str, title: str
) -> Path:
    """One row of images per model kind, on one shared grey scale.

    Parameters
    ----------
    rows : mapping of kind -> Tensor or array, shape (n, D)
        The same n for every kind (e.g. decoded samples, or the frames of one
        interpolation).
    image_shape : (C, H, W) or (H, W)
    path : str or Path
    name : str
        ``"family_samples"`` or ``"family_interpolation"`` (sets the figure size).
    title : str
    """
    arrays = [as_array(v, k, 2) for k, v in rows.items()]
    if not arrays or len({a.shape for a in arrays}) != 1 or arrays[0].shape[0] == 0:
        raise ValueError("family rows: every kind needs an (n, D) array of the same shape")
    n = arrays[0].shape[0]
    images = np.concatenate([as_images(a, image_shape, "rows") for a in arrays])
    fig = new_figure(name)
    ax = fig.subplots()
    show_image(ax, mosaic(images, len(arrays), n), image_range(images))
    _row_labels(ax, list(rows), image_hw(image_shape)[0])
    ax.set_title(title, fontsize=13)
    return save_figure(fig, path)


def plot_family_distances(table: Mapping[str, Mapping[str, float]], path) -> Path:
    """Latent-space distances of each kind as grouped bars (lower is better).

    Parameters
    ----------
    table : mapping of kind -> mapping of metric -> value
        Left panel (log scale): the energy distances of :data:`ENERGY_BARS`;
        right panel: the nearest-neighbour distances of :data:`DISTANCE_BARS`
        and, when present, ``reconstruction_distance`` as a black tick (the
        distance the model's own reconstructions reach). Missing metrics are
        skipped.
    path : str or Path
        PNG to write; ``SIZES["family_distances"]``.
    """
    kinds = list(table)
    energy = [m for m in ENERGY_BARS if any(m in table[k] for k in kinds)]
    nearest = [m for m in DISTANCE_BARS if any(m in table[k] for k in kinds)]
    if not kinds or not (energy or nearest):
        raise ValueError("family distances: nothing to plot")
    fig = new_figure("family_distances")
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    _grouped_bars(left, table, energy, ENERGY_BARS)
    left.set_yscale("log")
    left.set_ylabel("energy distance to the training data\n(log scale, lower is better)")
    left.set_title("Samples as a distribution", fontsize=11)
    x = _grouped_bars(right, table, nearest, DISTANCE_BARS)
    recon = [table[k].get("reconstruction_distance", np.nan) for k in kinds]
    if np.isfinite(recon).any():
        right.hlines(
            recon, x - 0.45, x + 0.45, colors="black", lw=2, label="reconstructions → data"
        )
    right.set_ylabel("mean nearest-neighbour distance\nin pixel space (lower is better)")
    right.set_title("Nearest neighbours (favour faint, blurred images)", fontsize=11)
    for ax in (left, right):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2)
    fig.suptitle("Latent space: how close decoded codes lie to the data, by model kind")
    return save_figure(fig, path)


def _grouped_bars(ax, table, metrics: Sequence[str], styles: Mapping[str, tuple]) -> np.ndarray:
    """One group of bars per kind, one bar per metric; returns the group centres."""
    kinds = list(table)
    x = np.arange(len(kinds), dtype=float)
    width = 0.8 / max(len(metrics), 1)
    for i, metric in enumerate(metrics):
        label, color, hatch = styles[metric]
        values = [table[k].get(metric, np.nan) for k in kinds]
        offset = x - 0.4 + (i + 0.5) * width
        ax.bar(offset, values, width, label=label, color=color, hatch=hatch, edgecolor="white")
    ax.set_xticks(x, kinds, rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return x
