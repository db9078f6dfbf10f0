"""Every posterior as an ArviZ ``InferenceData``: conversion, NetCDF files, diagnostics, overlays.

One converter per source of draws, all giving the same variable names, dims and coords
for the same model, so that the results of different methods overlay cleanly:

=====================  ==============================================================
:func:`from_mcmc`      a :class:`~pyrovae.infer.mcmc.McmcResult` (NUTS, HMC, Metropolis)
:func:`from_samples`   draws of a variational guide or ``Predictive``, ``(S, ...)``
:func:`from_flat`      flattened Stan-named columns, ``(S, P)`` or ``(chains, draws, P)``
                       (posteriordb reference draws, analytic draws, ``MethodResult.draws``)
:func:`from_local`     VAE local posteriors ``(S, N, L)``
=====================  ==============================================================

Conventions
-----------
- Posterior variables are float64 with dims ``("chain", "draw", *event_dims)``. A site
  with event shape ``(K,)`` gets the dim ``f"{site}_dim_0"`` (``f"{site}_dim_1"`` for a
  second axis, ...) unless ``dims`` names them, e.g. ``{"theta": ["school"]}``.
- Element coords are 1-based integers ``1..K`` unless ``coords`` gives others, so that
  ArviZ's labels (``theta[1]``) are Stan's and those of the comparison tables
  (:func:`pyrovae.models.zoo.parameter_names`); ``chain`` and ``draw`` stay ``0..n-1``.
- Groups: ``posterior``; ``sample_stats`` (MCMC: ``acceptance_rate``, ``step_size``,
  ``tree_size``, ``diverging``; variational: ``lp`` = log p(theta, y) and ``log_q`` =
  log q(theta) per draw); ``log_likelihood`` (observed site -> ``(chain, draw, *batch)``,
  see :mod:`pyrovae.infer.pointwise`), ``posterior_predictive`` and ``observed_data``.
  A ``log_likelihood`` variable takes the leading dims of the observed variable of the
  same name (the batch dims; event dims are summed into the density).
- Draws without chains (variational, analytic) are cut into ``chains`` equal chains of
  consecutive draws.
- Metadata (``method``, ``kernel``, ``seconds``, ``khat``, ``khats``, ``elbo``,
  ``divergences``) sit in ``idata.attrs``; ``None`` values are left out.
  :func:`save` stores values NetCDF cannot hold (lists, ``None``, booleans) as JSON
  strings and :func:`load` decodes them, so a round trip gives the same attrs.
- :func:`loo` is PSIS-LOO (``arviz.loo``); for draws of a variational guide (``log_q``
  in ``sample_stats``) the importance ratios are corrected by p(theta, y) / q(theta)
  (Magnusson et al. 2019; ArviZ 1.x's ``loo_approximate_posterior``), so every method
  estimates the elpd of the same model and their Pareto k-hat says whether it could.

Every use of the ArviZ API lives in this module (it is written for the ArviZ 0.2x line,
``InferenceData`` of xarray Datasets), so a move to ArviZ 1.x touches this file only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import re
import warnings as _warnings  # this module defines warnings()
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import torch
import xarray as xr
from arviz.stats.stats_utils import ELPDData

from pyrovae.compare_plots import DPI, MAX_MARGINAL_PANELS, REFERENCE_COLOR, method_colors
from pyrovae.errors import UserError
from pyrovae.models.zoo import squeeze_padding

if TYPE_CHECKING:
    import pandas as pd

    from pyrovae.infer.mcmc import McmcResult

__all__ = [
    "ESS_MIN_PER_CHAIN",
    "LOCAL_DIMS",
    "LOCAL_LOO_NOTE",
    "LOO_COLUMNS",
    "MAX_FOREST_ROWS",
    "MAX_PAIR_ELEMENTS",
    "NO_LOO",
    "PAIR_POINTS",
    "REFERENCE",
    "RHAT_MAX",
    "from_flat",
    "from_local",
    "from_mcmc",
    "from_samples",
    "load",
    "loo",
    "loo_mcse",
    "loo_table",
    "loo_variables",
    "plot_overlays",
    "save",
    "summary",
    "warnings",
]

# --- constants --------------------------------------------------------------------------------

RHAT_MAX = 1.01
"""Largest acceptable rank-normalised split R-hat. Vehtari, Gelman, Simpson, Carpenter and
Bürkner (2021), "Rank-normalization, folding, and localization: an improved R-hat", recommend
using draws only when R-hat < 1.01 (the older 1.1 threshold misses chains that have not mixed)."""

ESS_MIN_PER_CHAIN = 100
"""Smallest acceptable bulk and tail ESS per chain. Vehtari et al. (2021) ask for at least 100
per chain (400 for four chains) before R-hat and the Monte Carlo standard errors of means and
quantiles can be trusted."""

LOCAL_DIMS: dict[str, list[str]] = {"z": ["point", "latent"], "x": ["point", "pixel"]}
"""Dims of a VAE's local latents ``z`` and data ``x`` (its log-likelihood: ``point`` only)."""

NO_LOO = "pyrovae_no_loo"
"""Attr of a ``log_likelihood`` group saying why PSIS-LOO does not apply to it."""

LOCAL_LOO_NOTE = (
    "log p(x_n | z_n) of local latents: leaving out point n leaves z_n with its prior, so "
    "PSIS-LOO would be a harmonic-mean estimate of the marginal p(x_n), unreliable "
    "(Pareto k-hat far above 0.7 for images)"
)
"""The :data:`NO_LOO` note of VAE local posteriors (:func:`from_local`)."""

REFERENCE = "reference"
"""Key of :func:`plot_overlays` 's input drawn first and in :data:`REFERENCE_COLOR`."""

MAX_FOREST_ROWS = 40
"""Scalar elements drawn by the forest plot (the first ones); more rows get unreadable."""

