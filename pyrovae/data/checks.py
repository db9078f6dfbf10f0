"""Checks of raw data before a split: shapes, finite values, labels, the likelihood's range.

Every problem raises a one-line :class:`~pyrovae.errors.DataError` that says what is
wrong and how to fix it, naming the data's origin (a file or folder) when it has one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pyrovae.errors import DataError
from pyrovae.spec import EIGHT_BIT_LIKELIHOODS, UNIT_INTERVAL_LIKELIHOODS

__all__ = [
    "ValueRange",
    "check_finite",
    "check_labels",
    "check_levels",
    "check_range",
    "check_shape",
    "check_value_range",
    "check_x",
    "error_prefix",
    "image_shape_of",
    "value_range",
]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def error_prefix(origin: str = "") -> str:
    """The start of a data error message: ``"data: "`` or ``"data: <origin>: "``."""
    return f"data: {origin}: " if origin else "data: "


def check_x(x: np.ndarray, origin: str = "") -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Check dims, sizes and values; return x as float32 (N, D) and the image shape.

    Parameters
    ----------
    x : numpy.ndarray
        (N, D) rows, (N, H, W) grey images or (N, C, H, W) images, channels first.
    origin : str
        Where the data came from (a file path), named in error messages.

    Returns
    -------
    x : numpy.ndarray, shape (N, D), float32
        Images flattened channel-major: D = C * H * W.
    image_shape : (C, H, W) or None
        None for rows that are not images.
    """
    check_shape(x, origin)
    image_shape = image_shape_of(x)
    flat = x.reshape(len(x), -1)
    check_finite(flat, origin)
    return np.ascontiguousarray(flat, dtype=np.float32), image_shape


