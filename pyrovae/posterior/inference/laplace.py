"""The MAP point and Laplace approximation of a small posterior, in unconstrained space.

:func:`laplace` finds the mode of the unconstrained log density
log p(theta(u), y) + log |d theta / d u| with L-BFGS (strong-Wolfe line search) in
float64, and takes the inverse Hessian there as the covariance. The result whitens
the variational fits of :mod:`pyrovae.posterior.inference.guides`: in the coordinates
``a = L0^-1 (u - m0)`` a Gaussian posterior is a standard normal, so every direction
has the same scale and the optimizer's step means the same fraction of a posterior sd
in each (badly conditioned posteriors stop stalling the fit).

The mode is accepted only when L-BFGS reached it (the Newton decrement
sqrt(g^T H^-1 g), the distance to the mode in posterior sds, below
:data:`NEWTON_TOLERANCE`) and the Hessian is positive definite; otherwise
:class:`Laplace` says why, and the fits start from the prior median instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import autoguide as ag

from pyrovae.posterior.targets.precision import cast_data, default_dtype

__all__ = ["NEWTON_TOLERANCE", "Laplace", "laplace", "unconstrained_sites"]

NEWTON_TOLERANCE = 1e-3
"""Largest accepted distance of the L-BFGS point from the mode, in posterior sds."""
MAX_ITERATIONS = 1000
"""L-BFGS iterations (function evaluations are at most 1.25 times this)."""


class Laplace(NamedTuple):
    """The mode and Laplace covariance of a posterior in unconstrained space.

    When ``ok`` is false, ``loc`` is the prior-median start and ``scale_tril`` the
    identity, and ``reason`` says what failed.
    """

    ok: bool
    loc: torch.Tensor
    """``(D,)`` the unconstrained mode (float64)."""
    scale_tril: torch.Tensor
    """``(D, D)`` Cholesky factor of the inverse Hessian of -log density at the mode."""
    sites: tuple[tuple[str, int], ...]
    """(site, unconstrained size) in packing order, as Pyro's ``AutoContinuous`` packs."""
    log_density: float
    """Unconstrained log density at ``loc`` (nats, up to the model's normaliser)."""
    newton_decrement: float
    """sqrt(g^T H^-1 g) at ``loc``: its distance from the mode in posterior sds."""
    iterations: int
    reason: str = ""

    @property
    def conditional_sd(self) -> torch.Tensor:
        """``(D,)`` 1 / sqrt(H_ii): the sd of each coordinate with the others fixed, the
        best mean-field Gaussian's sds when the posterior is Gaussian."""
        precision = torch.cholesky_inverse(self.scale_tril)
        return precision.diagonal().rsqrt()


class _PointGuide(ag.AutoContinuous):
    """An ``AutoContinuous`` guide that puts all its mass on :attr:`point`: its trace
    gives -log|J| per site, so guide minus model log-probability is -log density."""

    point: torch.Tensor | None = None

    def get_posterior(self, *args: Any, **kwargs: Any) -> dist.Delta:
        return dist.Delta(self.point).to_event(1)


def unconstrained_sites(guide: ag.AutoContinuous) -> tuple[tuple[str, int], ...]:
    """(site, unconstrained size) of a set-up ``AutoContinuous`` guide, in packing order."""
    return tuple((name, math.prod(shape)) for name, shape in guide._unconstrained_shapes.items())


def _negative_log_density(
    model: Callable, guide: _PointGuide, data: dict[str, Any]
) -> Callable[[torch.Tensor], torch.Tensor]:
    def value(u: torch.Tensor) -> torch.Tensor:
        guide.point = u
        guide_trace = poutine.trace(guide).get_trace(**data)
        replayed = poutine.replay(model, trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(**data)
        difference = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
        assert isinstance(difference, torch.Tensor)
        return difference

    return value


def _minimize(f: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor) -> tuple:
    u = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [u],
        lr=1.0,
        max_iter=MAX_ITERATIONS,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = f(u)
        loss.backward()
        return loss

    optimizer.step(closure)
    iterations = optimizer.state[optimizer._params[0]].get("n_iter", 0)
    return u.detach(), int(iterations)


def laplace(
    model: Callable, data: dict[str, Any], *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> Laplace:
    """The unconstrained mode and Laplace covariance of ``model(**data)``'s posterior.

    Runs in ``dtype`` (data and the model's constants; float64 unless the model holds
    tensors of its own in another dtype, such as a trained decoder's weights),
    starting from the prior median (Pyro's ``init_to_median``, seeded).

    Returns
    -------
    Laplace
        ``ok`` false, with ``reason``, when the model fails in ``dtype``, L-BFGS meets a
        non-finite density or does not reach the mode, or the Hessian there is not
        positive definite (e.g. a density that grows without bound, as the centered
        eight schools' does as tau goes to 0).
    """
    pyro.set_rng_seed(seed)
    with (
        default_dtype(dtype),
        pyro.settings.context(module_local_params=True),
        poutine.block(),
    ):
        data64 = cast_data(data, dtype)
        guide = _PointGuide(model, init_loc_fn=ag.initialization.init_to_median)
        with torch.no_grad():
            guide._setup_prototype(**data64)
        start = guide._init_loc().to(dtype)
        sites = unconstrained_sites(guide)
        f = _negative_log_density(model, guide, data64)
        fallback = Laplace(
            False, start, torch.eye(len(start), dtype=start.dtype), sites, math.nan, math.nan, 0
        )
        try:
            u, iterations = _minimize(f, start)
            value = f(u.requires_grad_(True))
            (gradient,) = torch.autograd.grad(value, u)
            hessian = torch.autograd.functional.hessian(f, u.detach())
        except (ValueError, RuntimeError) as err:  # the model's own errors in this dtype
            return fallback._replace(reason=f"the model fails in {dtype} ({_line(err)})")
    fallback = fallback._replace(iterations=iterations)
    if not (torch.isfinite(value) and torch.isfinite(hessian).all()):
        return fallback._replace(reason="the log density is not finite at the L-BFGS point")
    hessian = (hessian + hessian.T) / 2
    chol, info = torch.linalg.cholesky_ex(hessian)
    if info:
        return fallback._replace(reason="the Hessian at the L-BFGS point is not positive definite")
    decrement = float(torch.linalg.solve_triangular(chol, gradient[:, None], upper=False).norm())
    if not decrement < NEWTON_TOLERANCE:
        return fallback._replace(
            reason=f"L-BFGS stopped {decrement:.2g} posterior sd from the mode "
            f"after {iterations} iterations (no mode, or a very flat one)",
            newton_decrement=decrement,
        )
    scale_tril = torch.linalg.cholesky(torch.cholesky_inverse(chol))
    return Laplace(
        True, u.detach(), scale_tril, sites, -float(value.detach()), decrement, iterations
    )


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:200]
