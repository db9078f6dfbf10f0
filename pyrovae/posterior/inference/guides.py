"""The comparison's variational families, fitted in Laplace-whitened coordinates.

Each guide is a Pyro ``AutoContinuous`` guide over the packed unconstrained latent
vector ``u`` whose parameters live in the coordinates of a :class:`Laplace`
approximation ``N(m0, L0 L0^T)``: the location is ``u = m0 + L0 a`` and the scales are
multiples of the Laplace ones, so on a Gaussian posterior every parameter starts at
(nearly) its optimum and has unit scale. The families themselves are Pyro's:

========================  ========================================================
``auto_normal``           ``Normal(m0 + L0 a, d * s)`` with ``d = 1 / sqrt(H_ii)``:
                          mean field, as Pyro's ``AutoNormal``/``AutoDiagonalNormal``
``auto_mvn``              ``MultivariateNormal(m0 + L0 a, L0 diag(s) T)``: full rank,
                          as ``AutoMultivariateNormal`` (``L0 diag(s) T`` is lower
                          triangular with a positive diagonal, so any Cholesky factor)
``auto_lowrank_mvn``      ``LowRankMultivariateNormal(m0 + L0 a, d s W, (d s)^2)``:
                          rank 2 plus diagonal, as ``AutoLowRankMultivariateNormal``;
                          it starts at the probabilistic-PCA fit of the Laplace
                          covariance in the coordinates scaled by ``d`` (exact when
                          there are at most 3 coordinates)
``auto_iaf``              two inverse autoregressive flows on a standard normal,
                          then ``u = m0 + L0 (a + x)``, as ``AutoIAFNormal`` with
                          the Laplace affine map composed after it
========================  ========================================================

The start of each family (its member at the Laplace approximation) is the baseline of the
ELBO-gap diagnostic of :mod:`~pyrovae.posterior.inference.variational`: a fit that ends
below it has not reached its family's optimum.

Every guide has the whitened location ``a`` as its parameter ``loc``: the gradient of the
negative ELBO in ``a`` is (for a near-Gaussian posterior) the distance of the fit from
its optimum in posterior sds, the convergence test of
:mod:`~pyrovae.posterior.inference.variational`.

Without a Laplace approximation (:attr:`Laplace.ok` false) ``m0`` is the prior median,
``L0`` the identity and the scales start at ``init_scale`` instead of 1: the fit then
starts as Pyro's own autoguides do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    LowerCholeskyAffine,
    affine_autoregressive,
)
from pyro.infer import autoguide as ag
from pyro.nn import PyroParam
from torch import nn

from pyrovae.posterior.inference.laplace import Laplace, unconstrained_sites

__all__ = ["FAMILIES", "WhitenedGuide"]

FAMILIES = ("auto_normal", "auto_mvn", "auto_lowrank_mvn", "auto_iaf")
RANK = 2
"""Rank of the low-rank family's covariance factor."""
IAF_TRANSFORMS = 2