def image_shape_of(x: np.ndarray) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of images ``(N, H, W)`` (C = 1) or ``(N, C, H, W)``; None for rows."""
    if x.ndim == 3:
        return 1, int(x.shape[1]), int(x.shape[2])
    if x.ndim == 4:
        return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    return None


def check_shape(x: np.ndarray, origin: str = "") -> None:
    """2-D, 3-D or 4-D, with at least one example and one value per example (the shape
    only: no value is read)."""
    where = error_prefix(origin)
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{where}expected a 2-D (examples, features), 3-D (examples, height, width) or "
            f"4-D (examples, channels, height, width) array, got {x.ndim}-D with shape "
            f"{x.shape}; reshape the data"
        )
    if x.shape[0] == 0:
        raise DataError(
            f"{where}the array has no examples (shape {x.shape}); give at least 2 examples, "
            "one per row"
        )
    if 0 in x.shape[1:]:
        what = "images have no pixels" if x.ndim > 2 else "examples have no features"
        raise DataError(f"{where}the {what} (shape {x.shape}); give at least one value per example")


def check_finite(x: np.ndarray, origin: str = "", first_row: int = 0) -> None:
    """No NaN or infinity in rows ``x`` ``(n, D)``, and nothing beyond float32's range (the
    cast would overflow); ``first_row`` is the number of the first row in the data (a chunk
    of a file names its rows as the file does)."""
    where = error_prefix(origin)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{where}{int(bad.sum())} values are NaN or infinite (first at row "
            f"{first_row + int(row)}, column {col}); clean the data first"
        )
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        largest = float(np.abs(x).max())
        if largest > _FLOAT32_MAX:
            raise DataError(
                f"{where}values reach {largest:.4g} in size, beyond float32's range "
                f"({_FLOAT32_MAX:.4g}); rescale the data"
            )


def check_labels(y: np.ndarray | None, n: int, origin: str = "") -> np.ndarray | None:
    """One integer label per example, as int64; None stays None.

    Parameters
    ----------
    y : numpy.ndarray or None
    n : int
        Number of examples.
    origin : str
        Where the labels came from (a file path), named in error messages.
    """
    if y is None:
        return None
    where = error_prefix(origin)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(
            f"{where}labels have shape {y.shape} but there are {n} examples; "
            "give one label per example (a 1-D array)"
        )
    if not _whole_numbers(y):
        raise DataError(
            f"{where}labels must be integer class indices within int64's range; "
            "store them as 0, 1, 2, ..."
        )
    return y.astype(np.int64)


def _whole_numbers(y: np.ndarray) -> bool:
    """True when every entry of ``y`` is a whole number that fits an int64."""
    if y.dtype.kind in "bi":
        return True
    if y.dtype.kind not in "uf":  # complex, strings, dates
        return False
    if y.size == 0:
        return True
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        return False
    return bool(np.array_equal(y, np.round(y)) and np.abs(y).max() < 2.0**63)


class ValueRange(NamedTuple):
    """What the likelihood checks need to know of the values: their least and greatest,
    how many lie strictly between 0 and 1, and how many there are."""

    low: float
    high: float
    between: int
    size: int

    def merged(self, other: ValueRange) -> ValueRange:
        """The range of both sets of values together (chunks of one file)."""
        if not other.size:
            return self
        if not self.size:
            return other
        return ValueRange(
            min(self.low, other.low),
            max(self.high, other.high),
            self.between + other.between,
            self.size + other.size,
        )


def value_range(x: np.ndarray) -> ValueRange:
    """The :class:`ValueRange` of the values of ``x`` (any shape)."""
    if not x.size:
        return ValueRange(0.0, 0.0, 0, 0)
    between = int(np.count_nonzero((x > 0) & (x < 1)))
    return ValueRange(float(x.min()), float(x.max()), between, int(x.size))


def check_range(x: np.ndarray, likelihood: str, mode: str, origin: str = "") -> None:
    """Values in [0, 1] where the likelihood or binarization needs them; 0/1 for an
    unbinarized Bernoulli likelihood.

    Parameters
    ----------
    x : numpy.ndarray
        Checked (N, D) data.
    likelihood, mode : str
        The likelihood's name and the resolved binarization (``"none"``, ``"static"``,
        ``"dynamic"``).
    origin : str
        Where the data came from (a file path), named in error messages.
    """
    check_value_range(value_range(x), likelihood, mode, origin)


def check_value_range(values: ValueRange, likelihood: str, mode: str, origin: str = "") -> None:
    """:func:`check_range` of values summed up by :func:`value_range` (of a whole array, or
    chunk by chunk with :meth:`ValueRange.merged`)."""
    where = error_prefix(origin)
    if likelihood in UNIT_INTERVAL_LIKELIHOODS or mode != "none":
        low, high = values.low, values.high
        if low < 0 or high > 1:
            need = f"the {likelihood!r} likelihood"
            if likelihood not in UNIT_INTERVAL_LIKELIHOODS:
                need = f"data.binarize = {mode!r}"
            raise DataError(
                f"{where}values range from {low:.4g} to {high:.4g} but {need} needs [0, 1]; "
                "rescale the data to [0, 1] or use model.likelihood.name = 'gaussian'"
            )
    if likelihood == "bernoulli" and mode == "none" and values.between:
        share = values.between / values.size
        raise DataError(
            f"{where}{share:.1%} of values lie strictly between 0 and 1 but a 'bernoulli' "
            "likelihood with data.binarize = 'none' needs 0/1 data; set data.binarize = "
            "'dynamic' or 'static', or model.likelihood.name = 'continuous_bernoulli'"
        )


def check_levels(levels: int | None, likelihood: str, source: str, origin: str = "") -> None:
    """8-bit data (256 levels, k / 255) for a likelihood of 8-bit pixels.

    Parameters
    ----------
    levels : int or None
        The source's :attr:`~pyrovae.data.source.Source.levels`; None for continuous data.
    likelihood, source : str
        The likelihood's name and the data source's (``data.name``).
    origin : str
        Where the data came from (a file path), named in error messages.
    """
    if likelihood not in EIGHT_BIT_LIKELIHOODS or levels == 256:
        return
    has = "continuous values" if levels is None else f"{levels} levels"
    raise DataError(
        f"{error_prefix(origin)}the {likelihood!r} likelihood models 8-bit pixels (256 levels, "
        f"k / 255) but the {source} data have {has}; use 8-bit data (an image source, or "
        "an arrays file saved as uint8) or model.likelihood.name = 'gaussian', 'laplace' "
        "or 'continuous_bernoulli'"
    )
