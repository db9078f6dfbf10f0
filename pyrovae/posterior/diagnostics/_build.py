"""Building InferenceData from arrays under the conventions of
:mod:`pyrovae.posterior.diagnostics`.

The converters (:mod:`~pyrovae.posterior.diagnostics.mcmc`,
:mod:`~pyrovae.posterior.diagnostics.draws`, :mod:`~pyrovae.posterior.diagnostics.flat`)
check their sources and hand arrays ``(chains, draws, ...)`` to :func:`inference_data`,
which names the dims (``f"{site}_dim_0"`` unless given), gives element coords ``1..K``
and chain/draw coords ``0..n-1``, and cleans the attrs. The module is private to the
package (its names serve the converters); :data:`NO_LOO` is re-exported by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import arviz as az
import numpy as np
import torch
import xarray as xr

from pyrovae.errors import UserError

__all__ = [
    "NO_LOO",
    "SAMPLE_DIMS",
    "DataGroups",
    "as_array",
    "data_groups",
    "inference_data",
    "method_attrs",
    "method_name",
    "optional_float",
    "plain",
    "split_chains",
]

NO_LOO = "pyrovae_no_loo"
"""Attr of a ``log_likelihood`` group saying why PSIS-LOO does not apply to it."""

SAMPLE_DIMS = ("chain", "draw")


# --- array helpers ----------------------------------------------------------------------------


def as_array(value: Any, what: str) -> np.ndarray:
    """float64 numpy array from a tensor, array or nested list."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UserError(f"{what}: expected numbers, got {type(value).__name__} ({err})") from None
    return array


def split_chains(array: np.ndarray, chains: int, what: str) -> np.ndarray:
    """``(S, ...)`` -> ``(chains, S // chains, ...)``, consecutive draws per chain."""
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1:
        raise UserError(f"chains must be an integer >= 1, got {chains!r}")
    if array.ndim < 1 or array.shape[0] < chains or array.shape[0] % chains:
        raise UserError(
            f"{what}: {array.shape[0] if array.ndim else 0} draws cannot be cut into "
            f"{chains} equal chains; pass a number of draws divisible by chains"
        )
    return array.reshape(chains, array.shape[0] // chains, *array.shape[1:])


def _with_chains(
    values: Mapping[str, Any] | None, chains: int, draws: int, what: str, *, split: bool
) -> dict[str, np.ndarray]:
    """Arrays ``(chains, draws, ...)``; ``split``: given as ``(chains * draws, ...)``."""
    out = {}
    for name, value in (values or {}).items():
        array = as_array(value, f"{what} '{name}'")
        if split:
            array = split_chains(array, chains, f"{what} '{name}'")
        if array.shape[:2] != (chains, draws):
            raise UserError(
                f"{what} '{name}' has shape {tuple(array.shape)}; expected ({chains}, {draws}, "
                "...) like the posterior draws"
            )
        out[name] = array
    return out


class DataGroups(TypedDict):
    """What :func:`data_groups` gives: keyword arguments of :func:`inference_data`."""

    log_likelihood: dict[str, np.ndarray]
    posterior_predictive: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    observed_data: dict[str, np.ndarray]


def data_groups(
    chains: int,
    draws: int,
    *,
    split: bool,
    log_likelihood: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    sample_stats: Mapping[str, Any] | None = None,
) -> DataGroups:
    """Keyword arguments of :func:`inference_data` for the groups beyond the posterior.

    Sampled groups must have ``(chains, draws, ...)`` arrays, or ``(chains * draws, ...)``
    with ``split``; ``observed_data`` arrays are taken as they are.
    """
    return DataGroups(
        log_likelihood=_with_chains(log_likelihood, chains, draws, "log_likelihood", split=split),
        posterior_predictive=_with_chains(
            posterior_predictive, chains, draws, "posterior_predictive", split=split
        ),
        sample_stats=_with_chains(sample_stats, chains, draws, "sample_stats", split=split),
        observed_data={
            k: as_array(v, f"observed_data '{k}'") for k, v in (observed_data or {}).items()
        },
    )


# --- attrs ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Python scalars and lists from numpy/torch values and tuples (``None`` kept)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values; tuples, arrays and numpy scalars become lists and scalars."""
    return {k: plain(v) for k, v in attrs.items() if v is not None}


# --- building InferenceData -------------------------------------------------------------------


def _event_dims(
    name: str, ndim: int, dims: Mapping[str, Sequence[str]] | None, prefix: bool = False
) -> list[str]:
    """Event dim names of a variable; ``prefix``: the leading ``ndim`` of those given."""
    if dims and name in dims:
        names = list(dims[name])
        if prefix and len(names) > ndim:
            names = names[:ndim]
        if len(names) != ndim:
            raise UserError(
                f"dims['{name}'] names {len(names)} dim(s) {names}, but '{name}' has {ndim} "
                "event dim(s)"
            )
        return names
    return [f"{name}_dim_{i}" for i in range(ndim)]


def _dataset(
    arrays: Mapping[str, np.ndarray],
    sample_ndim: int,
    dims: Mapping[str, Sequence[str]] | None,
    coords: Mapping[str, Any] | None,
    attrs: Mapping[str, Any] | None = None,
    *,
    prefix: bool = False,
) -> xr.Dataset:
    """Dataset of ``arrays`` whose first ``sample_ndim`` axes are ``(chain, draw)``.

    Element coords default to ``1..K``; ``prefix``: see :func:`_event_dims`.
    """
    all_dims: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, str]] = {}
    for name, array in arrays.items():
        event = array.shape[sample_ndim:]
        all_dims[name] = _event_dims(name, len(event), dims, prefix)
        for dim, size in zip(all_dims[name], event, strict=True):
            if dim in sizes and sizes[dim][0] != size:
                raise UserError(
                    f"dim '{dim}' has length {sizes[dim][0]} in '{sizes[dim][1]}' but {size} "
                    f"in '{name}'; give the variables different dims"
                )
            sizes.setdefault(dim, (size, name))
    all_coords: dict[str, Any] = {}
    for dim, (size, name) in sizes.items():
        if coords is not None and dim in coords:
            values = np.asarray(coords[dim])
        else:
            values = np.arange(1, size + 1)
        if values.shape != (size,):
            raise UserError(
                f"coords['{dim}'] has {values.size} value(s), but dim '{dim}' of '{name}' has "
                f"length {size}"
            )
        all_coords[dim] = values
    if arrays and sample_ndim:
        # chain and draw coords 0..n-1 whatever arviz.rcParams["data.index_origin"] says
        shape = next(iter(arrays.values())).shape
        all_coords.update({d: np.arange(n) for d, n in zip(SAMPLE_DIMS, shape, strict=False)})
    return az.dict_to_dataset(
        dict(arrays),
        coords=all_coords,
        dims=all_dims,
        default_dims=list(SAMPLE_DIMS[:sample_ndim]),
        attrs=dict(attrs) if attrs else None,
        index_origin=0,
    )


