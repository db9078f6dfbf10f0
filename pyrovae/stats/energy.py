"""The energy distance between two samples, the one both lines use.

The VAE line measures decoded samples against the data in pixel space
(:mod:`pyrovae.evaluate.latent_space`); the comparison line measures posterior
draws against reference draws in reference sds (:mod:`pyrovae.posterior.distances`,
which standardises and subsamples first). Both call :func:`energy_distance`.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CHUNK_ROWS", "energy_distance", "mean_distance"]

CHUNK_ROWS = 512
"""Query rows per distance block, so memory stays at ``512 x m`` distances."""


def _as_double(values: Any) -> torch.Tensor:
    """``values`` ``(n, D)`` (a tensor or an array) as a float64 tensor on its device."""
    tensor = torch.as_tensor(values)
    return tensor.to(torch.float64)


def mean_distance(x: Any, y: Any, *, same: bool = False) -> float:
    """Mean Euclidean distance between the rows of ``x`` ``(n, D)`` and ``y`` ``(m, D)``.

    ``same``: ``x`` and ``y`` are one sample, and the ``n`` zero distances of a row to
    itself are left out of the mean (the U-statistic), so it divides by ``n (n - 1)``.
    """
    x, y = _as_double(x), _as_double(y)
    total = sum(torch.cdist(block, y).sum() for block in x.split(CHUNK_ROWS))
    pairs = x.shape[0] * (y.shape[0] - 1) if same else x.shape[0] * y.shape[0]
    return float(total) / pairs


def energy_distance(x: Any, y: Any) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Székely & Rizzo, 2013).

    Euclidean, in float64, with no rescaling; the within-sample means leave out
    ``i = j`` (U-statistics), so two samples of one distribution give about 0,
    possibly slightly negative.

    Parameters
    ----------
    x : (n, D) tensor or array
        n >= 2.
    y : (m, D) tensor or array
        m >= 2, the same D.

    Returns
    -------
    float
        In the units of the data.
    """
    x, y = _as_double(x), _as_double(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"expected (n, D) and (m, D) samples, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"each sample needs at least 2 rows, got {x.shape[0]} and {y.shape[0]}")
    between = mean_distance(x, y)
    return 2 * between - mean_distance(x, x, same=True) - mean_distance(y, y, same=True)
