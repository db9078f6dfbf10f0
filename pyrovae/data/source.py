"""What a data source hands over: raw arrays before any check, split or binarization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LinearGaussianTruth", "Source", "one_line"]


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
    """Raw data before checks: x (N, D) or (N, H, W), labels (N,), fixed test rows at the end.

    ``origin`` says where the arrays came from (a file or folder); data errors name it.
    """

    x: np.ndarray
    y: np.ndarray | None
    ordered: bool = False
    n_test: int | None = None
    truth: LinearGaussianTruth | None = None
    origin: str = ""


def one_line(text: object) -> str:
    """``text`` on one line: runs of whitespace (newlines too) become one space."""
    return " ".join(str(text).split())
