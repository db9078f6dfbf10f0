"""Figures for a trained VAE, written as PNG files.

Every function takes plain tensors or arrays (the caller computes what to draw;
no VAE object is needed), writes one PNG to ``path`` (parent folders are
created) and returns its :class:`~pathlib.Path`. Figures are built with
:class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so no
backend is selected, no global figure is left open and an interactive session
is not disturbed.

Each figure has a fixed size: ``SIZES[name]`` inches at ``DPI`` dots per inch,
saved without tight bounding boxes, so the PNG is exactly
``SIZES[name][0] * DPI`` by ``SIZES[name][1] * DPI`` pixels (see
:func:`pixel_size`).

Images (``image_shape`` given, ``(C, H, W)`` with rows flattened channel-major) are
drawn on a shared scale, [0, 1] when all values lie there, their range otherwise: one
channel in ``IMAGE_CMAP`` (dark ink on white), three in colour, other channel counts as
the grey of their mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from pyrovae.train.state import EpochRecord

__all__ = [
    "ACTIVE_COLOR",
    "BETA_COLOR",
    "DATA_COLOR",
    "DPI",
    "IMAGE_CMAP",
    "INACTIVE_COLOR",
    "MODEL_COLOR",
    "SIZES",
    "TRAIN_COLOR",
    "VALIDATION_COLOR",
    "as_array",
    "as_images",
    "as_rgb",
    "image_hw",
    "image_range",
    "label_color",
    "mosaic",
    "new_figure",
    "pixel_size",
    "plot_interpolation",
    "plot_kl_per_dimension",
    "plot_latent_space",
    "plot_manifold",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "save_figure",
    "show_image",
]

DPI = 100
"""Dots per inch of every saved PNG."""

SIZES: dict[str, tuple[float, float]] = {
    "training_curves": (8, 5),
    "reconstructions": (10, 5),
    "samples": (7, 7.5),
    "latent_space": (8, 6.5),
    "manifold": (7, 7.5),
    "interpolation": (10, 6),
    "kl_per_dimension": (8, 4.5),
    "max_activation": (8, 8.5),
    "conv_filters": (7, 9),
    "denoising": (10, 4),
    "family_samples": (10, 5),
    "family_interpolation": (10, 5),
    "family_distances": (10, 6),
}
"""Figure size in inches (width, height) of each figure, keyed by the name after ``plot_``."""

TRAIN_COLOR = "tab:blue"
VALIDATION_COLOR = "tab:orange"
BETA_COLOR = "tab:gray"
DATA_COLOR = "0.55"
"""Observed data drawn behind model output (grey)."""
MODEL_COLOR = "tab:blue"
"""Reconstructions and samples."""
ACTIVE_COLOR = "tab:blue"
INACTIVE_COLOR = "0.75"
IMAGE_CMAP = "gray_r"
_PAD_COLOR = "white"  # gutters between tiles
_PAD = 1  # gutter width in image pixels
_MAX_RECONSTRUCTIONS = 20  # two pairs of rows of ten images
_MAX_PANELS = 8  # small multiples for non-image reconstructions
_MANY_EPOCHS = 60  # above this, training curves are drawn without markers
_TAB10 = [to_hex(f"tab:{c}") for c in ("blue", "orange", "green", "red", "purple")] + [
    to_hex(f"tab:{c}") for c in ("brown", "pink", "gray", "olive", "cyan")
]


def pixel_size(name: str) -> tuple[int, int]:
    """(width, height) in pixels of the PNG written by ``plot_<name>``."""
    width, height = SIZES[name]
    return round(width * DPI), round(height * DPI)


def label_color(index: int) -> str:
    """Colour of the ``index``-th label (0-based) in the colourblind-safe ``tab10`` cycle."""
    return _TAB10[index % len(_TAB10)]


# ----------------------------------------------------------------------- helpers


def as_array(x, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` (tensor, array or sequence) as a float64 numpy array with ``ndim`` dimensions."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    out = np.asarray(x, dtype=np.float64)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(out.shape)}")
    return out


def _labels(labels, n: int) -> np.ndarray | None:
    """Labels as a 1-D numpy array of length ``n`` (ints kept as ints), or None."""
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    out = np.asarray(labels).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(f"labels has {out.shape[0]} entries for {n} latent codes")
    return out


def new_figure(name: str) -> Figure:
    return Figure(figsize=SIZES[name], dpi=DPI, layout="constrained")


def save_figure(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def image_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Shared colour scale: [0, 1] when every finite value lies there, their range otherwise."""
    finite = np.concatenate([_finite(a.ravel()) for a in arrays])
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo == hi:
        return lo - 0.5, hi + 0.5
    return lo, hi


