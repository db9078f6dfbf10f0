"""Draws of a fitted guide with log p(theta, y) and log q(theta) of each, in one vectorized pass.

:func:`guide_draws` and :func:`guide_samples` give the model's sites (latent or
deterministic) at ``S`` guide draws; :func:`importance_log_ratios` gives
log p(theta, y) - log q(theta) for them, the input of PSIS k-hat and of an importance
estimate of log p(y). :func:`max_plate_nesting` is how many plate dims the draws'
particle plate must sit left of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine

from pyrovae.errors import UserError

__all__ = [
    "GuideDraws",
    "guide_draws",
    "guide_samples",
    "importance_log_ratios",
    "max_plate_nesting",
]


def max_plate_nesting(model: Callable, data: dict[str, Any]) -> int:
    """How many plate dims ``model(**data)`` uses (0 when none).

    Raises
    ------
    UserError
        When the model fails on its data (traced with validation on).
    """
    try:
        with poutine.block(), torch.no_grad():
            trace = poutine.trace(model).get_trace(**data)
    except (ValueError, RuntimeError, TypeError) as err:
        raise UserError(f"the model fails on its data: {' '.join(str(err).split())}") from None
    dims = [
        -f.dim
        for site in trace.nodes.values()
        for f in site.get("cond_indep_stack", ())
        if f.dim is not None
    ]
    return max(dims, default=0)


def _vectorized_traces(
    model: Callable, guide: Callable, data: dict[str, Any], num_samples: int, seed: int
) -> tuple[poutine.Trace, poutine.Trace]:
    """Guide and replayed model traces with ``num_samples`` draws in one particle plate."""
    nesting = max_plate_nesting(model, data)
    pyro.set_rng_seed(seed)
    with (
        pyro.settings.context(module_local_params=True),
        pyro.plate("particles", num_samples, dim=-(nesting + 1)),
    ):
        guide_trace = poutine.trace(guide).get_trace(**data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(**data)
    return guide_trace, model_trace


class GuideDraws(NamedTuple):
    """Draws of a fitted guide and their densities, all from one vectorized trace."""

    samples: dict[str, torch.Tensor]
    """site -> ``(S, ...)``, as :func:`guide_samples` gives them."""
    log_joint: np.ndarray
    """``(S,)`` float64 log p(theta_s, y) of the model."""
    log_q: np.ndarray
    """``(S,)`` float64 log q(theta_s) of the guide."""

    @property
    def log_ratios(self) -> np.ndarray:
        """``(S,)`` log p(theta_s, y) - log q(theta_s): importance log-weights."""
        return self.log_joint - self.log_q


def _site_values(model_trace: poutine.Trace, sites: list[str], num_samples: int) -> dict:
    missing = [s for s in sites if s not in model_trace.nodes]
    if missing:
        raise UserError(f"the model has no site {missing[0]!r}")
    values = {}
    for s in sites:
        value = model_trace.nodes[s]["value"]
        assert value is not None
        values[s] = value.expand(num_samples, *value.shape[1:])
    return values


def _log_density(trace: poutine.Trace, num_samples: int) -> np.ndarray:
    """``(S,)`` sum of every sample site's log-density per draw (scales and masks applied)."""
    trace.compute_log_prob()
    total = torch.zeros(num_samples, dtype=torch.float64)
    for site in trace.nodes.values():
        if site["type"] != "sample":
            continue
        lp = site["log_prob"]
        lp = lp.reshape(num_samples, -1).sum(-1) if lp.dim() else lp.expand(num_samples)
        total += lp.double()
    return total.numpy()


@torch.no_grad()
def guide_draws(
    model: Callable,
    guide: Callable,
    data: dict[str, Any],
    sites: list[str],
    num_samples: int,
    seed: int = 0,
) -> GuideDraws:
    """``num_samples`` draws of ``sites`` with log p(theta, y) and log q(theta) of each.

    The same seed gives the same draws as :func:`guide_samples` and
    :func:`importance_log_ratios`.
    """
    guide_trace, model_trace = _vectorized_traces(model, guide, data, num_samples, seed)
    samples = _site_values(model_trace, sites, num_samples)
    return GuideDraws(
        samples, _log_density(model_trace, num_samples), _log_density(guide_trace, num_samples)
    )


@torch.no_grad()
def guide_samples(
    model: Callable,
    guide: Callable,
    data: dict[str, Any],
    sites: list[str],
    num_samples: int,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """``num_samples`` draws of ``sites`` (latent or deterministic) under the guide.

    Returns
    -------
    dict
        site -> ``(num_samples, ...)``: the value in the model replayed on the
        guide's draws; a site outside some plates keeps singleton dims for them
        (e.g. ``(S, 1, D)``), which :func:`pyrovae.posterior.targets.zoo.flatten` removes.
        (Pyro's ``Predictive(parallel=True)`` with a guide mis-shapes such
        global sites, so it is not used.)
    """
    _, model_trace = _vectorized_traces(model, guide, data, num_samples, seed)
    return _site_values(model_trace, sites, num_samples)


@torch.no_grad()
def importance_log_ratios(
    model: Callable, guide: Callable, data: dict[str, Any], num_samples: int, seed: int = 0
) -> np.ndarray:
    """log p(theta_s, y) - log q(theta_s) for ``num_samples`` guide draws: ``(S,)`` float64."""
    guide_trace, model_trace = _vectorized_traces(model, guide, data, num_samples, seed)
    return _log_density(model_trace, num_samples) - _log_density(guide_trace, num_samples)
