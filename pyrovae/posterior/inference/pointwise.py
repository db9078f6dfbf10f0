"""Pointwise log-likelihood and posterior predictive draws of a Pyro model, per posterior draw.

Given S posterior draws of every latent site of ``model(**data)`` (from MCMC, a variational
guide, exact or reference draws), :func:`pointwise` conditions the model on all S draws at
once (a ``pyro.plate`` of size S left of the model's own plates, as ``Predictive(...,
parallel=True)`` does) and reads each observed site's distribution ``p(y | theta_s)``:

- ``log_likelihood[site]``: ``log p(y_i | theta_s)`` ``(S, *batch_shape)``, one value per
  element of the site's batch shape (its plates): the input of PSIS-LOO. Event dims
  (``to_event``) are summed, as in the site's own ``log_prob``. Masks and scales
  (``poutine.mask``, ``poutine.scale``, subsampling) are *not* applied: the values are
  the unscaled densities of the observations.
- ``posterior_predictive[site]`` (on request): one draw ``y_rep ~ p(y | theta_s)`` per
  posterior draw, ``(S, *value_shape)``.
- ``observed_data[site]``: the observation as the model saw it, ``value_shape``.

Observed sites are the ``obs=`` sample sites, without ``pyro.deterministic`` and
``pyro.factor`` sites. A model that does not run with an extra batch dim on its latents
(e.g. one that calls ``float(theta)`` or branches on a sampled value) is evaluated one draw
at a time instead, with one :class:`DrawByDrawWarning` per call: S model runs instead of
one per chunk, which is slow for thousands of draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution

from pyrovae.errors import UserError

__all__ = [
    "CHUNK_ELEMENTS",
    "DrawByDrawWarning",
    "ModelSites",
    "Pointwise",
    "model_sites",
    "pointwise",
]

CHUNK_ELEMENTS = 2**22
"""Draws are evaluated in chunks of at most about this many observed values (times the draws
in the chunk), so that a VAE's 784 pixels times thousands of draws fit in memory."""

_DRAW_PLATE = "_pyrovae_draws"

_NOT_VECTORIZABLE = (RuntimeError, ValueError, IndexError, TypeError)
"""What torch and Pyro raise when a model meets a batch dim it does not expect (shape
mismatches, ``float()`` of a batch, plate checks); anything else propagates."""


class DrawByDrawWarning(UserWarning):
    """A model did not run with all draws at once and is evaluated one draw at a time."""


class ModelSites(NamedTuple):
    """The sites of one run of ``model(**data)``.

    Attributes
    ----------
    latent : dict of str to (torch.Size, torch.Size, torch.dtype)
        Latent site -> ``(batch_shape, event_shape, dtype)`` of its distribution; its value
        has shape ``batch_shape + event_shape``; draws are cast to ``dtype``.
    observed : dict of str to (torch.Tensor, torch.Size)
        Observed site -> ``(value, batch_shape)``.
    nesting : int
        Batch dims right of which every site's batch shape fits (plates and unplated
        batch dims): the draws go in dim ``-(nesting + 1)``.
    """

    latent: dict[str, tuple[torch.Size, torch.Size, torch.dtype]]
    observed: dict[str, tuple[torch.Tensor, torch.Size]]
    nesting: int


class Pointwise(NamedTuple):
    """What :func:`pointwise` returns; arrays are float64 numpy."""

    log_likelihood: dict[str, np.ndarray]
    """Observed site -> ``(S, *batch_shape)``."""
    posterior_predictive: dict[str, np.ndarray]
    """Observed site -> ``(S, *value_shape)``; empty unless requested."""
    observed_data: dict[str, np.ndarray]
    """Observed site -> ``value_shape``."""


def _numpy(value: torch.Tensor) -> np.ndarray:
    return value.detach().cpu().to(torch.float64).numpy()


