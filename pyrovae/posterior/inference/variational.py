"""Variational fits of a small posterior with Pyro autoguides.

:func:`fit_guide` fits one guide family to ``model(**data)`` with
``Trace_ELBO`` and Pyro's ``ClippedAdam``, stopping on convergence rather
than after a fixed number of steps: the loss is averaged over windows of
steps, and when a window no longer improves on the previous one by more than
its noise (two standard errors of the difference of the window means) the
learning rate drops by :data:`LR_FACTOR`; after :data:`LR_REDUCTIONS` drops it stops.
Guides start close to a point (``init_scale`` small) at the prior median.

:func:`importance_log_ratios` gives log p(theta, y) - log q(theta) for
draws of the fitted guide, the input of PSIS k-hat and of an importance
estimate of log p(y).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer import autoguide as ag
from pyro.optim.clipped_adam import ClippedAdam
from tqdm.auto import tqdm

from pyrovae.errors import PyrovaeError, UserError

__all__ = [
    "GUIDES",
    "LR_REDUCTIONS",
    "GuideDraws",
    "VariationalResult",
    "fit_guide",
    "guide_draws",
    "guide_samples",
    "importance_log_ratios",
    "make_guide",
    "max_plate_nesting",
]

GUIDES = ("auto_normal", "auto_mvn", "auto_lowrank_mvn", "auto_iaf")
LR_REDUCTIONS = 3
"""Learning-rate drops before a plateau counts as convergence."""
LR_FACTOR = 0.3
"""Learning-rate multiplier at each plateau (0.1 stalls Adam, whose steps scale with
the rate, before the optimum is reached to two decimals)."""
INIT_SCALE = 0.01
"""Initial standard deviation of Gaussian guides: start near a point, widen as needed."""


class VariationalResult(NamedTuple):
    """A fitted guide and how the fit went."""

    name: str
    guide: Callable[..., Any]
    losses: np.ndarray
    """``(steps,)`` negative ELBO per step."""
    converged: bool
    seconds: float
    elbo: float
    """Final ELBO estimate in nats (many particles): a lower bound on log p(y)."""


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
        if f.vectorized
    ]
    return max(dims, default=0)


def make_guide(name: str, model: Callable) -> Callable[..., Any]:
    """An autoguide by name: ``auto_normal`` (mean field), ``auto_mvn`` (full
    covariance), ``auto_lowrank_mvn`` (rank-2 plus diagonal), ``auto_iaf``
    (a normalizing flow: two inverse autoregressive transforms)."""
    init = ag.initialization.init_to_median
    if name == "auto_normal":
        return ag.AutoNormal(model, init_loc_fn=init, init_scale=INIT_SCALE)
    if name == "auto_mvn":
        return ag.AutoMultivariateNormal(model, init_loc_fn=init, init_scale=INIT_SCALE)
    if name == "auto_lowrank_mvn":
        return ag.AutoLowRankMultivariateNormal(
            model, init_loc_fn=init, init_scale=INIT_SCALE, rank=2
        )
    if name == "auto_iaf":
        return ag.AutoIAFNormal(model, num_transforms=2, init_loc_fn=init)
    raise UserError(f"unknown guide {name!r}; choose one of {', '.join(GUIDES)}")


def _plateau(previous: np.ndarray, current: np.ndarray) -> bool:
    noise = 2 * math.sqrt(previous.var() / previous.size + current.var() / current.size)
    return previous.mean() - current.mean() <= noise


def fit_guide(
    model: Callable,
    data: dict[str, Any] | None = None,
    guide: str | Callable[..., Any] = "auto_normal",
    *,
    seed: int = 0,
    lr: float = 0.02,
    particles: int = 64,
    window: int = 200,
    max_steps: int = 20_000,
    elbo_particles: int = 2000,
    progress: bool = False,
) -> VariationalResult:
    """Fit ``guide`` to the posterior of ``model(**data)``.

    Parameters
    ----------
    guide : str or callable
        A name from :data:`GUIDES`, or a Pyro guide (e.g. a PyroModule) whose
        parameters are created on its first call.
    particles : int
        Vectorized samples per step of the ELBO gradient.
    window : int
        Steps per convergence window.
    progress : bool
        Show a progress bar (steps, up to ``max_steps``; most fits stop far earlier).

    Raises
    ------
    PyrovaeError
        When the loss becomes NaN or infinite.
    """
    data = dict(data or {})
    nesting = max_plate_nesting(model, data)
    name = guide if isinstance(guide, str) else getattr(guide, "__name__", type(guide).__name__)
    pyro.set_rng_seed(seed)
    with pyro.settings.context(module_local_params=True):
        guide_fn = make_guide(guide, model) if isinstance(guide, str) else guide
        guide_fn(**data)  # create parameters
        params = [p for p in guide_fn.parameters() if p.requires_grad]
        elbo = Trace_ELBO(
            num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=nesting
        )
        start = time.perf_counter()
        with pyro.validation_enabled(False):  # the traced model was validated above
            losses, converged = _optimize(
                lambda: elbo.differentiable_loss(model, guide_fn, **data),
                params,
                lr,
                window,
                max_steps,
                name,
                progress,
            )
        seconds = time.perf_counter() - start
        final = Trace_ELBO(
            num_particles=elbo_particles, vectorize_particles=True, max_plate_nesting=nesting
        )
        with torch.no_grad():
            value = -final.loss(model, guide_fn, **data)
    return VariationalResult(name, guide_fn, np.asarray(losses), converged, seconds, value)


def _optimize(
    loss_fn: Callable[[], torch.Tensor],
    params: list[torch.Tensor],
    lr: float,
    window: int,
    max_steps: int,
    name: str,
    progress: bool = False,
) -> tuple[list[float], bool]:
    """Minimise ``loss_fn`` until the plateau rule says converged; return losses, converged."""
    optimizer = ClippedAdam(params, lr=lr, clip_norm=10.0)
    losses: list[float] = []
    previous, reductions = None, 0
    with tqdm(total=max_steps, desc=f"fit {name}", disable=not progress, leave=False) as bar:
        for step in range(1, max_steps + 1):
            loss = loss_fn()
            value = loss.item()
            if not math.isfinite(value):
                raise PyrovaeError(
                    f"variational fit {name}: the loss became {value} at step "
                    f"{step}; try a smaller lr"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(value)
            bar.update(1)
            if step % window:
                continue
            current = np.asarray(losses[-window:])
            if previous is not None and _plateau(previous, current):
                if reductions == LR_REDUCTIONS:
                    return losses, True
                reductions += 1
                for group in optimizer.param_groups:
                    group["lr"] *= LR_FACTOR
            previous = current
    return losses, False


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
    return {
        s: model_trace.nodes[s]["value"].expand(
            num_samples, *model_trace.nodes[s]["value"].shape[1:]
        )
        for s in sites
    }


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