class _Groups(TypedDict, total=False):
    posterior: xr.Dataset
    sample_stats: xr.Dataset
    log_likelihood: xr.Dataset
    posterior_predictive: xr.Dataset
    observed_data: xr.Dataset


def inference_data(
    posterior: Mapping[str, np.ndarray],
    *,
    attrs: Mapping[str, Any],
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    sample_stats_attrs: Mapping[str, Any] | None = None,
    loo_note: str | None = None,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    posterior_predictive: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
) -> az.InferenceData:
    if not posterior:
        raise UserError("no posterior variables to convert")
    groups: _Groups = {"posterior": _dataset(posterior, 2, dims, coords)}
    if sample_stats:
        groups["sample_stats"] = _dataset(sample_stats, 2, None, None, sample_stats_attrs)
    if log_likelihood:
        attrs_ll = {NO_LOO: loo_note} if loo_note else None
        groups["log_likelihood"] = _dataset(log_likelihood, 2, dims, coords, attrs_ll, prefix=True)
    if posterior_predictive:
        groups["posterior_predictive"] = _dataset(posterior_predictive, 2, dims, coords)
    if observed_data:
        groups["observed_data"] = _dataset(observed_data, 0, dims, coords)
    return az.InferenceData(attrs=_clean_attrs(attrs), **groups)


def method_name(method: Any) -> str:
    if not isinstance(method, str) or not method:
        raise UserError(f"method must be a non-empty string, got {method!r}")
    return method


def optional_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number or None, got {value!r}") from None


def method_attrs(
    method: str,
    *,
    seconds: float | None = None,
    khat: float | None = None,
    khats: Iterable[float] = (),
    elbo: float | None = None,
) -> dict[str, Any]:
    khats = [float(k) for k in plain(list(khats))]
    return {
        "method": method_name(method),
        "seconds": optional_float("seconds", seconds),
        "khat": optional_float("khat", khat),
        "khats": khats or None,
        "elbo": optional_float("elbo", elbo),
    }
