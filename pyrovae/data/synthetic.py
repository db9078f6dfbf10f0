"""The synthetic source: linear-Gaussian data x = W z + b + noise * eps, the truth kept."""

from __future__ import annotations

import torch

from pyrovae.data.source import LinearGaussianTruth, Source
from pyrovae.spec import DataSpec

__all__ = ["load_synthetic"]


def load_synthetic(spec: DataSpec) -> Source:
    """``spec.synthetic.n`` rows of x, no labels, and the parameters that made them."""
    s = spec.synthetic
    g = torch.Generator().manual_seed(spec.seed)
    weight = torch.randn(s.observed_dim, s.latent_dim, generator=g)
    bias = torch.randn(s.observed_dim, generator=g)
    z = torch.randn(s.n, s.latent_dim, generator=g)
    x = z @ weight.T + bias + s.noise * torch.randn(s.n, s.observed_dim, generator=g)
    truth = LinearGaussianTruth(weight=weight, bias=bias, noise=float(s.noise))
    return Source(x.numpy(), None, truth=truth)