class WhitenedGuide(ag.AutoContinuous):
    """One family of :data:`FAMILIES` over ``u = m0 + L0 a`` (see the module docstring).

    Parameters
    ----------
    model : callable
        The Pyro model.
    family : str
        A name from :data:`FAMILIES`.
    laplace : Laplace
        The whitening; its ``sites`` must match the model's unconstrained sites.
    init_scale : float
        Starting scale multiplier when ``laplace.ok`` is false (1 when it is true).
    """

    def __init__(self, model: Callable, family: str, laplace: Laplace, init_scale: float) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}")
        self.family = family
        self.laplace = laplace
        self._start_scale = 1.0 if laplace.ok else init_scale
        super().__init__(model, init_loc_fn=ag.initialization.init_to_median)

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        if unconstrained_sites(self) != self.laplace.sites:
            raise ValueError(
                f"the Laplace approximation has sites {self.laplace.sites}, "
                f"the model {unconstrained_sites(self)}"
            )
        like = self._init_loc()
        self.register_buffer("m0", self.laplace.loc.to(like))
        self.register_buffer("L0", self.laplace.scale_tril.to(like))
        d = self.laplace.conditional_sd if self.laplace.ok else torch.ones_like(like)
        self.register_buffer("d", d.to(like))
        dim = self.latent_dim
        self.loc = nn.Parameter(torch.zeros_like(like))
        if self.family != "auto_iaf":
            start = torch.full_like(like, self._start_scale)
            self.scale = PyroParam(start, constraints.softplus_positive)
        if self.family == "auto_mvn":
            self.scale_tril = PyroParam(torch.eye(dim).to(like), constraints.unit_lower_cholesky)
        elif self.family == "auto_lowrank_mvn":
            rank = min(RANK, dim)
            if self.laplace.ok:
                psi, factor = _ppca(self.laplace, rank)
                self.scale = PyroParam(
                    torch.full_like(like, psi**0.5), constraints.softplus_positive
                )
                self.cov_factor = nn.Parameter(factor.to(like) / psi**0.5)
            else:
                factor = torch.randn(dim, rank).to(like) * (0.1 / rank**0.5)
                self.cov_factor = nn.Parameter(factor)
        elif self.family == "auto_iaf":
            self.flows = nn.ModuleList(
                [affine_autoregressive(dim).to(like) for _ in range(IAF_TRANSFORMS)]
            )

    def _mean(self) -> torch.Tensor:
        return self.m0 + self.L0 @ self.loc

    def get_posterior(self, *args: Any, **kwargs: Any) -> dist.TorchDistribution:
        """The family's distribution over the packed unconstrained latent vector."""
        mean = self._mean()
        if self.family == "auto_normal":
            return dist.Normal(mean, self.d * self.scale).to_event(1)
        if self.family == "auto_mvn":
            scale = cast(torch.Tensor, self.scale)  # a PyroParam reads as its tensor
            tril = self.L0 @ (scale[:, None] * self.scale_tril)
            return dist.MultivariateNormal(mean, scale_tril=tril)
        if self.family == "auto_lowrank_mvn":
            scale = self.d * self.scale
            return dist.LowRankMultivariateNormal(
                mean, scale[:, None] * self.cov_factor, scale * scale
            )
        base = dist.Normal(torch.zeros_like(mean), torch.ones_like(mean)).to_event(1)
        shift = AffineTransform(self.loc, 1.0, event_dim=1)
        unwhiten = LowerCholeskyAffine(self.m0, self.L0)
        return dist.TransformedDistribution(base, ComposeTransform([*self.flows, shift, unwhiten]))

    def _loc_scale(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and marginal sds of the Gaussian families (for ``median``/``quantiles``)."""
        posterior = self.get_posterior()
        if self.family == "auto_iaf":
            draws = posterior.sample((4000,))
            return draws.mean(0), draws.std(0)
        return posterior.mean, posterior.variance.sqrt()


def _ppca(laplace: Laplace, rank: int) -> tuple[float, torch.Tensor]:
    """Probabilistic-PCA fit ``W W^T + psi I`` of the Laplace covariance scaled by ``1 / d``.

    Returns
    -------
    psi : float
        The mean of the eigenvalues left out (half the smallest when none is).
    W : (D, rank) tensor
        Leading eigenvectors times ``sqrt(eigenvalue - psi)``.
    """
    d = laplace.conditional_sd
    tril = laplace.scale_tril / d[:, None]
    values, vectors = torch.linalg.eigh(tril @ tril.T)  # ascending
    values, vectors = values.flip(0), vectors.flip(1)
    rest = values[rank:]
    psi = float(rest.mean()) if len(rest) else float(values[-1]) / 2
    top = (values[:rank] - psi).clamp(min=0).sqrt()
    return psi, vectors[:, :rank] * top
