"""Datasets: a source's arrays checked, split and binarized, driven by a
:class:`~pyrovae.spec.DataSpec`.

:func:`load_data` turns a data spec and the name of the likelihood into a
:class:`Dataset` of float32 tensors (train / validation / test), after checking
that the data suit the likelihood. Every problem raises a one-line
:class:`~pyrovae.errors.DataError` saying what is wrong and how to fix it.

Sources are registered by name in :data:`SOURCES`, one module each: :mod:`.digits`,
:mod:`.mnist` (MNIST, Fashion-MNIST and Kuzushiji-MNIST: IDX files, :mod:`.idx`),
:mod:`.cifar`, :mod:`.image_folder`, :mod:`.synthetic` and :mod:`.arrays`. A new source
is a module with a ``load_<name>(spec) -> Source`` function, one line in :data:`SOURCES`
and its name in :data:`pyrovae.spec.DATA_SOURCES`.

The IDX sources and CIFAR-10 keep their files' order (train, then the official test
rows); other sources are split by a permutation seeded with ``spec.seed``.

With ``data.memory_map`` (a ``.npy`` file of the arrays source) the file is checked in
chunks and the training split is a :class:`~pyrovae.data.disk.RowStore` that reads its
rows from disk per minibatch; the validation and test splits are read into memory, and
must fit in :data:`HELD_OUT_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pyrovae.data.arrays import load_arrays
from pyrovae.data.checks import (
    ValueRange,
    check_finite,
    check_labels,
    check_levels,
    check_range,
    check_shape,
    check_value_range,
    check_x,
    error_prefix,
    image_shape_of,
    value_range,
)
from pyrovae.data.cifar import load_cifar10
from pyrovae.data.digits import load_digits
from pyrovae.data.disk import NpyFile, Rows, RowStore, file_chunks
from pyrovae.data.image_folder import load_image_folder
from pyrovae.data.mnist import load_idx_source
from pyrovae.data.source import LinearGaussianTruth, Source, as_values
from pyrovae.data.synthetic import load_synthetic
from pyrovae.errors import DataError
from pyrovae.spec import COLOR_SOURCES, LIKELIHOODS, DataSpec

__all__ = ["HELD_OUT_BYTES", "SOURCES", "Dataset", "binarize", "load_data"]

SOURCES: dict[str, Callable[[DataSpec], Source]] = {
    "digits": load_digits,
    "mnist": load_idx_source,
    "fashion_mnist": load_idx_source,
    "kmnist": load_idx_source,
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
    "synthetic": load_synthetic,
    "arrays": load_arrays,
}
"""Every data source by ``data.name``: a function from the data spec to raw arrays."""

HELD_OUT_BYTES = 2**30
"""The most the validation and test splits of a memory-mapped file may take in memory
(float32): 1 GiB."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Split, checked data, ready for training.

    Attributes
    ----------
    name : str
        The source, ``data.name`` (one of :data:`SOURCES`).
    train, validation, test : torch.Tensor, shape (n, D), float32
    train : torch.Tensor or RowStore, shape (n, D), float32
        A :class:`~pyrovae.data.disk.RowStore` (rows read from disk when indexed) with
        ``data.memory_map``.
    validation, test : torch.Tensor, shape (n, D), float32
        Validation has 0 rows when ``validation_fraction == 0``.
    train_labels, validation_labels, test_labels : torch.Tensor, shape (n,), int64, or None
    image_shape : (C, H, W) or None
        The image shape when rows are flattened images (channel-major, D = C * H * W).
    dynamic_binarization : bool
        True when ``train`` holds probabilities to be binarized per minibatch.
    truth : LinearGaussianTruth or None
        The generating parameters of synthetic data.
    classes : int or None
        For a label model's rows (:func:`~pyrovae.data.labelled.label_rows`): the number
        of classes C, and each split is ``(n, D + 1)``, its last column the class index
        (-1 where the label is hidden). None for plain data.
    levels : int or None
        Pixels take the ``levels`` values k / (levels - 1) in [0, 1] (256 for 8-bit
        images); None for continuous data or data binarized here.
    class_names : tuple of str or None
        The names of classes 0, 1, ... where the source knows them (an image folder's
        class folders, CIFAR-10's and the IDX data sets' official names).
    """

    name: str
    train: Rows
    validation: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    validation_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    image_shape: tuple[int, int, int] | None
    dynamic_binarization: bool
    truth: LinearGaussianTruth | None
    classes: int | None = None
    levels: int | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def dim(self) -> int:
        """Number of observed dimensions D (a label column is not one)."""
        return int(self.train.shape[1]) - (self.classes is not None)


def binarize(
    x: torch.Tensor, generator: torch.Generator | None = None, columns: int | None = None
) -> torch.Tensor:
    """Sample x_bin ~ Bernoulli(x) elementwise; x (any shape) must lie in [0, 1].

    With ``columns``, only the first ``columns`` values of each row ``(..., D + 1)`` are
    pixels; the rest (a label model's class column) are kept as they are.

    Drawn as ``u < x`` with u ~ U[0, 1), which is exactly Bernoulli(x): on CPU about
    2.5x faster than ``torch.bernoulli`` for x spread over (0, 1), and about as fast
    on MNIST's mostly-zero pixels (``benchmarks/speedups.py``). It runs once per
    minibatch under dynamic binarization.
    """
    if columns is not None and columns < x.shape[-1]:
        pixels = binarize(x[..., :columns], generator)
        return torch.cat([pixels, x[..., columns:]], dim=-1)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


def _split(source: Source, n: int, spec: DataSpec) -> list[torch.Tensor]:
    """Index tensors of train, validation and test rows."""
    n_test = source.n_test
    if n_test is None:
        n_test = min(max(1, round(spec.test_fraction * n)), n - 1)
    n_rest = n - n_test
    n_val = min(round(spec.validation_fraction * n_rest), n_rest - 1)
    if n_rest < 1 or n_test < 1:
        raise DataError(
            f"{error_prefix(source.origin)}{n} examples are too few for a non-empty train and "
            "test split; give at least 2"
        )
    g = torch.Generator().manual_seed(spec.seed)
    order = torch.arange(n) if source.ordered else torch.randperm(n, generator=g)
    return list(torch.split(order, [n_rest - n_val, n_val, n_test]))


def _check_colour(
    image_shape: tuple[int, int, int] | None, mode: str, spec: DataSpec, origin: str
) -> None:
    """Colour images cannot be binarized (``mode``, the resolved ``data.binarize``, static
    or dynamic, as for the default Bernoulli likelihood): a binary pixel is one value,
    not three."""
    if image_shape is None or image_shape[0] == 1 or mode == "none":
        return
    grey = ", or data.color = 'grayscale'" if spec.name in COLOR_SOURCES else ""
    raise DataError(
        f"{error_prefix(origin)}colour images ({image_shape[0]} channels) cannot be "
        "binarized; use model.likelihood.name = 'continuous_bernoulli', 'gaussian' or "
        f"'discretized_logistic'{grey}"
    )


def load_data(spec: DataSpec, likelihood: str) -> Dataset:
    """Load, check, split and binarize the data described by ``spec``.

    Parameters
    ----------
    spec : DataSpec
    likelihood : str
        One of :data:`~pyrovae.spec.LIKELIHOODS`.

    Returns
    -------
    Dataset
        float32 (n, D) splits; ``binarize = "auto"`` means dynamic for
        ``"bernoulli"`` and none otherwise; ``spec.limit > 0`` keeps the first
        ``limit`` training rows.

    Raises
    ------
    DataError
        Missing, unreadable or empty files, bad shapes (no rows, no columns), NaN/inf,
        too few rows, labels of the wrong length, values that do not suit the
        likelihood, or data that are not 8-bit for ``"discretized_logistic"``; for a
        file, the message names it.
    """
    if likelihood not in LIKELIHOODS:
        raise DataError(f"data: unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")
    mode = spec.binarize
    if mode == "auto":
        mode = "dynamic" if likelihood == "bernoulli" else "none"
    if spec.name not in SOURCES:
        raise DataError(f"data: unknown source {spec.name!r}; use one of {list(SOURCES)}")
    source = SOURCES[spec.name](spec)
    if spec.memory_map:
        return _load_stored(spec, source, likelihood, mode)
    x, image_shape = check_x(source.x, source.origin)
    y = check_labels(source.y, len(x), source.origin)
    _check_colour(image_shape, mode, spec, source.origin)
    check_levels(source.levels, likelihood, spec.name, source.origin)
    check_range(x, likelihood, mode, source.origin)
    parts = _split(source, len(x), spec)
    if spec.limit > 0:
        parts[0] = parts[0][: spec.limit]
    xt = torch.from_numpy(x)
    splits = [xt[i].contiguous() for i in parts]
    labels = [None if y is None else torch.from_numpy(y)[i].contiguous() for i in parts]
    g = torch.Generator().manual_seed(spec.seed)
    if mode == "static":
        splits = [binarize(s, g) for s in splits]
    elif mode == "dynamic":
        splits[1:] = [binarize(s, g) for s in splits[1:]]
    return Dataset(
        name=spec.name,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        train_labels=labels[0],
        validation_labels=labels[1],
        test_labels=labels[2],
        image_shape=image_shape,
        dynamic_binarization=mode == "dynamic",
        truth=source.truth,
        levels=source.levels if mode == "none" else None,
        class_names=source.class_names,
    )


def _load_stored(spec: DataSpec, source: Source, likelihood: str, mode: str) -> Dataset:
    """:func:`load_data` of a memory-mapped ``.npy`` file: checked in chunks, the training
    split a :class:`RowStore`, validation and test read into memory."""
    if not isinstance(source.x, np.memmap):
        raise DataError("data: data.memory_map needs data.name = 'arrays' and a .npy file")
    if mode == "static":
        raise DataError("data: a memory-mapped file cannot be binarized ahead; use 'dynamic'")
    check_shape(source.x, source.origin)
    file = NpyFile.of(source.x)
    y = check_labels(source.y, file.shape[0], source.origin)
    _check_colour(image_shape_of(source.x), mode, spec, source.origin)
    check_levels(source.levels, likelihood, spec.name, source.origin)
    _check_file(file, likelihood, mode, source.origin)
    parts = _split(source, file.shape[0], spec)
    if spec.limit > 0:
        parts[0] = parts[0][: spec.limit]
    held_out = (len(parts[1]) + len(parts[2])) * file.row_values * 4
    if held_out > HELD_OUT_BYTES:
        raise DataError(
            f"{error_prefix(source.origin)}the validation and test splits would take "
            f"{held_out / 2**30:.1f} GiB in memory, more than the {HELD_OUT_BYTES / 2**30:.0f} "
            "GiB a memory-mapped file may hold out; lower data.test_fraction and "
            "data.validation_fraction"
        )
    g = torch.Generator().manual_seed(spec.seed)
    held = [RowStore(file, i).load() for i in parts[1:]]
    if mode == "dynamic":
        held = [binarize(s, g) for s in held]
    labels = [None if y is None else torch.from_numpy(y)[i].contiguous() for i in parts]
    return Dataset(
        name=spec.name,
        train=RowStore(file, parts[0]),
        validation=held[0],
        test=held[1],
        train_labels=labels[0],
        validation_labels=labels[1],
        test_labels=labels[2],
        image_shape=image_shape_of(source.x),
        dynamic_binarization=mode == "dynamic",
        truth=source.truth,
        levels=source.levels if mode == "none" else None,
        class_names=source.class_names,
    )


def _check_file(file: NpyFile, likelihood: str, mode: str, origin: str) -> None:
    """:func:`check_x`'s value checks and :func:`check_range` of a whole file, chunk by
    chunk (bounded memory); the errors name the file and the row."""
    values = ValueRange(0.0, 0.0, 0, 0)
    for first, raw in file_chunks(file):
        if raw.dtype.kind == "f":
            check_finite(raw, origin, first)
        values = values.merged(value_range(as_values(raw)))
    check_value_range(values, likelihood, mode, origin)