MAX_PAIR_ELEMENTS = 4
"""Scalar elements in the pair plot (the first ones): a 3 x 3 grid of panels at most."""

PAIR_POINTS = 400
"""Draws (a seeded subsample) per method in the pair plot; more hide each other."""

_SAMPLE_DIMS = ("chain", "draw")
_JSON_ATTRS = "pyrovae_json_attrs"
"""Dataset/InferenceData attribute listing (as a JSON list) the attrs :func:`save` stored
as JSON strings."""
_LABEL_SPACES = re.compile(r",\s+")
_NAME = re.compile(r"^\s*([^\[\],\s]+)\s*(?:\[\s*(\d+(?:\s*,\s*\d+)*)\s*\])?\s*$")

# --- array helpers ----------------------------------------------------------------------------


def _array(value: Any, what: str) -> np.ndarray:
    """float64 numpy array from a tensor, array or nested list."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UserError(f"{what}: expected numbers, got {type(value).__name__} ({err})") from None
    return array


def _split_chains(array: np.ndarray, chains: int, what: str) -> np.ndarray:
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
        array = _array(value, f"{what} '{name}'")
        if split:
            array = _split_chains(array, chains, f"{what} '{name}'")
        if array.shape[:2] != (chains, draws):
            raise UserError(
                f"{what} '{name}' has shape {tuple(array.shape)}; expected ({chains}, {draws}, "
                "...) like the posterior draws"
            )
        out[name] = array
    return out


def _data_groups(
    chains: int,
    draws: int,
    *,
    split: bool,
    log_likelihood: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    sample_stats: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Keyword arguments of :func:`_inference_data` for the groups beyond the posterior.

    Sampled groups must have ``(chains, draws, ...)`` arrays, or ``(chains * draws, ...)``
    with ``split``; ``observed_data`` arrays are taken as they are.
    """
    out = {
        group: _with_chains(values, chains, draws, group, split=split)
        for group, values in (
            ("log_likelihood", log_likelihood),
            ("posterior_predictive", posterior_predictive),
            ("sample_stats", sample_stats),
        )
    }
    out["observed_data"] = {
        k: _array(v, f"observed_data '{k}'") for k, v in (observed_data or {}).items()
    }
    return out


# --- attrs ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Python scalars and lists from numpy/torch values and tuples (``None`` kept)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values; tuples, arrays and numpy scalars become lists and scalars."""
    return {k: _plain(v) for k, v in attrs.items() if v is not None}


def _encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs NetCDF can store: str, int and float as they are, anything else as JSON."""
    out: dict[str, Any] = {}
    encoded = []
    for key, value in attrs.items():
        value = _plain(value)
        if isinstance(value, str) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            out[key] = value
        else:
            out[key] = json.dumps(value)
            encoded.append(key)
    if encoded:
        out[_JSON_ATTRS] = json.dumps(encoded)
    return out


def _decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_encode_attrs`; numpy scalars and arrays become Python values."""
    out = {k: _plain(v) for k, v in attrs.items() if k != _JSON_ATTRS}
    if _JSON_ATTRS in attrs:
        for key in json.loads(attrs[_JSON_ATTRS]):
            if key in out:
                out[key] = json.loads(out[key])
    return out


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
        given = coords is not None and dim in coords
        values = np.asarray(coords[dim]) if given else np.arange(1, size + 1)
        if values.shape != (size,):
            raise UserError(
                f"coords['{dim}'] has {values.size} value(s), but dim '{dim}' of '{name}' has "
                f"length {size}"
            )
        all_coords[dim] = values
    if arrays and sample_ndim:
        # chain and draw coords 0..n-1 whatever arviz.rcParams["data.index_origin"] says
        shape = next(iter(arrays.values())).shape
        all_coords.update({d: np.arange(n) for d, n in zip(_SAMPLE_DIMS, shape, strict=False)})
    return az.dict_to_dataset(
        dict(arrays),
        coords=all_coords,
        dims=all_dims,
        default_dims=list(_SAMPLE_DIMS[:sample_ndim]),
        attrs=dict(attrs) if attrs else None,
        index_origin=0,
    )


