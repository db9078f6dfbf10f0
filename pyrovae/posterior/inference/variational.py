"""Variational fits of a small posterior with Pyro autoguides, run until they converge.

:func:`fit_guide` fits one guide family to ``model(**data)`` with ``Trace_ELBO`` and
Pyro's ``ClippedAdam``. A named family starts at its member nearest the
:func:`~pyrovae.posterior.inference.laplace.laplace` approximation and is fitted in
its whitened coordinates (:mod:`~pyrovae.posterior.inference.guides`), so a badly
scaled or strongly correlated posterior is as easy for the optimizer as a standard
normal. (Started at the prior median instead, Pyro's ``AutoMultivariateNormal`` stopped
on its plateau several posterior sds off on the zoo's ``regression_far``, whose predictors
sit near 100 and -40: ``benchmarks/variational_convergence.py``.)

Two tests decide when a fit is done:

- the *plateau*: the loss is averaged over windows of steps, and when a window no
  longer improves on the previous one by more than its noise (two standard errors of
  the difference of the window means) the learning rate drops by :data:`LR_FACTOR`;
  after :data:`LR_REDUCTIONS` drops the fit has plateaued (the last learning rate's steps
  use :data:`FINAL_PARTICLES_FACTOR` times the particles);
- the *offset*: at a plateau, the gradient of the negative ELBO in the whitened
  location, estimated from :data:`OFFSET_PARTICLES` draws with its Monte Carlo noise
  removed, is the distance of the fitted mean from the family's optimum in posterior
  sds (the Newton step, since the whitened Hessian is the identity). It must be below
  :data:`OFFSET_TOLERANCE`; if not, the fit goes on with a fresh learning-rate cycle,
  at most :data:`ROUNDS` cycles in all.

A fit converged when both hold within ``max_steps`` and its ELBO is not below that of
its family's Laplace member (beyond :data:`GAP_TOLERANCE` and the noise).
:class:`VariationalResult` says how it ended, in how many steps, from which start, its
offset, its gradient norm, and the gap between its ELBO and the ELBO of its family's
Laplace member: a fit below that member did not reach its family's optimum, so the gap
tells a fit that stopped early from a family that cannot represent the posterior.

Draws of a fitted guide come from :mod:`~pyrovae.posterior.inference.draws`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, cast

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.optim.clipped_adam import ClippedAdam
from torch import nn
from tqdm.auto import tqdm

from pyrovae.errors import PyrovaeError, UserError
from pyrovae.posterior.inference import deadline
from pyrovae.posterior.inference.draws import importance_log_ratios, max_plate_nesting
from pyrovae.posterior.inference.guides import FAMILIES, WhitenedGuide
from pyrovae.posterior.inference.laplace import Laplace, laplace

__all__ = [
    "GAP_TOLERANCE",
    "GUIDES",
    "LR_REDUCTIONS",
    "OFFSET_TOLERANCE",
    "Convergence",
    "VariationalResult",
    "convergence",
    "fit_guide",
    "make_guide",
]

GUIDES = FAMILIES
LR_REDUCTIONS = 3
"""Learning-rate drops before a plateau counts as convergence."""
LR_FACTOR = 0.3
"""Learning-rate multiplier at each plateau (0.1 stalls Adam, whose steps scale with
the rate, before the optimum is reached to two decimals)."""
INIT_SCALE = 0.01
"""Initial scale of the Gaussian guides when there is no Laplace approximation to start
from: start near a point, widen as needed."""
OFFSET_TOLERANCE = 0.1
"""Largest accepted distance of a fit's mean from its family's optimum, in posterior sds
(a fit's central 90% interval then covers at least 89.5% of the optimum's mass)."""
OFFSET_PARTICLES = 4000
"""Draws for the offset's gradient: 16 batches of 250, whose spread gives its noise."""
ROUNDS = 3
"""Learning-rate cycles a fit may take to pass the offset test."""
FINAL_PARTICLES_FACTOR = 16
"""At the last learning rate each step draws this many times ``particles``: Adam's
normalised steps settle near where the noisy gradient's median, not its mean, is zero, and
the scale gradients' noise is skewed, so with few particles the fitted sds settle narrower
than the family's optimum (``benchmarks/variational_convergence.py`` compares the fits with
one run at 16 times the particles throughout)."""
GAP_TOLERANCE = 0.05
"""Nats by which a fit's ELBO may fall below its family's Laplace member (beyond three
standard errors) before it counts as not converged."""


