"""NUTS and HMC started from the Laplace approximation: first mass matrix and first points.

Pyro's NUTS starts warm-up with the identity as its inverse mass matrix. On a posterior
whose scales differ 2,000-fold and whose coordinates are correlated -0.99999 (a
regression on an uncentred predictor near 2000), every warm-up transition then runs
to the maximum tree depth (1,023 leapfrog steps) with step sizes near 1e-5, and the
first adaptation windows see draws that have barely moved: warm-up alone takes many
minutes. The Laplace approximation (:func:`~pyrovae.posterior.inference.laplace.laplace`,
milliseconds on a small model) already knows those scales and correlations. So when it
exists:

* the inverse mass matrix starts as the Laplace covariance (its diagonal for a
  diagonal mass matrix) and is then adapted in warm-up as usual: Pyro's windowed
  Welford estimates replace it at the end of each window. Their regularisation is
  Stan's, ``n/(n+5) C + 5/(n+5) 1e-3 I``, which assumes parameters of unit scale: the
  added 1.7e-4 on a diagonal where the posterior variance is 1.3e-4 and the
  correlation -0.99999 wipes out the narrow direction, and NUTS is back at its
  maximum tree depth. Here each window's estimate is pooled with pseudo-draws of the
  Laplace covariance instead (:class:`ScaledWelford`);
* chain ``c`` starts at a draw of the Laplace Gaussian seeded by the chain's seed,
  so chains start apart at the posterior's own scale (R-hat can still see a chain
  that is stuck) instead of uniformly in (-2, 2) in unconstrained space.

Without a Laplace approximation (no mode, a Hessian that is not positive definite)
the sampler starts as Pyro's does, and :attr:`WarmStart.reason` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import init_to_value
from pyro.ops.welford import WelfordCovariance
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution, biject_to

from pyrovae.posterior.inference.laplace import laplace

if TYPE_CHECKING:
    from pyro.infer.mcmc import HMC

    _Kernel = HMC  # what LaplaceMass is mixed into
else:
    _Kernel = object

__all__ = ["LaplaceMass", "ScaledWelford", "WarmStart", "latent_shapes", "warm_start"]


class WarmStart(NamedTuple):
    """The Laplace approximation as a sampler's starting point.

    Attributes
    ----------
    ok : bool
        Whether there is one; the fields below are empty when not.
    reason : str
        Why there is none (empty when ``ok``).
    covariance : dict of str to torch.Tensor
        ``{"dense": (D, D), "diag": (D,)}``, float64, over the model's unconstrained
        values with the sites in sorted name order (the order Pyro's mass matrix uses).
    loc, scale_tril : torch.Tensor
        ``(D,)`` and ``(D, D)`` float64 in the same order: the mode and the Cholesky
        factor of the covariance.
    shapes : dict of str to tuple
        Site -> ``(unconstrained shape, support)`` in sorted name order.
    """

    ok: bool
    reason: str
    covariance: dict[str, torch.Tensor]
    loc: torch.Tensor
    scale_tril: torch.Tensor
    shapes: dict[str, tuple[torch.Size, Any]]

    @classmethod
    def none(cls, reason: str) -> WarmStart:
        """No warm start, and why."""
        empty = torch.zeros(0, dtype=torch.float64)
        return cls(False, reason, {}, empty, empty.reshape(0, 0), {})

    def init_strategy(self, seed: int) -> Callable[..., Any] | None:
        """Pyro ``init_strategy`` starting every site at one draw of the Laplace Gaussian
        (``torch.Generator`` seeded by ``seed``); ``None`` without one (Pyro's default)."""
        if not self.ok:
            return None
        generator = torch.Generator().manual_seed(seed)
        eps = torch.randn(len(self.loc), generator=generator, dtype=torch.float64)
        u = self.loc + self.scale_tril @ eps
        values, start = {}, 0
        for name, (shape, support) in self.shapes.items():
            size = shape.numel()
            piece = u[start : start + size].reshape(shape).to(torch.get_default_dtype())
            values[name] = biject_to(support)(piece).detach()
            start += size
        return init_to_value(values=values)


def latent_shapes(model: Callable[..., Any], data: dict[str, Any]) -> dict[str, tuple]:
    """Site -> ``(unconstrained shape, support)`` of the latent sites of one run of the
    model (deterministic, subsample and auxiliary sites left out), sorted by name: what
    NUTS/HMC move, each mapped to the real space by ``biject_to`` of its support."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(**data)
    shapes = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        infer = site["infer"]
        assert infer is not None
        if infer.get("_deterministic", False) or infer.get("is_auxiliary"):
            continue
        if site_is_subsample(site):
            continue
        support = cast(Distribution, site["fn"]).support
        shapes[name] = (biject_to(support).inv(site["value"]).shape, support)
    return dict(sorted(shapes.items()))


def warm_start(model: Callable[..., Any], data: dict[str, Any], *, seed: int = 0) -> WarmStart:
    """The Laplace approximation of ``model(**data)``'s posterior, reordered for Pyro's
    mass matrix (sites sorted by name); ``ok`` false with ``reason`` when there is none.

    It is computed in the dtype of the data's first floating tensor (the dtype the
    sampler runs in), so a model that holds float32 tensors of its own (a trained
    decoder) is not asked to run in float64."""
    dtype = next(
        (v.dtype for v in data.values() if isinstance(v, torch.Tensor) and v.is_floating_point()),
        torch.get_default_dtype(),
    )
    try:
        approx = laplace(model, data, seed=seed, dtype=dtype)
    except (ValueError, RuntimeError) as err:  # the model cannot be set up in this dtype
        reason = f"no Laplace approximation ({type(err).__name__}: {' '.join(str(err).split())})"
        return WarmStart.none(reason[:200])
    if not approx.ok:
        return WarmStart.none(approx.reason)
    shapes = latent_shapes(model, data)
    offsets, start = {}, 0
    for name, size in approx.sites:
        offsets[name] = torch.arange(start, start + size)
        start += size
    if set(offsets) != set(shapes):
        return WarmStart.none("the Laplace approximation's sites differ from the sampler's")
    order = torch.cat([offsets[name] for name in shapes])
    scale_tril = approx.scale_tril.double()[order]  # rows permuted: L L^T on both sides
    covariance = scale_tril @ scale_tril.T
    covariance = (covariance + covariance.T) / 2
    return WarmStart(
        True,
        "",
        {"dense": covariance, "diag": covariance.diagonal().clone()},
        approx.loc.double()[order],
        torch.linalg.cholesky(covariance),
        shapes,
    )


class ScaledWelford(WelfordCovariance):
    """Pyro's Welford (co)variance regularised towards a target covariance.

    At the end of a window of ``n`` draws the estimate is ``(n S + k T) / (n + k)``: the
    window's sample (co)variance ``S`` pooled with ``k`` pseudo-draws of the target
    ``T`` (the Laplace covariance), ``k = 5`` for a diagonal and ``k = d + 5`` for a
    dense ``(d, d)`` estimate. Stan's rule, ``n/(n+5) S + 5/(n+5) 1e-3 I``, assumes unit
    scales and, for a dense matrix, ``n`` well above ``d``: Pyro's first windows hold
    25 to 75 draws, so at d = 50 the sample covariance is singular and the ``1e-3``
    floor is all there is in half the directions, which sends NUTS to its maximum tree
    depth. Pooling with the target keeps every direction at its Laplace scale until
    the draws say otherwise, and gives Stan's weights when ``d`` is small.
    """

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__(diagonal=target.dim() == 1)
        self.target = target
        self.pseudo_draws = 5 if self.diagonal else target.shape[0] + 5

    def get_covariance(self, regularize: bool = True) -> torch.Tensor:
        cov = super().get_covariance(regularize=False)
        if not regularize:
            return cov
        n, k = self.n_samples, self.pseudo_draws
        return (n * cov + k * self.target.to(cov.dtype)) / (n + k)


class LaplaceMass(_Kernel):
    """Mixin for Pyro's ``HMC``/``NUTS``: after Pyro sets up its identity mass matrix,
    replace it by :attr:`initial_inverse_mass` (when set), regularise its adaptation
    towards it (:class:`ScaledWelford`) and find the step size anew.

    ``initial_inverse_mass``: ``{"dense": (D, D), "diag": (D,)}`` from
    :attr:`WarmStart.covariance`, sites in sorted name order (Pyro's ``full_mass=True``
    block is ``tuple(sorted(initial_params))``, its diagonal block the same).
    """

    initial_inverse_mass: dict[str, torch.Tensor] | None = None

    def _initialize_adapter(self) -> None:
        super()._initialize_adapter()
        if not self.initial_inverse_mass:
            return
        adapter = self.mass_matrix_adapter
        energy = self._potential_energy_last
        assert energy is not None  # HMC.setup computes it at the initial point first
        options = {"dtype": energy.dtype}
        new = {}
        for sites, current in adapter.inverse_mass_matrix.items():
            if tuple(sites) != tuple(sorted(self.initial_params)):
                return  # a block layout this mixin was not written for: keep Pyro's start
            kind = "diag" if current.dim() == 1 else "dense"
            new[sites] = self.initial_inverse_mass[kind].to(**options)
        adapter.inverse_mass_matrix = new
        for sites, target in new.items():
            if sites in adapter._adapt_scheme:
                adapter._adapt_scheme[sites] = ScaledWelford(target)
        if self._adapter.adapt_step_size:
            self._adapter.reset_step_size_adaptation(self._initial_params)