def image_hw(image_shape: Sequence[int]) -> tuple[int, int]:
    """(H, W) of an image shape ``(C, H, W)`` or ``(H, W)``."""
    return int(image_shape[-2]), int(image_shape[-1])


def as_images(x: np.ndarray, image_shape: Sequence[int], name: str) -> np.ndarray:
    """Rows of ``x`` (..., C * H * W), channel-major, as images: (..., H, W) for one
    channel, (..., H, W, C) for several (channels last, as matplotlib draws them).

    ``image_shape`` is ``(C, H, W)``, or ``(H, W)`` for one channel.
    """
    channels = int(image_shape[0]) if len(image_shape) == 3 else 1
    height, width = image_hw(image_shape)
    if x.shape[-1] != channels * height * width:
        raise ValueError(
            f"{name} has {x.shape[-1]} values per row but image_shape {tuple(image_shape)} "
            f"needs {channels * height * width}"
        )
    if channels == 1:
        return x.reshape(*x.shape[:-1], height, width)
    images = x.reshape(*x.shape[:-1], channels, height, width)
    return np.moveaxis(images, -3, -1)


def mosaic(images: np.ndarray, rows: int, cols: int, pad: int = _PAD) -> np.ndarray:
    """Tile images (n, H, W) or (n, H, W, C), n <= rows * cols, row by row into one array;
    gutters are NaN."""
    n, height, width = images.shape[:3]
    tail = images.shape[3:]
    out = np.full((rows * (height + pad) - pad, cols * (width + pad) - pad, *tail), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        top, left = r * (height + pad), c * (width + pad)
        out[top : top + height, left : left + width] = images[k]
    return out


def as_rgb(tiled: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    """A tiled colour image (H', W', C) scaled from ``vrange`` to [0, 1] and clipped, NaN
    gutters in the pad colour; one or two channels are shown as grey."""
    lo, hi = vrange
    scaled = np.clip((tiled - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    if scaled.shape[-1] != 3:
        scaled = np.repeat(scaled.mean(-1, keepdims=True), 3, axis=-1)
    return np.where(np.isnan(scaled), np.array(to_rgb(_PAD_COLOR)), scaled)


def show_image(ax: Axes, tiled: np.ndarray, vrange: tuple[float, float], **kwargs) -> None:
    """Draw a tiled image (grey scale, or colour when it has a channel axis), NaN gutters
    in the pad colour, with no ticks."""
    if tiled.ndim == 3:
        ax.imshow(as_rgb(tiled, vrange), interpolation="nearest", **kwargs)
    else:
        cmap = colormaps[IMAGE_CMAP].with_extremes(bad=_PAD_COLOR)
        ax.imshow(
            np.ma.masked_invalid(tiled),
            cmap=cmap,
            vmin=vrange[0],
            vmax=vrange[1],
            interpolation="nearest",
            **kwargs,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _hist_bins(values: np.ndarray) -> list[float]:
    """Bin edges shared by all series of a histogram: about sqrt(n) bins, 5 to 50."""
    finite = _finite(values)
    count = int(np.clip(round(math.sqrt(max(finite.size, 1))), 5, 50))
    if finite.size == 0:
        return np.linspace(0.0, 1.0, count + 1).tolist()
    return np.histogram_bin_edges(finite, bins=count).tolist()


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


# --------------------------------------------------------------- training curves


def plot_training_curves(
    history: Sequence[EpochRecord], path, validation_label: str = "validation ELBO"
) -> Path:
    """Training objective and validation ELBO against epoch, with beta when it varies.

    Parameters
    ----------
    history : sequence of EpochRecord, length E >= 1
        One record per epoch, as in :attr:`~pyrovae.train.state.FitResult.history`.
        The validation line is left out when every validation ELBO is NaN; a
        second, small panel shows beta when it changes over the epochs (KL warm-up).
    path : str or Path
        PNG to write; ``SIZES["training_curves"]`` inches at ``DPI``.
    validation_label : str
        Name of the validation line (an autoencoder's is its negative loss).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        When ``history`` is empty.
    """
    if len(history) == 0:
        raise ValueError("training curves: the history is empty, no epochs to plot")
    epochs = np.array([r.epoch for r in history], dtype=np.float64)
    train = np.array([r.train_objective_nats for r in history], dtype=np.float64)
    val = np.array([r.validation_elbo_nats for r in history], dtype=np.float64)
    beta = np.array([r.beta for r in history], dtype=np.float64)
    warmup = bool(np.ptp(beta) > 0)
    marker = "o" if len(history) <= _MANY_EPOCHS else None

    fig = new_figure("training_curves")
    if warmup:
        ax, ax_beta = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, ax_beta = fig.subplots(), None
    ax.plot(epochs, train, color=TRAIN_COLOR, marker=marker, ms=3, label="train objective")
    if np.isfinite(val).any():
        ax.plot(epochs, val, color=VALIDATION_COLOR, marker=marker, ms=3, label=validation_label)
    ax.set_ylabel("nats per example\n(higher is better)")
    ax.set_title(f"Training curves: objective on the training split, {validation_label}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom = ax
    if ax_beta is not None:
        ax_beta.plot(epochs, beta, color=BETA_COLOR, marker=marker, ms=3)
        ax_beta.set_ylabel("β (KL weight)")
        ax_beta.set_ylim(bottom=0)
        ax_beta.grid(alpha=0.3)
        bottom = ax_beta
    else:
        ax.set_title(f"{ax.get_title()} (β = {beta[0]:g})")
    bottom.set_xlabel("epoch")
    return save_figure(fig, path)


# -------------------------------------------------------------- reconstructions


def plot_reconstructions(x, x_hat, image_shape: Sequence[int] | None, path) -> Path:
    """Inputs next to their reconstructions.

    Parameters
    ----------
    x, x_hat : Tensor or array, shape (n, D), n >= 1
        Inputs and their reconstructions (e.g. means of p(x | z) at the posterior mean).
    image_shape : (C, H, W), (H, W) or None
        With a shape (H * W == D), the first 20 examples are drawn as images:
        an "input" row above a "reconstruction" row, ten per row (two pairs of
        rows for n > 10). Without one, the first 8 examples are drawn as small
        multiples: the D coordinates of the input (markers) and reconstruction
        (line) against coordinate index.
    path : str or Path
        PNG to write; ``SIZES["reconstructions"]`` inches at ``DPI``.

    Returns
    -------
    Path
    """
    x = as_array(x, "x", 2)
    x_hat = as_array(x_hat, "x_hat", 2)
    if x.shape != x_hat.shape:
        raise ValueError(f"x {x.shape} and x_hat {x_hat.shape} must have the same shape")
    if x.shape[0] == 0:
        raise ValueError("reconstructions: x has no rows to plot")
    fig = new_figure("reconstructions")
    if image_shape is None:
        _reconstruction_panels(fig, x[:_MAX_PANELS], x_hat[:_MAX_PANELS], x.shape[0])
    else:
        _reconstruction_images(fig, x, x_hat, image_shape)
    return save_figure(fig, path)


def _reconstruction_images(fig: Figure, x: np.ndarray, x_hat: np.ndarray, image_shape) -> None:
    shown = min(x.shape[0], _MAX_RECONSTRUCTIONS)
    images = as_images(x[:shown], image_shape, "x")
    recons = as_images(x_hat[:shown], image_shape, "x_hat")
    vrange = image_range(images, recons)
    blocks = 1 if shown <= 10 else 2
    cols = math.ceil(shown / blocks)
    axes = fig.subplots(2 * blocks, 1).ravel()
    for b in range(blocks):
        part = slice(b * cols, min((b + 1) * cols, shown))
        for ax, data, label in (
            (axes[2 * b], images[part], "input"),
            (axes[2 * b + 1], recons[part], "reconstruction"),
        ):
            show_image(ax, mosaic(data, 1, cols), vrange)
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=11)
    fig.suptitle(
        f"Reconstructions of {shown} of {x.shape[0]} examples: each input above its reconstruction",
        fontsize=13,
    )


def _reconstruction_panels(fig: Figure, x: np.ndarray, x_hat: np.ndarray, total: int) -> None:
    n, dim = x.shape
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    index = np.arange(1, dim + 1)
    for k, ax in enumerate(axes):
        if k >= n:
            ax.set_visible(False)
            continue
        ax.plot(index, x[k], "o", color=DATA_COLOR, ms=4, label="data")
        ax.plot(index, x_hat[k], "-", color=MODEL_COLOR, lw=1.5, label="reconstruction")
        ax.set_title(f"example {k + 1}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        if k % cols == 0:
            ax.set_ylabel("value")
        if k >= n - cols:
            ax.set_xlabel("coordinate")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2)
    fig.suptitle(
        f"Reconstructions of {n} of {total} examples: data (dots) and reconstruction (line)",
        fontsize=13,
    )


# ----------------------------------------------------------------------- samples


def plot_samples(
    samples,
    image_shape: Sequence[int] | None,
    path,
    data=None,
    title: str = "Samples from the prior (means of p(x|z), z ~ N(0, I))",
) -> Path:
    """Samples from the model's prior (or another distribution of codes).

    Parameters
    ----------
    samples : Tensor or array, shape (n, D), n >= 1
        Decoded samples, e.g. means of p(x | z) with z ~ N(0, I).
    image_shape : (C, H, W), (H, W) or None
        With a shape, the samples are drawn as a square-ish grid of images.
        Without one, the first two coordinates of the samples are scattered over
        those of ``data`` (grey); for D == 1, overlaid histograms.
    path : str or Path
        PNG to write; ``SIZES["samples"]`` inches at ``DPI``.
    data : Tensor or array, shape (m, D), optional
        Observed data for comparison (non-image data only; ignored for images).
    title : str
        Says where the codes came from.

    Returns
    -------
    Path
    """
    samples = as_array(samples, "samples", 2)
    if samples.shape[0] == 0:
        raise ValueError("samples: no samples to plot")
    fig = new_figure("samples")
    ax = fig.subplots()
    if image_shape is not None:
        images = as_images(samples, image_shape, "samples")
        cols = math.ceil(math.sqrt(len(images)))
        rows = math.ceil(len(images) / cols)
        show_image(ax, mosaic(images, rows, cols), image_range(images))
        ax.set_title(title, fontsize=13)
        return save_figure(fig, path)
    if data is not None:
        data = as_array(data, "data", 2)
        if data.shape[1] != samples.shape[1]:
            raise ValueError(f"data has D = {data.shape[1]}, samples D = {samples.shape[1]}")
    if samples.shape[1] == 1:
        _sample_histograms(ax, samples[:, 0], None if data is None else data[:, 0])
    else:
        _sample_scatter(ax, samples, data)
    ax.set_title(title, fontsize=13)
    return save_figure(fig, path)


def _sample_histograms(ax: Axes, samples: np.ndarray, data: np.ndarray | None) -> None:
    both = samples if data is None else np.concatenate([samples, data])
    bins = _hist_bins(both)
    if data is not None:
        ax.hist(_finite(data), bins=bins, density=True, color=DATA_COLOR, alpha=0.6, label="data")
    ax.hist(
        _finite(samples), bins=bins, density=True, color=MODEL_COLOR, alpha=0.6, label="samples"
    )
    ax.set_xlabel("x1")
    ax.set_ylabel("density")
    ax.legend()
    ax.grid(alpha=0.3)


def _sample_scatter(ax: Axes, samples: np.ndarray, data: np.ndarray | None) -> None:
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=8, color=DATA_COLOR, alpha=0.5, label="data", lw=0)
    ax.scatter(samples[:, 0], samples[:, 1], s=10, color=MODEL_COLOR, alpha=0.8, label="samples")
    ax.set_xlabel("x1 (first coordinate)")
    ax.set_ylabel("x2 (second coordinate)")
    ax.legend(markerscale=2)
    ax.grid(alpha=0.3)


# ------------------------------------------------------------------ latent space


def plot_latent_space(z, labels, path) -> Path:
    """Latent codes, coloured by label.

    Parameters
    ----------
    z : Tensor or array, shape (N, L), N >= 1
        Latent codes, e.g. posterior means of the test split.
    labels : Tensor or array, shape (N,), or None
        Class of each code; colours follow ``tab10`` in sorted label order.
    path : str or Path
        PNG to write; ``SIZES["latent_space"]`` inches at ``DPI``.

    Notes
    -----
    L == 1: a histogram, or one jittered strip per label. L == 2: a scatter of
    z1 against z2. L > 2: a scatter of the first two principal components (PCA
    by SVD of the centred codes); the title gives their share of the variance.

    Returns
    -------
    Path
    """
    z = as_array(z, "z", 2)
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"latent space: z of shape {z.shape} has nothing to plot")
    labels = _labels(labels, z.shape[0])
    fig = new_figure("latent_space")
    ax = fig.subplots()
    latent_dim = z.shape[1]
    if latent_dim == 1:
        _latent_1d(ax, z[:, 0], labels)
        ax.set_title("Latent codes (L = 1)", fontsize=13)
        return save_figure(fig, path)
    if latent_dim == 2:
        xy, names, title = z, ("z1", "z2"), "Latent codes (L = 2)"
    else:
        xy, share = _pca_2d(z)
        names = ("PC1", "PC2")
        explained = "" if share is None else f": PC1 + PC2 explain {_percent(share)} of variance"
        title = f"Latent codes (L = {latent_dim}), PCA projection{explained}"
    _scatter_by_label(fig, ax, xy, labels)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title, fontsize=13)
    return save_figure(fig, path)


def _pca_2d(z: np.ndarray) -> tuple[np.ndarray, float | None]:
    """First two principal components of z (N, L) and their share of the variance."""
    centred = z - z.mean(axis=0)
    centred = np.nan_to_num(centred, nan=0.0, posinf=0.0, neginf=0.0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((xy.shape[0], 2 - xy.shape[1]))])
    total = float(np.sum(singular**2))
    share = float(np.sum(singular[:2] ** 2)) / total if total > 0 else None
    return xy, share


def _scatter_by_label(fig: Figure, ax: Axes, xy: np.ndarray, labels: np.ndarray | None) -> None:
    size = 12 if xy.shape[0] <= 2000 else 5
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color=MODEL_COLOR, alpha=0.7, lw=0)
    else:
        for k, value in enumerate(np.unique(labels)):
            keep = labels == value
            ax.scatter(
                xy[keep, 0], xy[keep, 1], s=size, color=label_color(k), alpha=0.7, lw=0,
                label=str(value),
            )  # fmt: skip
        fig.legend(loc="outside right upper", title="label", markerscale=2.5, frameon=False)
    ax.grid(alpha=0.3)