def _inference_data(
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
    groups = {"posterior": _dataset(posterior, 2, dims, coords)}
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


def _method(method: Any) -> str:
    if not isinstance(method, str) or not method:
        raise UserError(f"method must be a non-empty string, got {method!r}")
    return method


def _optional_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number or None, got {value!r}") from None


def _method_attrs(
    method: str,
    *,
    seconds: float | None = None,
    khat: float | None = None,
    khats: Iterable[float] = (),
    elbo: float | None = None,
) -> dict[str, Any]:
    khats = [float(k) for k in _plain(list(khats))]
    return {
        "method": _method(method),
        "seconds": _optional_float("seconds", seconds),
        "khat": _optional_float("khat", khat),
        "khats": khats or None,
        "elbo": _optional_float("elbo", elbo),
    }


# --- converters -------------------------------------------------------------------------------


def from_mcmc(
    result: McmcResult,
    *,
    method: str,
    parameters: Mapping[str, tuple[int, ...]] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    posterior_predictive: Mapping[str, np.ndarray] | None = None,
    loo_note: str | None = None,
) -> az.InferenceData:
    """An :class:`~pyrovae.infer.mcmc.McmcResult` as InferenceData (Metropolis included).

    ``arviz.from_pyro`` reads ``diagnostics()["divergences"]`` and fails with
    ``KeyError: 'divergences'`` on Pyro's random-walk kernel; this reads the result tuple.

    Parameters
    ----------
    result : McmcResult
        Samples ``(chains, draws, *site_shape)`` and per-chain diagnostics.
    method : str
        Method name stored in ``attrs["method"]`` (e.g. ``"nuts"``).
    parameters : mapping of str to tuple of int, optional
        Keep only these sites, in this order, checked against (and squeezed to) these event
        shapes; default every site of ``result.samples``.
    dims, coords : mapping, optional
        Event dim names per variable and coordinate values per dim (see the module notes).
    log_likelihood : mapping of str to array, optional
        Observed site -> pointwise log-likelihood ``(chains, draws, N)``.
    observed_data : mapping of str to array, optional
        Observed site -> observations ``(N, ...)``.
    posterior_predictive : mapping of str to array, optional
        Observed site -> replicated data ``(chains, draws, N, ...)``.
    loo_note : str, optional
        Why PSIS-LOO does not apply to this log-likelihood (stored in the group's attrs
        under :data:`NO_LOO`; :func:`loo_variables` then lists nothing).

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior``, ``sample_stats`` and those given. ``sample_stats`` per
        ``(chain, draw)``:

        * ``acceptance_rate`` -- the McmcResult keeps only the per-chain mean acceptance
          probability over the kept draws, so that mean is repeated for every draw of the
          chain (``sample_stats.attrs["acceptance_rate"]`` says so);
        * ``step_size`` -- the chain's step size after adaptation (proposal scale for
          Metropolis), constant over the kept draws;
        * ``tree_size`` -- leapfrog steps of each transition (``num_steps``), NUTS/HMC only;
        * ``diverging`` -- which transitions diverged (``McmcResult.diverging``). A result
          with only per-chain *counts* gives an all-False boolean when every count is 0
          (exact) and leaves it out otherwise (the positions are unknown). The counts are
          always in ``attrs["divergences"]`` (a list, one per chain) for NUTS/HMC;
          Metropolis has neither.

        ``attrs``: ``method``, ``kernel``, ``seconds``, ``divergences``.
    """
    samples = result.samples
    if parameters is not None:
        missing = [name for name in parameters if name not in samples]
        if missing:
            raise UserError(f"the MCMC result lacks site(s) {missing} (it has {sorted(samples)})")
        posterior = {
            name: squeeze_padding(name, _array(samples[name], f"samples '{name}'"), tuple(event), 2)
            for name, event in parameters.items()
        }
    else:
        posterior = {name: _array(v, f"samples '{name}'") for name, v in samples.items()}
    if not posterior:
        raise UserError("the MCMC result has no samples")
    first = next(iter(posterior.values()))
    if first.ndim < 2:
        raise UserError(f"MCMC samples must be (chains, draws, ...), got {first.shape}")
    chains, draws = first.shape[:2]
    for name, array in posterior.items():
        if array.shape[:2] != (chains, draws):
            raise UserError(
                f"samples '{name}' have shape {array.shape}; every site must be "
                f"({chains}, {draws}, ...)"
            )

    def per_chain(value: Any, what: str) -> np.ndarray:
        array = _array(value, what).reshape(-1)
        if array.shape != (chains,):
            raise UserError(f"{what} has shape {array.shape}; expected ({chains},)")
        return np.repeat(array[:, None], draws, axis=1)

    stats = {
        "acceptance_rate": per_chain(result.acceptance_rate, "acceptance_rate"),
        "step_size": per_chain(result.step_size, "step_size"),
    }
    if result.num_steps is not None:
        steps = np.asarray(_plain(result.num_steps), dtype=np.int64)
        if steps.shape != (chains, draws):
            raise UserError(f"num_steps has shape {steps.shape}; expected ({chains}, {draws})")
        stats["tree_size"] = steps
    divergences = None
    if result.divergences is not None:
        divergences = [int(d) for d in np.asarray(_plain(result.divergences)).reshape(-1)]
        if len(divergences) != chains:
            raise UserError(f"divergences has {len(divergences)} values; expected {chains}")
        diverging = getattr(result, "diverging", None)
        if diverging is not None:
            flags = np.asarray(_plain(diverging), dtype=bool)
            if flags.shape != (chains, draws):
                raise UserError(f"diverging has shape {flags.shape}; expected ({chains}, {draws})")
            stats["diverging"] = flags
        elif not any(divergences):
            stats["diverging"] = np.zeros((chains, draws), dtype=bool)
    stats_attrs = {
        "acceptance_rate": "per-chain mean acceptance probability over the kept draws, "
        "repeated for every draw of the chain",
        "step_size": "per-chain step size after adaptation (Metropolis: proposal scale)",
    }
    if divergences is not None and "diverging" not in stats:
        stats_attrs["diverging"] = (
            "left out: only per-chain divergence counts are known (attrs['divergences'])"
        )
    attrs = {
        "method": _method(method),
        "kernel": str(result.kernel),
        "seconds": _optional_float("seconds", result.seconds),
        "divergences": divergences,
    }
    groups = _data_groups(
        chains,
        draws,
        split=False,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        observed_data=observed_data,
    )
    groups["sample_stats"] = stats  # bool and int arrays, not through _data_groups' float64
    return _inference_data(
        posterior,
        attrs=attrs,
        dims=dims,
        coords=coords,
        sample_stats_attrs=stats_attrs,
        loo_note=loo_note,
        **groups,
    )


def from_samples(
    samples: Mapping[str, np.ndarray | torch.Tensor],
    *,
    method: str,
    parameters: Mapping[str, tuple[int, ...]],
    chains: int = 1,
    khat: float | None = None,
    khats: Iterable[float] = (),
    elbo: float | None = None,
    seconds: float | None = None,
    log_likelihood: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    posterior_predictive: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    observed_data: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    sample_stats: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Draws ``(S, ...)`` of a variational guide (or ``Predictive``) as InferenceData.

    Parameters
    ----------
    samples : mapping of str to array or Tensor
        Site -> ``(S, *padding, *event)``; ``Predictive`` pads scalar sites to ``(S, 1)``
        and global vector sites to ``(S, 1, K)``: singleton dims after the draw axis are
        dropped to reach the declared event shape. Sites not in ``parameters`` (observed
        sites, ...) are ignored.
    method : str
        Stored in ``attrs["method"]``.
    parameters : mapping of str to tuple of int
        Site -> event shape (e.g. ``ZooModel.parameters``); the posterior variables, in order.
    chains : int
        The S draws are cut into ``chains`` chains of ``S // chains`` consecutive draws.
    khat, khats, elbo, seconds : optional
        Pareto k-hat (overall and per site/point), ELBO in nats, fitting time; stored in
        ``attrs`` (``None`` and an empty ``khats`` are left out).
    log_likelihood : mapping of str to array, optional
        Observed site -> pointwise log-likelihood ``(S, N)``
        (:func:`pyrovae.infer.pointwise.pointwise`).
    posterior_predictive : mapping of str to array, optional
        Observed site -> replicated data ``(S, *value_shape)``.
    observed_data : mapping of str to array, optional
        Observed site -> observations ``value_shape``.
    sample_stats : mapping of str to array, optional
        Per-draw statistics ``(S,)``; for a guide ``lp`` (log p(theta, y)) and ``log_q``
        (log q(theta)), which make :func:`loo` correct for q not being the posterior.
    dims, coords : mapping, optional
        See the module notes.

    Returns
    -------
    arviz.InferenceData
        Group ``posterior`` and those given; variables ``(chain, draw, *event)``.
    """
    if not parameters:
        raise UserError("parameters must name at least one site")
    missing = [name for name in parameters if name not in samples]
    if missing:
        raise UserError(f"samples lack site(s) {missing} (they have {sorted(samples)})")
    posterior = {}
    for name, event in parameters.items():
        array = squeeze_padding(name, _array(samples[name], f"samples '{name}'"), tuple(event), 1)
        posterior[name] = _split_chains(array, chains, f"samples '{name}'")
    first = next(iter(posterior.values()))
    for name, array in posterior.items():
        if array.shape[:2] != first.shape[:2]:
            raise UserError(
                f"samples '{name}' have {array.shape[0] * array.shape[1]} draws, others "
                f"{first.shape[0] * first.shape[1]}; pass draws from one run"
            )
    return _inference_data(
        posterior,
        attrs=_method_attrs(method, seconds=seconds, khat=khat, khats=khats, elbo=elbo),
        dims=dims,
        coords=coords,
        **_data_groups(
            first.shape[0],
            first.shape[1],
            split=True,
            log_likelihood=log_likelihood,
            posterior_predictive=posterior_predictive,
            observed_data=observed_data,
            sample_stats=sample_stats,
        ),
    )


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
            array[(slice(None), slice(None), *index)] = columns[..., p]
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
    array = _array(draws, "draws")
    names = [str(n) for n in names]
    if array.ndim == 2:
        array = _split_chains(array, chains, "draws")
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
    return _inference_data(
        variables,
        attrs=_method_attrs(method, seconds=seconds, khat=khat, khats=khats, elbo=elbo),
        dims=dims,
        coords=coords,
        **_data_groups(
            array.shape[0],
            array.shape[1],
            split=split,
            log_likelihood=log_likelihood,
            posterior_predictive=posterior_predictive,
            observed_data=observed_data,
        ),
    )


def from_local(
    draws: np.ndarray | torch.Tensor,
    *,
    method: str,
    chains: int = 1,
    seconds: float | None = None,
    elbo: float | None = None,
    log_likelihood: np.ndarray | torch.Tensor | None = None,
    observed: np.ndarray | torch.Tensor | None = None,
) -> az.InferenceData:
    """VAE local posteriors ``(S, N, L)`` (``LocalPosteriors.draws[method]``) as InferenceData.

    One variable ``z`` with dims ``("chain", "draw", "point", "latent")`` (:data:`LOCAL_DIMS`),
    coords ``1..N`` and ``1..L`` (the comparison's ``z[n,l]``); the S draws are cut into
    ``chains`` chains of consecutive draws. For the MCMC runs of the same points use
    :func:`from_mcmc` with ``dims=LOCAL_DIMS`` (it keeps their sample_stats).

    Parameters
    ----------
    log_likelihood : (S, N) array, optional
        ``log p(x_n | z_s)`` of each point at each draw (pixels summed), stored as the
        variable ``x`` of the ``log_likelihood`` group, dims ``("chain", "draw", "point")``.
        It gives the reconstruction term of the ELBO per draw; it is *not* meant for
        :func:`loo`: leaving out a point leaves its ``z`` with only its prior, so the LOO
        density is the marginal p(x_n) estimated by a harmonic mean of p(x_n | z), whose
        Pareto k-hat is far above 0.7 for images. The group's attrs carry that note
        (:data:`LOCAL_LOO_NOTE` under :data:`NO_LOO`), so :func:`loo_table` leaves it out.
    observed : (N, D) array, optional
        The points, variable ``x`` of ``observed_data`` with dims ``("point", "pixel")``.
    """
    array = _array(draws, "draws")
    if array.ndim != 3:
        raise UserError(f"local draws must be (S, N, L), got shape {array.shape}")
    z = _split_chains(array, chains, "draws")
    return _inference_data(
        {"z": z},
        attrs=_method_attrs(method, seconds=seconds, elbo=elbo),
        dims=LOCAL_DIMS,
        loo_note=LOCAL_LOO_NOTE,
        **_data_groups(
            z.shape[0],
            z.shape[1],
            split=True,
            log_likelihood=None if log_likelihood is None else {"x": log_likelihood},
            observed_data=None if observed is None else {"x": observed},
        ),
    )


# --- files ------------------------------------------------------------------------------------


def save(idata: az.InferenceData, path: str | Path) -> Path:
    """Write ``idata`` to a NetCDF file (parents created, an existing file replaced).

    ``idata`` itself is not changed: attrs of the InferenceData and of each group that
    NetCDF cannot hold (lists, dicts, ``None``, booleans) are written as JSON strings and
    listed in the attr ``pyrovae_json_attrs``, which :func:`load` decodes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = {}
    for group in idata.groups():
        dataset = getattr(idata, group).copy(deep=False)
        dataset.attrs = _encode_attrs(dataset.attrs)
        groups[group] = dataset
    encoded = az.InferenceData(attrs=_encode_attrs(idata.attrs), **groups)
    try:
        encoded.to_netcdf(str(path))
    except (OSError, ValueError, TypeError) as err:
        raise UserError(f"{path}: cannot write the NetCDF file ({_one_line(err)})") from None
    return path


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def load(path: str | Path) -> az.InferenceData:
    """Read a file written by :func:`save` (attrs decoded).

    Raises
    ------
    pyrovae.errors.UserError
        One line, if the file is missing or is not an InferenceData NetCDF file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; write it with pyrovae.diagnostics.save")
    try:
        idata = az.from_netcdf(str(path))
    except Exception as err:  # h5py/xarray raise OSError, ValueError, KeyError, ...
        raise UserError(f"{path}: cannot read as an ArviZ NetCDF file ({_one_line(err)})") from None
    if not idata.groups():
        raise UserError(f"{path}: the file holds no InferenceData groups")
    for group in idata.groups():
        dataset = getattr(idata, group)
        dataset.attrs = _decode_attrs(dataset.attrs)
    idata.attrs = _decode_attrs(idata.attrs)
    return idata


# --- diagnostics ------------------------------------------------------------------------------


def summary(
    idata: az.InferenceData, *, hdi_prob: float = 0.94, var_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """``arviz.summary`` of the posterior, unrounded.

    Columns ``mean``, ``sd``, ``hdi_3%``, ``hdi_97%`` (for ``hdi_prob=0.94``),
    ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat`` (rank-normalised
    split R-hat; NaN with a single chain, as ArviZ 0.2x gives it). One row per scalar
    element labelled like the comparison tables, e.g. ``theta[1]``, ``z[2,1]`` (ArviZ's
    ``"z[2, 1]"`` without the space).
    """
    with _quiet_arviz():
        table = az.summary(
            idata,
            group="posterior",
            var_names=list(var_names) if var_names is not None else None,
            hdi_prob=hdi_prob,
            round_to="none",
        )
    table.index = [_LABEL_SPACES.sub(",", str(label)) for label in table.index]
    return table


@contextlib.contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's log notices (a single chain fails its "at least two chains" shape
    check), its Pareto-k UserWarnings (the tables report k-hat themselves) and the
    deprecation warnings its internals raise."""
    # ArviZ 0.2x logs through its own Logger("arviz") instance, not logging.getLogger("arviz")
    logger = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", UserWarning)
            # ArviZ 0.2x's own use of pandas and numpy APIs that are going away
            _warnings.simplefilter("ignore", DeprecationWarning)
            _warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _worst(dataset: xr.Dataset, *, largest: bool) -> dict[str, tuple[str, float]]:
    """Per variable its worst element: label (``theta[2]``, coords values) and the largest
    (or smallest) finite value; variables with no finite value are left out."""
    out = {}
    for name, values in dataset.data_vars.items():
        array = np.asarray(values.values, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.any():
            continue
        masked = np.where(finite, array, -np.inf if largest else np.inf)
        flat = int(np.argmax(masked) if largest else np.argmin(masked))
        index = np.unravel_index(flat, array.shape) if array.ndim else ()
        labels = [str(values[d].values[i]) for d, i in zip(values.dims, index, strict=True)]
        label = f"{name}[{','.join(labels)}]" if labels else str(name)
        out[str(name)] = (label, float(array.reshape(-1)[flat]))
    return out


def _divergences(idata: az.InferenceData) -> list[int] | None:
    """Divergent transitions per chain from ``sample_stats.diverging`` or ``attrs``."""
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        counts = stats["diverging"].astype(int).sum("draw").values
        return [int(c) for c in np.asarray(counts).reshape(-1)]
    for attrs in (idata.attrs, stats.attrs if stats is not None else {}):
        value = attrs.get("divergences")
        if value is not None and not isinstance(value, str):
            return [int(c) for c in np.asarray(value).reshape(-1)]
    return None


def warnings(idata: az.InferenceData) -> list[str]:
    """Convergence warnings, one line each; an empty list when all is fine.

    * R-hat (rank-normalised split R-hat) above :data:`RHAT_MAX`: the variables and their
      worst element. Skipped with a single chain: R-hat compares chains (ArviZ would compare
      the two halves of the one chain, which does not detect a chain stuck in one mode).
    * Bulk and tail ESS below :data:`ESS_MIN_PER_CHAIN` times the number of chains: the
      variables and their smallest value.
    * Divergent transitions, from ``sample_stats.diverging`` or ``attrs["divergences"]``.
    """
    if "posterior" not in idata.groups():
        raise UserError("the InferenceData has no posterior group")
    posterior = idata.posterior
    chains = int(posterior.sizes["chain"])
    out = []

    def listing(values: dict[str, tuple[str, float]]) -> str:
        return ", ".join(f"{label} ({value:.3g})" for label, value in values.values())

    with _quiet_arviz():
        r_hats = az.rhat(posterior) if chains > 1 else None
        ess_by_kind = {kind: az.ess(posterior, method=kind) for kind in ("bulk", "tail")}
    if r_hats is not None:
        r_hat = {k: v for k, v in _worst(r_hats, largest=True).items() if v[1] > RHAT_MAX}
        if r_hat:
            out.append(
                f"r_hat > {RHAT_MAX} (chains have not mixed) for {len(r_hat)} variable(s), "
                f"worst value: {listing(r_hat)}"
            )
    minimum = ESS_MIN_PER_CHAIN * chains
    for kind in ("bulk", "tail"):
        ess = {k: v for k, v in _worst(ess_by_kind[kind], largest=False).items() if v[1] < minimum}
        if ess:
            out.append(
                f"ess_{kind} < {minimum} ({ESS_MIN_PER_CHAIN} per chain x {chains} chain(s)) "
                f"for {len(ess)} variable(s), smallest value: {listing(ess)}"
            )
    divergences = _divergences(idata)
    if divergences and sum(divergences) > 0:
        out.append(
            f"{sum(divergences)} divergent transition(s) (per chain: "
            f"{', '.join(map(str, divergences))}); the sampler missed regions of high curvature"
        )
    return out


# --- leave-one-out ----------------------------------------------------------------------------


def _log_ratio(idata: az.InferenceData) -> xr.DataArray | None:
    """``lp - log_q`` ``(chain, draw)`` for draws of a variational guide, else None."""
    stats = getattr(idata, "sample_stats", None)
    if stats is None or "lp" not in stats or "log_q" not in stats:
        return None
    return stats["lp"] - stats["log_q"]


def loo_variables(idata: az.InferenceData) -> list[str]:
    """Variables of the ``log_likelihood`` group that PSIS-LOO applies to: empty when there
    is no such group or its attrs carry a :data:`NO_LOO` note."""
    if "log_likelihood" not in idata.groups() or idata.log_likelihood.attrs.get(NO_LOO):
        return []
    return [str(name) for name in idata.log_likelihood.data_vars]


def _loo_names(idata: az.InferenceData) -> list[str]:
    """:func:`loo_variables`, or a one-line UserError saying why there are none."""
    names = loo_variables(idata)
    if names:
        return names
    if "log_likelihood" not in idata.groups():
        raise UserError("the InferenceData has no log_likelihood group; LOO needs one")
    raise UserError(f"LOO does not apply: {idata.log_likelihood.attrs[NO_LOO]}")


def loo(idata: az.InferenceData, var_name: str | None = None) -> ELPDData:
    """PSIS-LOO of one ``log_likelihood`` variable, pointwise (``loo_i``, ``pareto_k``).

    Posterior draws (MCMC, exact, reference) go to ``arviz.loo``. Draws of a variational
    guide (``sample_stats`` ``lp`` and ``log_q``) are importance-corrected: the ratios
    p(theta | y_-i) / q(theta) ∝ exp(lp - log_q) / p(y_i | theta) are Pareto smoothed
    (``arviz.psislw``, relative efficiency 1 for independent draws), so the estimate is of
    the same model's elpd as for MCMC and k-hat > ``good_k`` says the guide could not
    give it (Magnusson, Andersen, Jonasson and Vehtari 2019; Vehtari et al. 2024, PSIS).
    ``p_loo`` then uses the importance-weighted lppd.

    Parameters
    ----------
    var_name : str, optional
        Variable of ``log_likelihood``; needed when it has several.

    Raises
    ------
    pyrovae.errors.UserError
        When there is no ``log_likelihood`` group or ``var_name`` is not in it.
    """
    names = _loo_names(idata)
    if var_name is None:
        if len(names) > 1:
            raise UserError(f"log_likelihood has several variables {names}; pass var_name")
        var_name = names[0]
    if var_name not in names:
        raise UserError(f"log_likelihood has no variable {var_name!r} (it has {names})")
    log_ratio = _log_ratio(idata)
    with _quiet_arviz():
        if log_ratio is None:
            return az.loo(idata, pointwise=True, var_name=var_name, scale="log")
        return _corrected_loo(idata.log_likelihood[var_name], log_ratio)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log sum exp over the last axis."""
    top = np.max(x, axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(x - top), axis=-1)) + top[..., 0]


def _corrected_loo(log_lik: xr.DataArray, log_ratio: xr.DataArray) -> ELPDData:
    """PSIS-LOO from draws of an approximation q with log-weights ``log p - log q``."""
    stacked = log_lik.stack(__sample__=_SAMPLE_DIMS)
    values = np.asarray(stacked.values, dtype=np.float64)  # (*obs, S)
    ratio = np.asarray(log_ratio.stack(__sample__=_SAMPLE_DIMS).values, dtype=np.float64)
    n_samples, n_data = values.shape[-1], int(np.prod(values.shape[:-1]))
    loo_weights, pareto_k = az.psislw(ratio - values, reff=1.0)
    full_weights, _ = az.psislw(ratio, reff=1.0)
    loo_i = _logsumexp(np.asarray(loo_weights) + values)
    lppd = float(np.sum(_logsumexp(np.asarray(full_weights) + values)))
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    pareto = np.asarray(pareto_k, dtype=np.float64)
    obs_dims = [d for d in stacked.dims if d != "__sample__"]
    obs_coords = {d: stacked[d].values for d in obs_dims}
    elpd = float(np.sum(loo_i))
    return ELPDData(
        data=[
            elpd,
            float((n_data * np.var(loo_i)) ** 0.5),
            lppd - elpd,
            n_samples,
            n_data,
            bool(np.any(pareto > good_k)),
            xr.DataArray(loo_i, dims=obs_dims, coords=obs_coords, name="loo_i"),
            xr.DataArray(pareto, dims=obs_dims, coords=obs_coords, name="pareto_k"),
            "log",
            good_k,
        ],
        index=[
            "elpd_loo",
            "se",
            "p_loo",
            "n_samples",
            "n_data_points",
            "warning",
            "loo_i",
            "pareto_k",
            "scale",
            "good_k",
        ],
    )


def loo_mcse(idata: az.InferenceData, var_name: str | None = None) -> float:
    """Monte Carlo standard error of :func:`loo`'s ``elpd_loo`` (nats), by the delta method.

    The importance-sampling estimate is ``elpd = sum_i [log A - log B_i]`` with
    ``A = mean_s a_s`` and ``B_i = mean_s a_s / p(y_i | theta_s)`` (``a_s = 1`` for posterior
    draws, ``exp(lp - log_q)`` for a guide's). Its linearisation is the mean over draws of
    ``h_s = n a_s / A - sum_i a_s / (p(y_i | theta_s) B_i)``, so the MCSE is
    ``sd(h) / sqrt(ESS(h))`` with ArviZ's ESS of ``h`` over the chains (independent draws:
    about S). It is the error of the unsmoothed estimate, which PSIS matches when every
    k-hat is small; with large k-hat the variance may be infinite and this is too small.
    It measures the error from using finitely many draws, the noise to allow for when
    methods that approximate the same posterior are compared; ``se`` is the data-level
    uncertainty of elpd and does not shrink with more draws.
    """
    names = _loo_names(idata)
    if var_name not in (None, *names):
        raise UserError(f"log_likelihood has no variable {var_name!r} (it has {names})")
    var_name = var_name or names[0]
    log_lik = idata.log_likelihood[var_name]
    obs_dims = [d for d in log_lik.dims if d not in _SAMPLE_DIMS]
    values = np.asarray(log_lik.transpose(*_SAMPLE_DIMS, *obs_dims).values, dtype=np.float64)
    chains, draws = values.shape[:2]
    values = values.reshape(chains, draws, -1)
    log_ratio = _log_ratio(idata)
    log_a = (
        np.zeros((chains, draws))
        if log_ratio is None
        else np.asarray(log_ratio.transpose(*_SAMPLE_DIMS).values, dtype=np.float64)
    )
    total = chains * draws

    def log_mean(x: np.ndarray) -> np.ndarray:  # log mean over all draws, per last-axis item
        flat = x.reshape(total, -1)
        top = flat.max(axis=0)
        return np.log(np.mean(np.exp(flat - top), axis=0)) + top

    log_ar = log_a[..., None] - values  # log a_s - log p(y_i | theta_s)
    h = values.shape[-1] * np.exp(log_a - log_mean(log_a)[0])
    h = h - np.exp(log_ar - log_mean(log_ar)).sum(axis=-1)
    with _quiet_arviz():
        ess = float(az.ess(h, method="mean"))
    return float(np.std(h) / math.sqrt(ess))


LOO_COLUMNS = (
    "site",
    "method",
    "rank",
    "elpd_loo",
    "se",
    "mcse",
    "p_loo",
    "elpd_diff",
    "dse",
    "khat_max",
    "khat_bad",
    "good_k",
    "n_data",
    "n_draws",
    "q_corrected",
)
"""Keys of the rows of :func:`loo_table` (the columns of ``loo.csv``)."""


def loo_table(idatas: Mapping[str, az.InferenceData]) -> list[dict[str, Any]]:
    """PSIS-LOO of every method with a log-likelihood, compared with ``arviz.compare``.

    Parameters
    ----------
    idatas : mapping of str to InferenceData
        Method name -> its InferenceData (the same model); those without a
        ``log_likelihood`` group are left out.

    Returns
    -------
    list of dict
        One row per observed site and method, in the order of ``idatas``, keys
        :data:`LOO_COLUMNS`: ``elpd_loo`` and its ``se`` (nats, higher is better), its
        Monte Carlo error ``mcse`` (:func:`loo_mcse`), ``p_loo``; from ``arviz.compare``
        the ``rank`` (0 = highest elpd), ``elpd_diff`` (best minus this) and ``dse``
        (standard error of that difference, over observations); the largest
        Pareto k-hat, the number of observations whose k-hat exceeds ``good_k``
        (``min(1 - 1 / log10(S), 0.7)``: their LOO estimates are unreliable), and whether
        the ratios were corrected for a variational q. Empty when no method has a
        log-likelihood.
    """
    by_site: dict[str, dict[str, ELPDData]] = {}
    corrected = {}
    for method, idata in idatas.items():
        for site in loo_variables(idata):
            by_site.setdefault(site, {})[method] = loo(idata, site)
        corrected[method] = _log_ratio(idata) is not None
    rows = []
    for site, elpds in by_site.items():
        with _quiet_arviz():
            ranked = az.compare(elpds, ic="loo", scale="log")
        for method, elpd in elpds.items():
            k = np.asarray(elpd["pareto_k"], dtype=np.float64)
            rows.append(
                {
                    "site": site,
                    "method": method,
                    "rank": int(ranked.loc[method, "rank"]),
                    "elpd_loo": float(elpd["elpd_loo"]),
                    "se": float(elpd["se"]),
                    "mcse": loo_mcse(idatas[method], site),
                    "p_loo": float(elpd["p_loo"]),
                    "elpd_diff": float(ranked.loc[method, "elpd_diff"]),
                    "dse": float(ranked.loc[method, "dse"]),
                    "khat_max": float(np.max(k)),
                    "khat_bad": int(np.sum(k > elpd["good_k"])),
                    "good_k": float(elpd["good_k"]),
                    "n_data": int(elpd["n_data_points"]),
                    "n_draws": int(elpd["n_samples"]),
                    "q_corrected": corrected[method],
                }
            )
    return rows


# --- overlays ---------------------------------------------------------------------------------


def _ordered(idatas: Mapping[str, az.InferenceData]) -> dict[str, az.InferenceData]:
    if not idatas:
        raise UserError("plot_overlays needs at least one InferenceData")
    ordered = {REFERENCE: idatas[REFERENCE]} if REFERENCE in idatas else {}
    ordered.update({k: v for k, v in idatas.items() if k != REFERENCE})
    return ordered


def _elements(
    idatas: Mapping[str, az.InferenceData], var_names: Sequence[str] | None
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, variable, selection)`` of every scalar element to draw, first dataset first."""
    posteriors = [idata.posterior for idata in idatas.values()]
    first = posteriors[0]
    if var_names is None:
        names = [str(v) for v in first.data_vars if all(v in p.data_vars for p in posteriors)]
    else:
        names = list(var_names)
        for key, posterior in zip(idatas, posteriors, strict=True):
            absent = [n for n in names if n not in posterior.data_vars]
            if absent:
                raise UserError(f"'{key}' has no variable(s) {absent}")
    out = []
    for name in names:
        values = first[name]
        event = [d for d in values.dims if d not in _SAMPLE_DIMS]
        for index in itertools.product(*(values[d].values.tolist() for d in event)):
            selection = dict(zip(event, index, strict=True))
            label = f"{name}[{','.join(map(str, index))}]" if index else name
            out.append((label, name, selection))
    if not out:
        raise UserError("the InferenceData objects share no posterior variable to plot")
    return out


def _scalars(
    key: str,
    idata: az.InferenceData,
    elements: Sequence[tuple[str, str, dict[str, Any]]],
    max_draws: int | None = None,
    seed: int = 0,
) -> az.InferenceData:
    """InferenceData whose posterior holds one scalar variable per element (label names)."""
    arrays = {}
    for label, name, selection in elements:
        try:
            values = idata.posterior[name].sel(selection).transpose(*_SAMPLE_DIMS).values
        except KeyError:
            raise UserError(f"'{key}' has no element {label}") from None
        arrays[label] = np.asarray(values, dtype=np.float64)
    if max_draws is not None:
        total = next(iter(arrays.values())).size
        keep = np.arange(total)
        if total > max_draws:
            keep = np.sort(np.random.default_rng(seed).choice(total, max_draws, replace=False))
        arrays = {label: a.reshape(-1)[keep][None, :] for label, a in arrays.items()}
    return az.InferenceData(posterior=az.dict_to_dataset(arrays, index_origin=0))


def _figure_of(axes: Any):
    return np.ravel(np.asarray(axes, dtype=object))[0].get_figure()


def plot_overlays(
    idatas: Mapping[str, az.InferenceData],
    folder: str | Path,
    *,
    var_names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Overlay the posteriors of several methods in ArviZ's density, forest and pair plots.

    Parameters
    ----------
    idatas : mapping of str to InferenceData
        Method name -> its InferenceData (same variable names, dims and coords, as the
        converters give). A key ``"reference"`` is drawn first, in grey
        (:data:`~pyrovae.compare_plots.REFERENCE_COLOR`); the other methods keep the
        colours of :func:`~pyrovae.compare_plots.method_colors`.
    folder : str or Path
        Created if needed.
    var_names : sequence of str, optional
        Variables to draw; default those every input has, in the order of the first.

    Returns
    -------
    dict of str to Path
        ``"density"`` (``density.png``: the first
        :data:`~pyrovae.compare_plots.MAX_MARGINAL_PANELS` scalar elements),
        ``"forest"`` (``forest.png``: 94% HDI of the first :data:`MAX_FOREST_ROWS`
        elements, chains combined) and ``"pair"`` (``pair.png``: scatter of the first
        :data:`MAX_PAIR_ELEMENTS` elements, :data:`PAIR_POINTS` draws per method; only
        when there are at least two elements).

    Every figure this function opens through pyplot (``arviz.plot_*`` use it) is closed
    before it returns, also on error; ``plt.show`` is never called.
    """
    import matplotlib.pyplot as plt  # arviz.plot_* draw on pyplot figures
    from matplotlib.lines import Line2D

    ordered = _ordered(idatas)
    elements = _elements(ordered, var_names)
    keys = list(ordered)
    colors = method_colors([k for k in keys if k != REFERENCE])
    colors[REFERENCE] = REFERENCE_COLOR
    palette = [colors[k] for k in keys]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    before = set(plt.get_fignums())
    try:
        density = elements[:MAX_MARGINAL_PANELS]
        axes = az.plot_density(
            [_scalars(k, ordered[k], density) for k in keys],
            data_labels=keys,
            var_names=[label for label, _, _ in density],
            colors=palette,
            shade=0.1,
            hdi_prob=0.99,
            show=False,
        )
        paths["density"] = _save_figure(_figure_of(axes), folder / "density.png")

        forest = elements[:MAX_FOREST_ROWS]
        axes = az.plot_forest(
            [_scalars(k, ordered[k], forest) for k in keys],
            model_names=keys,
            var_names=[label for label, _, _ in forest],
            combined=True,
            colors=palette,
            show=False,
        )
        paths["forest"] = _save_figure(_figure_of(axes), folder / "forest.png")

        pair = elements[:MAX_PAIR_ELEMENTS]
        if len(pair) >= 2:
            axes = None
            for i, key in enumerate(keys):
                axes = az.plot_pair(
                    _scalars(key, ordered[key], pair, max_draws=PAIR_POINTS, seed=i),
                    var_names=[label for label, _, _ in pair],
                    kind="scatter",
                    scatter_kwargs={"color": colors[key], "alpha": 0.6, "s": 14},
                    ax=axes,
                    show=False,
                )
            fig = _figure_of(axes)
            handles = [Line2D([], [], marker="o", ls="", color=colors[k], label=k) for k in keys]
            fig.legend(handles=handles, loc="upper right", frameon=False)
            paths["pair"] = _save_figure(fig, folder / "pair.png")
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
    return paths


def _save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # arviz's forest labels overflow
    return path
