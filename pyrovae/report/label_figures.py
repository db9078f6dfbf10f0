"""Figures of the models that use labels: samples per class, the same code decoded under
every class, and M2's confusion matrix.

Like :mod:`pyrovae.report.figures`, each function takes plain tensors or arrays and
writes one PNG; what to draw is computed in :mod:`pyrovae.report.run_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pyrovae.report.figures import (
    DPI,
    as_array,
    as_images,
    image_hw,
    image_range,
    label_color,
    mosaic,
    save_figure,
    show_image,
)

__all__ = ["LABEL_FIGURES", "plot_class_samples", "plot_class_transfer", "plot_confusion"]

LABEL_FIGURES = {
    "class_samples": "Samples of each class (one row per class y): means of p(x | z, y) with "
    "z ~ p(z), a fresh z for every image.",
    "class_transfer": "Style kept, class changed: the first column is a test input; the others "
    "decode its code mu_phi(x, y) under every class y' (column headers).",
    "confusion": "Confusion matrix of M2's classifier q(y|x) on the test split: rows are true "
    "classes, columns predicted ones; counts, shaded by the share of the row.",
}
"""Figure names (files ``figures/<name>.png``) and their captions."""

_CELL = 0.42  # inches per image in the class grids


def _grid_figure(rows: int, cols: int) -> Figure:
    width = max(4.0, _CELL * cols + 1.2)
    height = max(2.5, _CELL * rows + 0.9)
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _label_rows(ax, names: list[str], height: int) -> None:
    ax.set_yticks([k * (height + 1) + (height - 1) / 2 for k in range(len(names))], names)
    ax.tick_params(length=0)


def plot_class_samples(samples, image_shape: Sequence[int] | None, path) -> Path:
    """One row of samples per class.

    Parameters
    ----------
    samples : Tensor or array, shape (C, n, D)
        Means of p(x | z, y = c) for n draws of z in row c.
    image_shape : (C, H, W), (H, W) or None
        Without a shape, the first two coordinates are scattered, coloured by class
        (one coordinate: against the draw's index).
    path : str or Path

    Returns
    -------
    Path
    """
    values = as_array(samples, "samples", 3)
    classes, n, dim = values.shape
    if classes == 0 or n == 0:
        raise ValueError("class samples: need at least one class and one sample")
    if image_shape is not None:
        images = as_images(values.reshape(classes * n, dim), image_shape, "samples")
        fig = _grid_figure(classes, n)
        ax = fig.subplots()
        show_image(ax, mosaic(images, classes, n), image_range(images))
        _label_rows(ax, [f"y = {c}" for c in range(classes)], image_hw(image_shape)[0])
    else:
        fig = Figure(figsize=(5.5, 4.5), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        for c in range(classes):
            xs = values[c, :, 0] if dim > 1 else np.arange(n)
            ys = values[c, :, 1] if dim > 1 else values[c, :, 0]
            ax.scatter(xs, ys, s=12, color=label_color(c), label=f"y = {c}", alpha=0.8)
        ax.set_xlabel("x[0]" if dim > 1 else "draw")
        ax.set_ylabel("x[1]" if dim > 1 else "x[0]")
        ax.legend(fontsize=8, ncols=2)
    ax.set_title("Samples of each class: E[x | z, y], z ~ p(z)", fontsize=12)
    return save_figure(fig, path)


def plot_class_transfer(inputs, decoded, image_shape: Sequence[int], path) -> Path:
    """Each test input beside its code decoded under every class.

    Parameters
    ----------
    inputs : Tensor or array, shape (n, D)
    decoded : Tensor or array, shape (n, C, D)
        Row i, column c: E[x | z = mu_phi(x_i, y_i), y = c].
    image_shape : (C, H, W) or (H, W)
    path : str or Path
    """
    x = as_array(inputs, "inputs", 2)
    out = as_array(decoded, "decoded", 3)
    if out.shape[0] != x.shape[0] or out.shape[2] != x.shape[1] or x.shape[0] == 0:
        raise ValueError(f"class transfer: inputs {x.shape} and decoded {out.shape} disagree")
    n, classes, dim = out.shape
    rows = np.concatenate([x[:, None, :], out], axis=1).reshape(n * (classes + 1), dim)
    images = as_images(rows, image_shape, "images")
    fig = _grid_figure(n, classes + 1)
    ax = fig.subplots()
    show_image(ax, mosaic(images, n, classes + 1), image_range(images))
    width = image_hw(image_shape)[1]
    ax.set_xticks(
        [k * (width + 1) + (width - 1) / 2 for k in range(classes + 1)],
        ["input"] + [str(c) for c in range(classes)],
    )
    ax.tick_params(length=0)
    ax.set_title("The same code decoded under every class", fontsize=12)
    return save_figure(fig, path)


def plot_confusion(confusion, path, accuracy: float | None = None) -> Path:
    """A confusion matrix as a heat map with its counts.

    Parameters
    ----------
    confusion : Tensor or array, shape (C, C)
        Counts; rows true classes, columns predicted ones.
    path : str or Path
    accuracy : float, optional
        Shown in the title.
    """
    counts = as_array(confusion, "confusion", 2)
    classes = counts.shape[0]
    if counts.shape != (classes, classes) or classes == 0:
        raise ValueError(f"confusion must be a non-empty square matrix, got {counts.shape}")
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = max(3.5, 0.45 * classes + 1.5)
    fig = Figure(figsize=(side + 0.8, side), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(classes):
        for j in range(classes):
            if counts[i, j]:
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(
                    j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7, color=color
                )
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    title = "Classifier q(y|x) on the test split"
    if accuracy is not None:
        title += f": accuracy {100 * accuracy:.1f}%"
    ax.set_title(title, fontsize=11)
    return save_figure(fig, path)
