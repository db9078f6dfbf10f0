"""Datasets: a source's arrays checked, split and binarized, driven by a
:class:`~pyrovae.spec.DataSpec`.

:func:`load_data` turns a data spec and the name of the likelihood into a
:class:`Dataset` of float32 tensors (train / validation / test), after checking
that the data suit the likelihood. Every problem raises a one-line
:class:`~pyrovae.errors.DataError` saying what is wrong and how to fix it.

Sources are registered by name in :data:`SOURCES`, one module each: :mod:`.digits`,
:mod:`.mnist` (IDX files, :mod:`.idx`), :mod:`.synthetic` and :mod:`.arrays`. A new
source is a module with a ``load_<name>(spec) -> Source`` function, one line in
:data:`SOURCES` and its name in :data:`pyrovae.spec.DATA_SOURCES`.

MNIST keeps its files' order (train, then the t10k test rows); other sources are split
by a permutation seeded with ``spec.seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyrovae.data.arrays import load_arrays
from pyrovae.data.checks import (
    check_labels,
    check_levels,
    check_range,
    check_x,
    error_prefix,
)
from pyrovae.data.digits import load_digits
from pyrovae.data.mnist import load_mnist
from pyrovae.data.source import LinearGaussianTruth, Source
from pyrovae.data.synthetic import load_synthetic
from pyrovae.errors import DataError
from pyrovae.spec import LIKELIHOODS, DataSpec

__all__ = ["SOURCES", "Dataset", "binarize", "load_data"]

SOURCES: dict[str, Callable[[DataSpec], Source]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "synthetic": load_synthetic,
    "arrays": load_arrays,
}
"""Every data source by ``data.name``: a function from the data spec to raw arrays."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Split, checked data, ready for training.

    Attributes
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"synthetic"`` or ``"arrays"``.
    train, validation, test : torch.Tensor, shape (n, D), float32
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
    """

    name: str
    train: torch.Tensor
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
    x, image_shape = check_x(source.x, source.origin)
    y = check_labels(source.y, len(x), source.origin)
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
    )
