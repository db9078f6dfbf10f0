"""The digits source: scikit-learn's 1,797 8x8 digits (bundled, no download), pixels / 16."""

from __future__ import annotations

import numpy as np

from pyrovae.data.source import Source
from pyrovae.spec import DataSpec

__all__ = ["load_digits"]


def load_digits(spec: DataSpec) -> Source:
    """Images ``(1797, 8, 8)`` in [0, 1] and labels; ``spec`` is not needed."""
    from sklearn import datasets

    digits = datasets.load_digits()
    return Source(digits.images.astype(np.float32) / 16, digits.target, levels=17)