class VariationalResult(NamedTuple):
    """A fitted guide and how the fit went."""

    name: str
    guide: Callable[..., Any]
    losses: np.ndarray
    """``(steps,)`` negative ELBO per step."""
    converged: bool
    """Plateaued within the step budget with its offset below :data:`OFFSET_TOLERANCE`
    and its ELBO not below its family's Laplace member (:attr:`below_laplace`); for a
    guide given as a callable, or without a Laplace start: plateaued."""
    seconds: float
    """Wall time of the fit (Laplace approximation and optimization)."""
    elbo: float
    """Final ELBO estimate in nats (many particles): a lower bound on log p(y)."""
    steps: int = 0
    stop: str = ""
    """How it ended: ``"plateau"`` (the plateau and offset tests passed), ``"offset"``
    (plateaued, but still :attr:`offset_sd` from its optimum after every cycle) or
    ``"budget"`` (``max_steps`` reached before a plateau)."""
    start: str = ""
    """``"laplace"``, ``"prior median: <why there is no Laplace approximation>"`` or
    ``"given"`` (a guide passed as a callable starts where it was built)."""
    offset_sd: float = math.nan
    """Distance of the fitted mean from the family's optimum in posterior sds (NaN when
    the guide has no whitened location)."""
    elbo_se: float = math.nan
    """Monte Carlo standard error of :attr:`elbo`."""
    elbo_laplace: float = math.nan
    """ELBO of the family's member at the Laplace approximation, where the fit starts
    (``auto_mvn``, and ``auto_iaf`` for which it stands in: the Laplace Gaussian itself;
    ``auto_normal``: the Laplace mean with the conditional sds 1 / sqrt(H_ii);
    ``auto_lowrank_mvn``: the probabilistic-PCA fit of the Laplace covariance); NaN
    without a Laplace approximation."""
    elbo_laplace_se: float = math.nan
    grad_norm: float = math.nan
    """Norm of the negative ELBO's gradient in all the guide's parameters at the end, its
    Monte Carlo noise removed (NaN when the guide has no whitened location)."""

    @property
    def below_laplace(self) -> bool:
        """The ELBO is below its family's Laplace member by more than
        :data:`GAP_TOLERANCE` nats and three standard errors: the fit ended worse than a
        member of its own family, so it did not reach the family's optimum."""
        if math.isnan(self.elbo_laplace):
            return False
        noise = 3 * math.hypot(self.elbo_se, self.elbo_laplace_se)
        return self.elbo_gap < -max(GAP_TOLERANCE, noise)

    @property
    def elbo_gap(self) -> float:
        """:attr:`elbo` - :attr:`elbo_laplace`: below zero (beyond noise) the fit is worse
        than a member of its own family, so it has not reached its optimum."""
        return self.elbo - self.elbo_laplace

    @property
    def judged(self) -> str:
        """One line: whether the fit converged, how that was judged, its steps, and where
        it started when that was not the Laplace approximation."""
        line = self._verdict_line()
        if self.start.startswith("prior median: "):
            reason = self.start.removeprefix("prior median: ")
            line += f"; started at the prior median, without a Laplace approximation: {reason}"
        return line

    def _verdict_line(self) -> str:
        steps = f"{self.steps:,} steps"
        offset = "" if math.isnan(self.offset_sd) else f", offset {self.offset_sd:.2g} sd"
        if self.offset_sd == 0:
            offset = ", offset 0 sd (within its noise)"
        if self.stop == "budget":
            return f"not converged: step budget ({steps}) reached before a plateau{offset}"
        if self.stop == "offset":
            return (
                f"not converged: plateaued but still {self.offset_sd:.2g} sd from its "
                f"optimum (> {OFFSET_TOLERANCE}) after {steps}"
            )
        if self.below_laplace:
            return (
                f"not converged: its ELBO is {-self.elbo_gap:.2g} nats below its family's "
                f"Laplace member after {steps}{offset}"
            )
        how = "plateau and offset" if offset else "plateau; no offset test"
        return f"converged ({how}) in {steps}{offset}"


class Convergence(NamedTuple):
    """How a method's variational fits ended, for the comparison's tables."""

    converged: bool
    """Whether the fit whose draws are reported converged (see :class:`VariationalResult`)."""
    judged: str
    """One line: whether it converged, how that was judged, and its steps."""
    steps: int
    offset_sd: float
    """Distance of its mean from the family's optimum in posterior sds (NaN: not tested)."""
    elbo_gap: float
    """Its ELBO minus that of its family's Laplace member, nats (NaN: no Laplace start)."""
    grad_norm: float
    """Norm of the negative ELBO's gradient in all the guide's parameters at the end."""
    fits_converged: int
    """How many of the method's fits (restarts from other seeds) converged."""
    fits: int

    def attrs(self) -> dict[str, Any]:
        """The same as NetCDF-safe InferenceData attrs (``fit_converged`` is 1 or 0)."""
        return {
            "fit_converged": int(self.converged),
            "fit_convergence": self.judged,
            "fit_steps": self.steps,
            "fit_offset_sd": self.offset_sd,
            "fit_elbo_gap_laplace": self.elbo_gap,
            "fit_grad_norm": self.grad_norm,
            "fits_converged": f"{self.fits_converged}/{self.fits}",
        }


