"""The MNIST source: the official IDX files in ``data.path`` (optionally downloaded).

With the official train files, train and validation come from them (validation:
their last rows) and test is the t10k set. With only the t10k files, they are split
in order: the first ``1 - test_fraction`` rows are train (their last
``validation_fraction`` share is validation), the rest test; the default 0.2 gives
8,000 / 2,000. Pixels are divided by 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrovae.data.idx import download_mnist, read_idx
from pyrovae.data.source import Source
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = ["load_mnist"]


def _find(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _mnist_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Images (N, 28, 28) and labels (N,) of ``train`` or ``t10k``, or None if absent."""
    images = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1:
        raise DataError(f"data: {images} must hold images and {labels} labels; swap or replace")
    return x, y


def load_mnist(spec: DataSpec) -> Source:
    """Images ``(N, 28, 28)`` in [0, 1] and labels, the t10k rows last."""
    folder = Path(spec.path)
    test = _mnist_pair(folder, "t10k")
    if test is None and spec.download:
        download_mnist(folder)
        test = _mnist_pair(folder, "t10k")
    if test is None:
        raise DataError(
            f"data: MNIST files not found in {folder} (expected t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz, optionally train-images-idx3-ubyte.gz and "
            "train-labels-idx1-ubyte.gz, gzipped or not); put them there or set "
            "data.download = true"
        )
    train = _mnist_pair(folder, "train")
    if train is None:
        return Source(
            test[0] / np.float32(255), test[1], ordered=True, origin=str(folder), levels=256
        )
    if len(train[0]) != len(train[1]) or len(test[0]) != len(test[1]):
        raise DataError(f"data: MNIST images and labels in {folder} differ in number; re-download")
    x = np.concatenate([train[0], test[0]]) / np.float32(255)
    y = np.concatenate([train[1], test[1]])
    return Source(x, y, ordered=True, n_test=len(test[0]), origin=str(folder), levels=256)
