"""What a data source hands over: raw arrays before any check, split or binarization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LinearGaussianTruth", "Source", "as_values", "one_line"]


@dataclass(frozen=True, eq=False)
class LinearGaussianTruth:
    """Parameters that generated synthetic data: x = weight @ z + bias + noise * eps, z ~ N(0, I).

    Attributes
    ----------
    weight : torch.Tensor, shape (observed_dim, latent_dim)
    bias : torch.Tensor, shape (observed_dim,)
    noise : float
        Standard deviation of the isotropic noise.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    noise: float


@dataclass
class Source:
    """Raw data before checks: x (N, D), (N, H, W) or (N, C, H, W), labels (N,), fixed test
    rows at the end.

    ``x`` is a read-only ``np.memmap`` of a ``.npy`` file under ``data.memory_map`` (no
    value read yet). ``origin`` says where the arrays came from (a file or folder); data
    errors name it.
    ``levels`` is the number of equally spaced values in [0, 1] the pixels take (256 for
    8-bit images stored as k / 255, 17 for the digits' k / 16), None for continuous data.
    ``class_names`` names labels 0, 1, ... (e.g. an image folder's class folders), None
    where the source does not know them.
    """

    x: np.ndarray
    y: np.ndarray | None
    ordered: bool = False
    n_test: int | None = None
    truth: LinearGaussianTruth | None = None
    origin: str = ""
    levels: int | None = None
    class_names: tuple[str, ...] | None = None


def as_values(x: np.ndarray) -> np.ndarray:
    """The values of rows as float32: 8-bit values (uint8) as k / 255, others as they are.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, ...)

    Returns
    -------
    numpy.ndarray, shape (n, ...), float32
    """
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return np.asarray(x, dtype=np.float32)


def one_line(text: object) -> str:
    """``text`` on one line: runs of whitespace (newlines too) become one space."""
    return " ".join(str(text).split())