def model_sites(model: Callable[..., Any], data: Mapping[str, Any]) -> ModelSites:
    """Trace ``model(**data)`` once (prior draws) and sort its sites.

    Raises
    ------
    UserError
        When the model fails on its data.
    """
    try:
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(model).get_trace(**data)
    except Exception as err:  # a user's model on a user's data: report, never crash
        raise UserError(
            f"the model fails on its data: {type(err).__name__}: {' '.join(str(err).split())}"
        ) from None
    latent, observed, nesting = {}, {}, 0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        infer = site["infer"]
        assert infer is not None
        if infer.get("_deterministic") or infer.get("is_auxiliary"):
            continue
        fn = cast(Distribution, site["fn"])
        frames = [-f.dim for f in site["cond_indep_stack"] if f.dim is not None]
        nesting = max(nesting, len(fn.batch_shape), *frames)
        value = site["value"]
        assert value is not None
        if site["is_observed"]:
            observed[name] = (value.detach(), fn.batch_shape)
        else:
            latent[name] = (fn.batch_shape, fn.event_shape, value.dtype)
    return ModelSites(latent, observed, nesting)


def _rows(value: torch.Tensor, count: int, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """``(count, *shape)`` from a value of shape ``(count or 1, 1..., *shape)`` (broadcast)."""
    lead = value.ndim - len(shape)
    if lead < 0:
        value = value.reshape((1,) * -lead + tuple(value.shape))
        lead = 0
    try:
        full = value.expand(*([-1] * lead), *shape).reshape(-1, *shape)
    except RuntimeError:
        full = None
    if full is None or full.shape[0] not in (1, count):
        raise UserError(
            f"{what}: shape {tuple(value.shape)} does not broadcast to {count} draws of "
            f"{tuple(shape)}; does the model keep its plates in fixed dims?"
        )
    return full.expand(count, *shape)


def _read(trace: poutine.Trace, sites: ModelSites, count: int, predictive: bool) -> tuple:
    """Log-likelihood ``(count, *batch)`` and predictive draws ``(count, *value)`` per site."""
    log_lik, draws = {}, {}
    for name, (value, batch) in sites.observed.items():
        fn = cast(Distribution, trace.nodes[name]["fn"])
        log_lik[name] = _rows(fn.log_prob(value), count, tuple(batch), f"log p({name})")
        if predictive:
            draws[name] = _rows(fn.sample(), count, tuple(value.shape), f"draws of {name}")
    return log_lik, draws


def _conditioned_trace(model, data, values: dict[str, torch.Tensor]) -> poutine.Trace:
    return poutine.trace(poutine.condition(model, data=values)).get_trace(**data)


def _vectorized(model, data, sites: ModelSites, latent, predictive: bool) -> tuple:
    """All draws of ``latent`` ``(S, *value_shape)`` in one plate of size S."""
    count = next(iter(latent.values())).shape[0]
    values = {}
    for name, (batch, event, _) in sites.latent.items():
        pad = (1,) * (sites.nesting - len(batch))
        values[name] = latent[name].reshape(count, *pad, *batch, *event)
    with pyro.plate(_DRAW_PLATE, count, dim=-(sites.nesting + 1)):
        trace = _conditioned_trace(model, data, values)
    return _read(trace, sites, count, predictive)


def _one_by_one(model, data, sites: ModelSites, latent, predictive: bool) -> tuple:
    """One model run per draw: for models that do not take a batch dim on their latents."""
    count = next(iter(latent.values())).shape[0]
    shapes = {name: (*batch, *event) for name, (batch, event, _) in sites.latent.items()}
    parts: list[tuple] = []
    for s in range(count):
        values = {name: latent[name][s].reshape(shape) for name, shape in shapes.items()}
        parts.append(_read(_conditioned_trace(model, data, values), sites, 1, predictive))
    return tuple({k: torch.cat([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(2))


def _one_by_one_checked(model, data, sites: ModelSites, latent, predictive: bool) -> tuple:
    try:
        return _one_by_one(model, data, sites, latent, predictive)
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        raise UserError(
            "the model fails when conditioned on the posterior draws: "
            f"{type(err).__name__}: {' '.join(str(err).split())}"
        ) from None


def _model_name(model: Callable[..., Any]) -> str:
    return getattr(model, "__qualname__", None) or type(model).__name__


def _warn_draw_by_draw(model: Callable[..., Any], err: Exception, draws: int) -> None:
    """Say, once per :func:`pointwise` call, that ``model`` falls back to one run per draw.

    The reason is the error's first line (Pyro appends the trace shapes on later lines).
    """
    reason = (str(err).strip().splitlines() or [""])[0][:200]
    warnings.warn(
        f"pointwise: model '{_model_name(model)}' does not run with a batch of draws "
        f"({type(err).__name__}: {reason}); evaluating its {draws} "
        "draw(s) one model run at a time instead, which is slow for many draws. To stay "
        "vectorized, let latents carry an extra batch dim on the left (index with "
        "`...`, no float()/item() or Python branching on sampled values)",
        DrawByDrawWarning,
        stacklevel=4,  # the caller of pointwise (through torch.no_grad's wrapper)
    )


def _latent_tensors(
    latent: Mapping[str, Any], sites: ModelSites
) -> tuple[dict[str, torch.Tensor], int]:
    """Every latent site as ``(S, *value_shape)`` (padding such as ``(S, 1, K)`` reshaped)."""
    missing = [name for name in sites.latent if name not in latent]
    if missing:
        raise UserError(
            f"the draws lack latent site(s) {missing} (they have {sorted(latent)}); the "
            "log-likelihood needs a value for every latent site"
        )
    out, count = {}, None
    for name, (batch, event, dtype) in sites.latent.items():
        tensor = torch.as_tensor(latent[name]).detach().to(dtype)
        size = math.prod((*batch, *event))
        if tensor.ndim < 1 or tensor.numel() != tensor.shape[0] * size:
            raise UserError(
                f"draws of '{name}' have shape {tuple(tensor.shape)}; expected (S, "
                f"{', '.join(map(str, (*batch, *event)))}) or that with singleton padding"
            )
        count = tensor.shape[0] if count is None else count
        if tensor.shape[0] != count:
            raise UserError(f"draws of '{name}' number {tensor.shape[0]}, other sites {count}")
        out[name] = tensor.reshape(count, *batch, *event)
    return out, int(count or 0)


@torch.no_grad()
def pointwise(
    model: Callable[..., Any],
    data: Mapping[str, Any],
    latent: Mapping[str, torch.Tensor | np.ndarray],
    *,
    predictive: bool = False,
    seed: int = 0,
) -> Pointwise:
    """Pointwise log-likelihood (and predictive draws) of ``model(**data)`` at each draw.

    Parameters
    ----------
    model : callable
        Pyro model called as ``model(**data)``; its ``obs=`` sites are the observations.
    data : mapping
        The model's keyword arguments.
    latent : mapping of str to Tensor or array
        Latent site -> ``(S, *value_shape)`` draws; singleton padding after the draw axis
        (``(S, 1)``, ``(S, 1, K)`` from ``Predictive`` or vectorized guides) is allowed.
        Every latent site of the model is needed (deterministic sites are recomputed);
        other keys are ignored.
    predictive : bool
        Also draw ``y_rep ~ p(y | theta_s)`` for every observed site.
    seed : int
        Seed of the predictive draws (the global torch generator is left as it was).

    Returns
    -------
    Pointwise
        ``log_likelihood`` ``(S, *batch_shape)`` per observed site, ``posterior_predictive``
        ``(S, *value_shape)`` (empty unless ``predictive``), ``observed_data``.

    Warns
    -----
    DrawByDrawWarning
        Once, when the model fails with a batch of draws and is run once per draw instead.
    """
    data = dict(data)
    sites = model_sites(model, data)
    observed = {name: _numpy(value) for name, (value, _) in sites.observed.items()}
    tensors, count = _latent_tensors(latent, sites)
    if not sites.observed or count == 0:
        return Pointwise({}, {}, observed)
    per_draw = max(sum(v.numel() for v, _ in sites.observed.values()), 1)
    chunk = max(1, CHUNK_ELEMENTS // per_draw)
    parts, vectorize = [], True
    with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for start in range(0, count, chunk):
            piece = {k: v[start : start + chunk] for k, v in tensors.items()}
            if vectorize:
                try:
                    parts.append(_vectorized(model, data, sites, piece, predictive))
                    continue
                except _NOT_VECTORIZABLE as err:
                    vectorize = False  # the later chunks go draw by draw, unwarned
                    _warn_draw_by_draw(model, err, count - start)
            parts.append(_one_by_one_checked(model, data, sites, piece, predictive))
    log_lik, draws = (
        {k: _numpy(torch.cat([p[i][k] for p in parts])) for k in parts[0][i]} for i in range(2)
    )
    return Pointwise(log_lik, draws, observed)
