"""InferenceData of flattened Stan-named columns (``mu``, ``theta[1]``, ``z[2,3]``): posteriordb
reference draws, analytic draws, ``MethodResult.draws``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import torch

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import (
    as_array,
    data_groups,
    inference_data,
    method_attrs,
    split_chains,
)

__all__ = ["from_flat"]

_NAME = re.compile(r"^\s*([^\[\],\s]+)\s*(?:\[\s*(\d+(?:\s*,\s*\d+)*)\s*\])?\s*$")


def _parse_name(name: str) -> tuple[str, tuple[int, ...]]:
    """``"theta[3]"`` -> ``("theta", (2,))``; ``"z[1,2]"`` -> ``("z", (0, 1))``; 1-based in."""
    match = _NAME.match(str(name))
    if not match:
        raise UserError(
            f"cannot parse parameter name {name!r}; expected Stan style 'mu', 'theta[1]' "
            "or 'z[1,2]'"
        )
    base, index = match.groups()
    if index is None:
        return base, ()
    numbers = tuple(int(i) for i in index.split(","))
    if min(numbers) < 1:
        raise UserError(f"parameter name {name!r}: Stan indices start at 1")
    return base, tuple(i - 1 for i in numbers)


def _unflatten(columns: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``(chains, draws, P)`` Stan-named columns -> variables ``(chains, draws, *shape)``."""
    groups: dict[str, dict[tuple[int, ...], int]] = {}
    for p, name in enumerate(names):
        base, index = _parse_name(name)
        entries = groups.setdefault(base, {})
        if index in entries:
            raise UserError(f"parameter name {name!r} appears twice")
        if entries and len(next(iter(entries))) != len(index):
            raise UserError(f"'{base}' is named with different numbers of indices (e.g. {name!r})")
        entries[index] = p
    out = {}
    for base, entries in groups.items():
        ndim = len(next(iter(entries)))
        shape = tuple(max(index[d] for index in entries) + 1 for d in range(ndim))
        if len(entries) != math.prod(shape):
            raise UserError(
                f"'{base}' has {len(entries)} column(s) but its largest indices make shape "
                f"{shape} ({math.prod(shape)} elements); every element needs a column"
            )
        array = np.empty((*columns.shape[:2], *shape), dtype=np.float64)
        for index, p in entries.items():
            key: tuple[slice | int, ...] = (slice(None), slice(None), *index)
            array[key] = columns[..., p]
        out[base] = array
    return out


def from_flat(
    draws: np.ndarray | torch.Tensor,
    names: Sequence[str],
    *,
    method: str,
    chains: int = 1,
    parameters: Mapping[str, tuple[int, ...]] | None = None,
    khat: float | None = None,
    khats: Iterable[float] = (),
    elbo: float | None = None,
    seconds: float | None = None,
    log_likelihood: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    posterior_predictive: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    observed_data: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Flattened Stan-named columns back to variables, as InferenceData.

    Parameters
    ----------
    draws : array
        ``(S, P)`` (cut into ``chains`` chains) or ``(chains, draws, P)`` (``chains`` unused),
        e.g. posteriordb reference draws or ``compare.MethodResult.draws``.
    names : sequence of str
        The P column names, Stan style with 1-based indices: ``"mu"``, ``"theta[1]"``,
        ``"z[2,3]"``. ``"theta[1]".."theta[8]"`` become ``theta`` ``(chain, draw, 8)``,
        ``"z[i,j]"`` a variable with two event dims, scalars stay scalars; columns may come
        in any order.
    method : str
        Stored in ``attrs["method"]``.
    parameters : mapping of str to tuple of int, optional
        Keep only these variables, in this order, and check their shapes; other columns
        are ignored. Default: every variable, in order of first appearance.
    khat, khats, elbo, seconds, log_likelihood, posterior_predictive, observed_data
        As for :func:`from_samples` (sampled groups ``(S, ...)`` or ``(chains, draws, ...)``
        like ``draws``).
    dims, coords
        See the module notes; ``"theta[1]"`` is ``theta`` at ``theta_dim_0 = 1``.

    Returns
    -------
    arviz.InferenceData
    """
    array = as_array(draws, "draws")
    names = [str(n) for n in names]
    if array.ndim == 2:
        array = split_chains(array, chains, "draws")
        split = True
    elif array.ndim == 3:
        split = False
    else:
        raise UserError(f"draws must be (S, P) or (chains, draws, P), got shape {array.shape}")
    if array.shape[-1] != len(names):
        raise UserError(f"draws have {array.shape[-1]} columns but {len(names)} names")
    variables = _unflatten(array, names)
    if parameters is not None:
        missing = [name for name in parameters if name not in variables]
        if missing:
            raise UserError(
                f"the columns lack parameter(s) {missing} (they have {sorted(variables)})"
            )
        for name, event in parameters.items():
            if variables[name].shape[2:] != tuple(event):
                raise UserError(
                    f"'{name}' has shape {variables[name].shape[2:]} from its names, "
                    f"parameters declare {tuple(event)}"
                )
        variables = {name: variables[name] for name in parameters}
    return inference_data(
        variables,
        attrs=method_attrs(method, seconds=seconds, khat=khat, khats=khats, elbo=elbo),
        dims=dims,
        coords=coords,
        **data_groups(
            array.shape[0],
            array.shape[1],
            split=split,
            log_likelihood=log_likelihood,
            posterior_predictive=posterior_predictive,
            observed_data=observed_data,
        ),
    )