def convergence(fits: list[VariationalResult]) -> Convergence:
    """:class:`Convergence` of ``fits``, the first being the one whose draws are reported."""
    first = fits[0]
    return Convergence(
        first.converged,
        first.judged,
        first.steps,
        first.offset_sd,
        first.elbo_gap,
        first.grad_norm,
        sum(fit.converged for fit in fits),
        len(fits),
    )


def make_guide(name: str, model: Callable, start: Laplace) -> WhitenedGuide:
    """A guide family by name, whitened by ``start``: ``auto_normal`` (mean field),
    ``auto_mvn`` (full covariance), ``auto_lowrank_mvn`` (rank-2 plus diagonal),
    ``auto_iaf`` (a normalizing flow: two inverse autoregressive transforms).

    Raises
    ------
    UserError
        An unknown name.
    """
    _check_family(name)
    return WhitenedGuide(model, name, start, INIT_SCALE)


def _check_family(name: str) -> None:
    if name not in GUIDES:
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
    """Fit ``guide`` to the posterior of ``model(**data)`` until it converges.

    Parameters
    ----------
    guide : str or callable
        A name from :data:`GUIDES` (whitened by a Laplace approximation, see the module
        docstring), or a Pyro guide (e.g. a PyroModule) whose parameters are created on
        its first call; it is fitted as given and judged by the plateau alone.
    particles : int
        Vectorized samples per step of the ELBO gradient.
    window : int
        Steps per convergence window.
    max_steps : int
        The step budget over all learning-rate cycles.
    elbo_particles : int
        Draws of the final ELBO estimates.
    progress : bool
        Show a progress bar (steps, up to ``max_steps``; most fits stop far earlier).

    Raises
    ------
    PyrovaeError
        When the loss becomes NaN or infinite.
    """
    data = dict(data or {})
    nesting = max_plate_nesting(model, data)
    family = guide if isinstance(guide, str) else None
    name = family if family is not None else getattr(guide, "__name__", type(guide).__name__)
    if family is not None:
        _check_family(family)  # before the Laplace approximation's work
    clock = time.perf_counter()
    approximation = laplace(model, data, seed=seed) if family is not None else None
    pyro.set_rng_seed(seed)
    with pyro.settings.context(module_local_params=True):
        if family is not None and approximation is not None:
            guide_fn: nn.Module = make_guide(family, model, approximation)
        else:
            guide_fn = cast(nn.Module, guide)  # a Pyro guide with parameters, e.g. a PyroModule
        guide_fn(**data)  # create parameters
        params: list[torch.Tensor] = [p for p in guide_fn.parameters() if p.requires_grad]
        elbo, final_elbo = (
            Trace_ELBO(num_particles=n, vectorize_particles=n > 1, max_plate_nesting=nesting)
            for n in (particles, particles * FINAL_PARTICLES_FACTOR)
        )

        def loss_fn(final: bool) -> torch.Tensor:
            return (final_elbo if final else elbo).differentiable_loss(model, guide_fn, **data)

        offset_fn: Callable[[], _Gradient] | None = None
        if isinstance(guide_fn, WhitenedGuide) and approximation is not None and approximation.ok:
            offset_fn = partial(_offset, model, guide_fn, params, data, nesting)
        with pyro.validation_enabled(False):  # the traced model was validated above
            losses, stop, gradient = _optimize(
                loss_fn, params, lr, window, max_steps, name, progress, offset_fn
            )
        seconds = time.perf_counter() - clock
    value, se = _elbo(model, guide_fn, data, elbo_particles, seed)
    if family is not None and approximation is not None:
        start = "laplace" if approximation.ok else f"prior median: {approximation.reason}"
        at_laplace, at_laplace_se = _elbo_at_laplace(family, model, data, approximation, seed)
    else:
        start, at_laplace, at_laplace_se = "given", math.nan, math.nan
    result = VariationalResult(
        name,
        guide_fn,
        np.asarray(losses),
        stop == "plateau",
        seconds,
        value,
        steps=len(losses),
        stop=stop,
        start=start,
        offset_sd=gradient.offset_sd,
        elbo_se=se,
        elbo_laplace=at_laplace,
        elbo_laplace_se=at_laplace_se,
        grad_norm=gradient.norm,
    )
    return result._replace(converged=result.converged and not result.below_laplace)


