"""The floating-point precision a comparison runs in: float64 by default.

Small Bayesian models are where MCMC is the gold standard, and float32 loses precision
exactly where their geometry is hard: a regression on predictors near 4,000 sums
terms whose rounding error (about 4,000 x 6e-8 = 2e-4 per term) is far above the
posterior sd of its slope. Stan, and NumPyro in its MCMC examples, work in double
precision; so does ``pyrovae compare`` unless ``--dtype float32`` is given.

:func:`with_dtype` casts a target's floating data (integer data stay integer, for
indexing) and :func:`default_dtype` sets torch's default dtype while the methods run,
so that constants a model builds with ``torch.tensor(1.0)`` or ``torch.zeros(...)``
follow. The exact posteriors of the zoo are computed in float64 from the data as
stored, so they hold in either precision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from pyrovae.errors import UserError
from pyrovae.posterior.targets.zoo import ZooModel

__all__ = ["DEFAULT_DTYPE", "DTYPES", "cast_data", "default_dtype", "resolve_dtype", "with_dtype"]

DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}
"""What ``--dtype`` takes."""

DEFAULT_DTYPE = "float64"
"""The comparison's precision unless told otherwise."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float64"``/``"float32"`` (or the torch dtype itself) as a torch dtype.

    Raises
    ------
    UserError
        Any other value, with the accepted ones named.
    """
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise UserError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")


def cast_data(data: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """``data`` with every floating tensor in ``dtype``; other values as they are."""
    return {
        k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in data.items()
    }


def with_dtype(model: ZooModel, dtype: str | torch.dtype) -> ZooModel:
    """``model`` whose floating data are in ``dtype`` (a new :class:`ZooModel`)."""
    return dataclasses.replace(model, data=cast_data(model.data, resolve_dtype(dtype)))


@contextmanager
def default_dtype(dtype: str | torch.dtype) -> Iterator[None]:
    """Torch's default dtype is ``dtype`` inside the block (restored after, also on error)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(resolve_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(before)
