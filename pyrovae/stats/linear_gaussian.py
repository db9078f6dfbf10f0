"""Closed forms of the linear-Gaussian model (probabilistic PCA).

For z ~ N(0, s_p^2 I_L) and x | z ~ N(W z + b, sigma^2 I_D):

- the marginal is x ~ N(b, C) with C = s_p^2 W W^T + sigma^2 I_D;
- the posterior is z | x ~ N(m, S) with S = (I / s_p^2 + W^T W / sigma^2)^-1
  and m = S W^T (x - b) / sigma^2.

These give exact references for ELBOs, importance-sampled log p(x) and
posterior samples of a VAE with a linear decoder and Gaussian likelihood.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import MultivariateNormal

__all__ = ["GaussianPosterior", "log_marginal", "posterior"]


class GaussianPosterior(NamedTuple):
    """p(z|x) for every row of x: means ``(N, L)`` and one shared covariance ``(L, L)``."""

    mean: torch.Tensor
    covariance: torch.Tensor


def _double(*tensors: torch.Tensor | float) -> list[torch.Tensor]:
    return [torch.as_tensor(t, dtype=torch.float64) for t in tensors]


@torch.no_grad()
def log_marginal(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    noise: float | torch.Tensor,
    prior_scale: float = 1.0,
) -> torch.Tensor:
    """Exact log p(x) per example, in nats (computed in float64).

    Parameters
    ----------
    x : Tensor
        ``(N, D)`` observations.
    weight : Tensor
        ``(D, L)`` loading matrix W.
    bias : Tensor
        ``(D,)`` offset b.
    noise : float or Tensor
        Noise standard deviation sigma.
    prior_scale : float
        Standard deviation s_p of the prior on z.

    Returns
    -------
    Tensor
        ``(N,)`` float64.
    """
    x, w, b, s = _double(x, weight, bias, noise)
    cov = prior_scale**2 * w @ w.T + s**2 * torch.eye(w.shape[0], dtype=w.dtype)
    return MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


@torch.no_grad()
def posterior(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    noise: float | torch.Tensor,
    prior_scale: float = 1.0,
) -> GaussianPosterior:
    """Exact p(z|x) for each row of ``x`` ``(N, D)`` (float64); see the module docstring."""
    x, w, b, s = _double(x, weight, bias, noise)
    precision = torch.eye(w.shape[1], dtype=w.dtype) / prior_scale**2 + w.T @ w / s**2
    cov = torch.linalg.inv(precision)
    mean = (x - b) @ w @ cov / s**2
    return GaussianPosterior(mean, cov)
