"""Checks of raw data before a split: shapes, finite values, labels, the likelihood's range.

Every problem raises a one-line :class:`~pyrovae.errors.DataError` that says what is
wrong and how to fix it.
"""

from __future__ import annotations

import numpy as np

from pyrovae.errors import DataError
from pyrovae.spec import UNIT_INTERVAL_LIKELIHOODS

__all__ = ["check_labels", "check_range", "check_x"]


def check_x(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Check dims and finiteness; return x as float32 (N, D) and the image shape."""
    if x.ndim not in (2, 3):
        raise DataError(
            f"data: expected a 2-D (examples, features) or 3-D (examples, height, width) "
            f"array, got {x.ndim}-D with shape {x.shape}; reshape the data"
        )
    image_shape = (int(x.shape[1]), int(x.shape[2])) if x.ndim == 3 else None
    x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"data: {int(bad.sum())} values are NaN or infinite (first at row {row}, "
            f"column {col}); clean the data first"
        )
    return x, image_shape


def check_labels(y: np.ndarray | None, n: int) -> np.ndarray | None:
    """One integer label per example, as int64; None stays None."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(
            f"data: labels have shape {y.shape} but there are {n} examples; "
            "give one label per example"
        )
    if not np.issubdtype(y.dtype, np.number) or not np.array_equal(y, np.round(y)):
        raise DataError("data: labels must be integers; store class indices")
    return y.astype(np.int64)


def check_range(x: np.ndarray, likelihood: str, mode: str) -> None:
    """Values in [0, 1] where the likelihood or binarization needs them; 0/1 for an
    unbinarized Bernoulli likelihood."""
    if likelihood in UNIT_INTERVAL_LIKELIHOODS or mode != "none":
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if low < 0 or high > 1:
            need = f"the {likelihood!r} likelihood"
            if likelihood not in UNIT_INTERVAL_LIKELIHOODS:
                need = f"data.binarize = {mode!r}"
            raise DataError(
                f"data: values range from {low:.4g} to {high:.4g} but {need} needs [0, 1]; "
                "rescale the data to [0, 1] or use model.likelihood.name = 'gaussian'"
            )
    if likelihood == "bernoulli" and mode == "none":
        share = float(np.mean((x > 0) & (x < 1))) if x.size else 0.0
        if share > 0:
            raise DataError(
                f"data: {share:.1%} of values lie strictly between 0 and 1 but a 'bernoulli' "
                "likelihood with data.binarize = 'none' needs 0/1 data; set data.binarize = "
                "'dynamic' or 'static', or model.likelihood.name = 'continuous_bernoulli'"
            )