def _latent_1d(ax: Axes, z: np.ndarray, labels: np.ndarray | None) -> None:
    if labels is None:
        ax.hist(_finite(z), bins=_hist_bins(z), color=MODEL_COLOR, alpha=0.8)
        ax.set_ylabel("count")
    else:
        values = np.unique(labels)
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=len(z))
        for k, value in enumerate(values):
            keep = labels == value
            ax.scatter(z[keep], k + jitter[keep], s=8, color=label_color(k), alpha=0.6, lw=0)
        ax.set_yticks(range(len(values)), [str(v) for v in values])
        ax.set_ylabel("label")
    ax.set_xlabel("z1")
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------------- manifold


def plot_manifold(decoded, grid, image_shape: Sequence[int] | None, path) -> Path:
    """Decoded outputs over a regular grid of a 2-D latent space.

    Parameters
    ----------
    decoded : Tensor or array, shape (rows * cols, D)
        Decoder output (e.g. means of p(x | z)) at each grid point.
    grid : Tensor or array, shape (rows * cols, 2)
        The latent points, a regular rows x cols grid in any order (e.g. from
        normal quantiles; the spacing need not be even). Rows are arranged with
        z2 decreasing downwards and z1 increasing to the right.
    image_shape : (C, H, W), (H, W) or None
        With a shape, the decoded images are tiled edge to edge and the axes
        are labelled with the z1 / z2 value at tile centres. Without one, a
        heatmap of the first decoded coordinate over the grid, with a colourbar.
    path : str or Path
        PNG to write; ``SIZES["manifold"]`` inches at ``DPI``.

    Returns
    -------
    Path
    """
    decoded = as_array(decoded, "decoded", 2)
    grid = as_array(grid, "grid", 2)
    if grid.shape[1] != 2 or grid.shape[0] != decoded.shape[0] or grid.shape[0] == 0:
        raise ValueError(
            f"manifold: grid {grid.shape} must be (n, 2) with n = decoded rows {decoded.shape[0]}"
        )
    z1, z2 = np.unique(grid[:, 0]), np.unique(grid[:, 1])[::-1]
    rows, cols = len(z2), len(z1)
    if rows * cols != grid.shape[0]:
        raise ValueError(
            f"manifold: the {grid.shape[0]} grid points are not a regular grid "
            f"({cols} distinct z1 values x {rows} distinct z2 values)"
        )
    order = np.lexsort((grid[:, 0], -grid[:, 1]))  # z2 descending, then z1 ascending
    decoded = decoded[order]
    fig = new_figure("manifold")
    ax = fig.subplots()
    if image_shape is None:
        _manifold_heatmap(fig, ax, decoded[:, 0].reshape(rows, cols), z1, z2)
    else:
        _manifold_images(ax, as_images(decoded, image_shape, "decoded"), z1, z2)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return save_figure(fig, path)


