"""The IDX sources: MNIST, Fashion-MNIST and Kuzushiji-MNIST, from their official files
in ``data.path`` (optionally downloaded).

The three share MNIST's format and file names (:data:`~pyrovae.data.idx.IDX_DATASETS`).
With the official train files, train and validation come from them (validation: their
last rows) and test is the t10k set. With only the t10k files, they are split in order:
the first ``1 - test_fraction`` rows are train (their last ``validation_fraction`` share
is validation), the rest test; the default 0.2 gives 8,000 / 2,000. Pixels are divided
by 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrovae.data.idx import IDX_DATASETS, IdxDataset, download_idx, read_idx
from pyrovae.data.source import Source, as_values
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = ["load_idx_source", "load_mnist"]


def _find(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Images (N, H, W) and labels (N,) of ``train`` or ``t10k``, or None if absent."""
    images = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1:
        raise DataError(f"data: {images} must hold images and {labels} labels; swap or replace")
    return x, y


def _missing(folder: Path, dataset: IdxDataset) -> DataError:
    return DataError(
        f"data: {dataset.title} files not found in {folder} (expected "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, optionally "
        "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, gzipped or not); put "
        "them there or set data.download = true"
    )


def load_idx_source(spec: DataSpec) -> Source:
    """Images ``(N, H, W)`` in [0, 1] and labels of the IDX data set ``spec.name``, the
    t10k rows last."""
    dataset = IDX_DATASETS[spec.name]
    folder = Path(spec.path)
    test = _idx_pair(folder, "t10k")
    if test is None and spec.download:
        download_idx(folder, dataset)
        test = _idx_pair(folder, "t10k")
    if test is None:
        raise _missing(folder, dataset)
    names = dataset.class_names
    train = _idx_pair(folder, "train")
    if train is None:
        x = as_values(test[0])
        return Source(x, test[1], ordered=True, origin=str(folder), levels=256, class_names=names)
    if len(train[0]) != len(train[1]) or len(test[0]) != len(test[1]):
        raise DataError(
            f"data: {dataset.title} images and labels in {folder} differ in number; re-download"
        )
    if train[0].shape[1:] != test[0].shape[1:]:
        raise DataError(
            f"data: {dataset.title} train images in {folder} are {train[0].shape[1:]} but "
            f"t10k images are {test[0].shape[1:]}; re-download"
        )
    x = as_values(np.concatenate([train[0], test[0]]))
    y = np.concatenate([train[1], test[1]])
    n_test = len(test[0])
    return Source(
        x, y, ordered=True, n_test=n_test, origin=str(folder), levels=256, class_names=names
    )


load_mnist = load_idx_source
"""The MNIST source (the same loader serves every IDX data set)."""
