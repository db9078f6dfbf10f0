"""Observation models p(x|z) by name.

A likelihood turns the decoder's output into a Pyro distribution over one
example. The decoder emits ``outputs_per_pixel * D`` numbers per example:
logits or locations, plus raw scales when the scale is predicted by the
decoder (the Gaussian of Kingma & Welling with mu_theta(z) and
Sigma_theta(z) = diag sigma_theta(z)^2). The discretized logistic of 8-bit pixels
(:mod:`pyrovae.models.discretized`) always takes its scale from the decoder: a location
and a raw scale per pixel.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from pyrovae.models.discretized import MIN_LOGISTIC_SCALE, DiscretizedLogistic
from pyrovae.spec import LikelihoodSpec

__all__ = ["MIN_SCALE", "Likelihood", "inverse_positive"]

MIN_SCALE = 1e-3
"""Floor on predicted or learned scales, so the density cannot collapse onto a pixel."""


def _positive(raw: torch.Tensor) -> torch.Tensor:
    return softplus(raw) + MIN_SCALE


def inverse_positive(value: float) -> float:
    y = value - MIN_SCALE
    return y + math.log(-math.expm1(-y))


class Likelihood(nn.Module):
    """p(x|z) given the decoder output.

    Parameters
    ----------
    spec : LikelihoodSpec
        Name and, for gaussian/laplace, the scale: a number (fixed),
        ``"learned"`` (one shared parameter) or ``"decoder"`` (per pixel).
    """

    fixed_scale: torch.Tensor  # a buffer, registered for a fixed scale

    def __init__(self, spec: LikelihoodSpec) -> None:
        super().__init__()
        self.name = spec.name
        self.has_scale = spec.name in ("gaussian", "laplace")
        self.scale_mode = spec.scale if self.has_scale else None
        two = self.scale_mode == "decoder" or spec.name == "discretized_logistic"
        self.outputs_per_pixel = 2 if two else 1
        if self.scale_mode == "learned":
            self.raw_scale = nn.Parameter(torch.tensor(inverse_positive(1.0)))
        elif isinstance(self.scale_mode, float):
            self.register_buffer("fixed_scale", torch.tensor(self.scale_mode))

    def scale(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        """The observation scale: a scalar, or ``(..., D)`` when decoder-predicted."""
        if self.scale_mode == "learned":
            return _positive(self.raw_scale)
        if self.scale_mode == "decoder":
            assert raw is not None
            return _positive(raw)
        return self.fixed_scale

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.outputs_per_pixel == 2:
            loc, raw = out.chunk(2, dim=-1)
            return loc, raw
        return out, None

    def forward(self, out: torch.Tensor) -> dist.TorchDistribution:
        """The distribution of x, batch shape ``out.shape[:-1]``, event shape ``(D,)``."""
        if self.name == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        if self.name == "continuous_bernoulli":
            return dist.ContinuousBernoulli(logits=out).to_event(1)
        if self.name == "discretized_logistic":
            return self._discretized(out).to_event(1)
        loc, raw = self._split(out)
        scale = self.scale(raw).expand_as(loc)
        family = dist.Normal if self.name == "gaussian" else dist.Laplace
        return family(loc, scale).to_event(1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """E[x|z], shape ``out.shape[:-1] + (D,)``; for the discretized logistic the exact
        mean over the 256 values (16 times the output's memory while it runs)."""
        if self.name == "bernoulli":
            return torch.sigmoid(out)
        if self.name == "continuous_bernoulli":
            return dist.ContinuousBernoulli(logits=out).mean
        if self.name == "discretized_logistic":
            return self._discretized(out).mean
        return self._split(out)[0]

    def _discretized(self, out: torch.Tensor) -> DiscretizedLogistic:
        """The discretized logistic of each pixel: ``out`` ``(..., 2D)`` holds the
        locations, then the raw scales ``s = softplus(raw) + MIN_LOGISTIC_SCALE``."""
        loc, raw = out.chunk(2, dim=-1)
        return DiscretizedLogistic(loc, softplus(raw) + MIN_LOGISTIC_SCALE)