def _manifold_images(ax: Axes, images: np.ndarray, z1: np.ndarray, z2: np.ndarray) -> None:
    rows, cols = len(z2), len(z1)
    height, width = images.shape[1:3]
    show_image(ax, mosaic(images, rows, cols, pad=1), image_range(images))
    ax.set_xticks(*_tile_ticks(z1, width + 1))
    ax.set_yticks(*_tile_ticks(z2, height + 1))
    ax.set_title("Decoded latent grid: means of p(x|z) over (z1, z2)", fontsize=13)


def _tile_ticks(values: np.ndarray, tile: int, most: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions at the centres of up to ``most`` tiles, both ends included, labelled
    with their latent value."""
    count = min(len(values), most)
    keep = sorted({round(k) for k in np.linspace(0, len(values) - 1, count)})
    positions = [k * tile + (tile - 1) / 2 - 0.5 for k in keep]  # tile includes a 1 px gutter
    return positions, [f"{values[k]:.2g}" for k in keep]


def _manifold_heatmap(
    fig: Figure, ax: Axes, values: np.ndarray, z1: np.ndarray, z2: np.ndarray
) -> None:
    mesh = ax.pcolormesh(z1, z2, values, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="x1 (first decoded coordinate)")
    ax.set_title("Decoded latent grid: first coordinate of the mean of p(x|z)", fontsize=13)


# ----------------------------------------------------------------- interpolation


def plot_interpolation(
    frames, image_shape: Sequence[int] | None, path, code_name: str = "posterior means"
) -> Path:
    """Decoded straight-line interpolations in latent space.

    Parameters
    ----------
    frames : Tensor or array, shape (pairs, steps, D)
        For each pair of inputs, the decoded points along the straight line
        between their posterior means; ``frames[:, 0]`` decodes the start and
        ``frames[:, -1]`` the end.
    image_shape : (C, H, W), (H, W) or None
        With a shape, one row of images per pair, start on the left. Without
        one, one path per pair through the first two coordinates (for D == 1,
        the coordinate against the step).
    path : str or Path
        PNG to write; ``SIZES["interpolation"]`` inches at ``DPI``.
    code_name : str
        What the lines join, for the title (an autoencoder's are its "codes").

    Returns
    -------
    Path
    """
    frames = as_array(frames, "frames", 3)
    pairs, steps, _ = frames.shape
    if pairs == 0 or steps == 0:
        raise ValueError(f"interpolation: frames of shape {frames.shape} has nothing to plot")
    fig = new_figure("interpolation")
    ax = fig.subplots()
    if image_shape is not None:
        images = as_images(frames, image_shape, "frames")
        height, width = image_hw(image_shape)
        tiled = mosaic(images.reshape(pairs * steps, *images.shape[2:]), pairs, steps)
        show_image(ax, tiled, image_range(images))
        ends = [0] if steps == 1 else [0, steps - 1]
        ax.set_xticks(
            [k * (width + _PAD) + (width - 1) / 2 for k in ends], ["start", "end"][: len(ends)]
        )
        ax.set_yticks(
            [k * (height + _PAD) + (height - 1) / 2 for k in range(pairs)],
            [f"pair {k + 1}" for k in range(pairs)],
        )
        ax.tick_params(length=0)
    else:
        _interpolation_paths(ax, frames)
    how = (
        f"decoded in {steps} steps, left = start, right = end"
        if image_shape is not None
        else f"decoded in {steps} steps, circle = start, square = end"
    )
    ax.set_title(
        f"Straight-line interpolation between two inputs' {code_name}\n({how})",
        fontsize=13,
    )
    return save_figure(fig, path)


def _interpolation_paths(ax: Axes, frames: np.ndarray) -> None:
    pairs, steps, dim = frames.shape
    along = np.arange(1, steps + 1)
    for k in range(pairs):
        color = label_color(k)
        xs, ys = (frames[k, :, 0], frames[k, :, 1]) if dim > 1 else (along, frames[k, :, 0])
        ax.plot(xs, ys, "-", color=color, lw=1.5, marker=".", label=f"pair {k + 1}")
        ax.plot(xs[0], ys[0], "o", color=color, ms=8)
        ax.plot(xs[-1], ys[-1], "s", color=color, ms=8)
    handles, names = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", ms=8),
        Line2D([], [], ls="", marker="s", color="0.3", ms=8),
    ]
    ax.legend(handles, [*names, "start", "end"], fontsize=9)
    ax.set_xlabel("x1 (first coordinate)" if dim > 1 else "step")
    ax.set_ylabel("x2 (second coordinate)" if dim > 1 else "x1 (first coordinate)")
    ax.grid(alpha=0.3)


# ------------------------------------------------------------------ KL per unit


def plot_kl_per_dimension(kl, active, path, threshold_note: str = "") -> Path:
    """KL divergence of each latent dimension, active units highlighted.

    Parameters
    ----------
    kl : Tensor or array, shape (L,)
        Mean over examples of KL(q(z_j | x) || p(z_j)) per dimension, nats per example.
    active : Tensor or array of bool, shape (L,)
        Which units count as active.
    path : str or Path
        PNG to write; ``SIZES["kl_per_dimension"]`` inches at ``DPI``.
    threshold_note : str
        Appended to the title, e.g. ``"active: Cov_x(E[z_j | x]) > 0.01"``.

    Returns
    -------
    Path
    """
    kl = as_array(kl, "kl", 1)
    if isinstance(active, torch.Tensor):
        active = active.detach().cpu().numpy()
    active = np.asarray(active, dtype=bool).reshape(-1)
    if active.shape != kl.shape or kl.size == 0:
        raise ValueError(f"kl {kl.shape} and active {active.shape} must be (L,) with L >= 1")
    fig = new_figure("kl_per_dimension")
    ax = fig.subplots()
    dims = np.arange(1, kl.size + 1)
    colors = np.where(active, to_hex(ACTIVE_COLOR), to_hex(INACTIVE_COLOR))
    ax.bar(dims, np.nan_to_num(kl, nan=0.0), color=colors, width=0.8)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats per example)")
    ax.set_xlim(0.4, kl.size + 0.6)
    if kl.size <= 20:
        ax.set_xticks(dims)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    ax.legend([Patch(color=ACTIVE_COLOR), Patch(color=INACTIVE_COLOR)], ["active", "inactive"])
    title = f"KL per latent dimension: {int(active.sum())} of {kl.size} active"
    ax.set_title(f"{title}\n{threshold_note}" if threshold_note else title, fontsize=13)
    return save_figure(fig, path)