def _elbo(
    model: Callable, guide: Callable, data: dict[str, Any], particles: int, seed: int
) -> tuple[float, float]:
    """ELBO estimate from ``particles`` guide draws and its Monte Carlo standard error."""
    with pyro.settings.context(module_local_params=True):
        ratios = importance_log_ratios(model, guide, data, particles, seed=seed)
    se = ratios.std(ddof=1) / math.sqrt(len(ratios)) if len(ratios) > 1 else math.nan
    return float(ratios.mean()), float(se)


def _elbo_at_laplace(
    family: str, model: Callable, data: dict[str, Any], start: Laplace, seed: int
) -> tuple[float, float]:
    """ELBO of ``family``'s member at the Laplace approximation: a fresh whitened guide,
    whose initial state that member is (the full-rank one stands in for the flow)."""
    if not start.ok:
        return math.nan, math.nan
    member = "auto_mvn" if family == "auto_iaf" else family
    pyro.set_rng_seed(seed)
    with pyro.settings.context(module_local_params=True):
        fresh = make_guide(member, model, start)
        fresh(**data)
    return _elbo(model, fresh, data, OFFSET_PARTICLES // 2, seed + 1)


class _Gradient(NamedTuple):
    """The negative ELBO's gradient at the end of a fit, Monte Carlo noise removed."""

    offset_sd: float = math.nan
    """Norm in the whitened location: the distance from the optimum in posterior sds."""
    norm: float = math.nan
    """Norm in all the guide's parameters."""


def _denoised_norm(grads: torch.Tensor) -> float:
    """``|E g|`` from ``(B, P)`` batch means ``g``: ``|mean|^2`` less its variance."""
    squared = grads.mean(0).square().sum() - grads.var(0).sum() / len(grads)
    return float(squared.clamp(min=0).sqrt())


def _offset(
    model: Callable,
    guide: WhitenedGuide,
    params: list[torch.Tensor],
    data: dict[str, Any],
    nesting: int,
) -> _Gradient:
    """Distance of ``guide``'s mean from its optimum in posterior sds (the norm of the
    negative ELBO's gradient in the whitened location) and the gradient's norm in all
    ``params``, both less their Monte Carlo noise (16 batches of draws)."""
    batches = 16
    elbo = Trace_ELBO(
        num_particles=OFFSET_PARTICLES // batches,
        vectorize_particles=True,
        max_plate_nesting=nesting,
    )
    where = next(i for i, p in enumerate(params) if p is guide.loc)
    location, everything = [], []
    for _ in range(batches):
        loss = elbo.differentiable_loss(model, guide, **data)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        location.append(grads[where].detach().double())
        flat = [g.detach().double().reshape(-1) for g in grads if g is not None]
        everything.append(torch.cat(flat))
    return _Gradient(_denoised_norm(torch.stack(location)), _denoised_norm(torch.stack(everything)))


def _optimize(
    loss_fn: Callable[[bool], torch.Tensor],
    params: list[torch.Tensor],
    lr: float,
    window: int,
    max_steps: int,
    name: str,
    progress: bool = False,
    offset_fn: Callable[[], _Gradient] | None = None,
) -> tuple[list[float], str, _Gradient]:
    """Minimise ``loss_fn`` until the plateau (and, given ``offset_fn``, the offset) test
    passes; return the losses, how it stopped (see :attr:`VariationalResult.stop`) and
    the last gradient (NaNs without ``offset_fn``). ``loss_fn(final)`` is called with
    ``final`` true at the last learning rate (where it should use more particles)."""
    optimizer = ClippedAdam(params, lr=lr, clip_norm=10.0)
    losses: list[float] = []
    previous, reductions, rounds = None, 0, 1
    with tqdm(total=max_steps, desc=f"fit {name}", disable=not progress, leave=False) as bar:
        for step in range(1, max_steps + 1):
            deadline.check()
            loss = loss_fn(reductions == LR_REDUCTIONS)
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
                if reductions < LR_REDUCTIONS:
                    reductions += 1
                    _scale_lr(optimizer, LR_FACTOR)
                else:
                    gradient = _Gradient() if offset_fn is None else offset_fn()
                    if not gradient.offset_sd > OFFSET_TOLERANCE:  # NaN: no offset test
                        return losses, "plateau", gradient
                    if rounds == ROUNDS:
                        return losses, "offset", gradient
                    rounds, reductions = rounds + 1, 1
                    _scale_lr(optimizer, LR_FACTOR ** -(LR_REDUCTIONS - 1))
                    bar.set_postfix_str(f"offset {gradient.offset_sd:.2g} sd: another cycle")
            previous = current
    return losses, "budget", _Gradient() if offset_fn is None else offset_fn()


def _scale_lr(optimizer: ClippedAdam, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] *= factor
