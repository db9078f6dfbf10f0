"""Training objectives for a model/guide pair with local latents.

Every objective is a callable ``loss(model, guide, x, n_total, beta) ->
scalar tensor`` (a negative bound, scaled to the full data set) so that the
training loop does not care which one it runs:

- ``elbo``: Pyro's :class:`~pyro.infer.Trace_ELBO`, the reparameterised
  single- or multi-sample ELBO.
- ``analytic_kl``: :class:`~pyro.infer.TraceMeanField_ELBO`, the same bound
  with KL(q || p) computed in closed form where Pyro knows it.
- ``iwae``: the k-sample importance-weighted bound of Burda et al. (2016),
  ``E[log (1/k) sum_i p(x, z_i) / q(z_i|x)]``. Pyro's ``RenyiELBO`` applies
  the log-mean-exp to the sum over the whole plate (pyro issue #3104), which
  is not a bound per example; here the k samples get their own plate dimension
  and the log-mean-exp is taken per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

__all__ = [
    "Objective",
    "estimate_bound",
    "estimate_elbo",
    "iwae_loss",
    "log_weights",
    "make_objective",
]

Objective = Callable[..., torch.Tensor]


def _in_particle_plate(fn: Callable, k: int) -> Callable:
    def wrapped(*args, **kwargs):
        with pyro.plate("particles", k, dim=-2):
            return fn(*args, **kwargs)

    return wrapped


def log_weights(model: Callable, guide: Callable, x: torch.Tensor, k: int) -> torch.Tensor:
    """Log importance weights log p(x, z_i) - log q(z_i | x) per example.

    The guide draws ``k`` samples per example in a ``"particles"`` plate at
    dim -2 (the model's data plate must use dim -1); the model is replayed on
    them. Sites are summed unscaled, so the weights do not depend on
    minibatch scaling or beta.

    Parameters
    ----------
    model, guide : callable
        A Pyro pair taking ``x`` ``(B, D)``.
    x : Tensor
        ``(B, D)`` data.
    k : int
        Samples per example.

    Returns
    -------
    Tensor
        ``(k, B)``; differentiable through reparameterised samples.
    """
    guide_trace = poutine.trace(_in_particle_plate(guide, k)).get_trace(x)
    replayed = poutine.replay(_in_particle_plate(model, k), trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(x)
    total = x.new_zeros(k, x.shape[0])
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        trace.compute_log_prob()
        for site in trace.nodes.values():
            if site["type"] == "sample":
                total = total + sign * site["log_prob"]
    return total


@torch.no_grad()
def estimate_bound(
    model: Callable, guide: Callable, x: torch.Tensor, k: int, batch_size: int = 1000
) -> torch.Tensor:
    """The k-sample importance-weighted bound of each example (k = 1: the ELBO), in nats.

    Parameters
    ----------
    x : Tensor
        ``(N, D)``; processed in chunks of about ``batch_size / k`` rows.

    Returns
    -------
    Tensor
        ``(N,)`` single-draw estimates of the bound (each <= log p(x_n) in expectation).
    """
    rows = max(1, batch_size // k)
    chunks = [
        torch.logsumexp(log_weights(model, guide, xb, k), 0) - math.log(k) for xb in x.split(rows)
    ]
    return torch.cat(chunks) if chunks else x.new_zeros(0)


def estimate_elbo(
    model: Callable, guide: Callable, x: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """Single-sample ELBO (beta = 1) of each example, in nats: ``(N, D) -> (N,)``."""
    return estimate_bound(model, guide, x, 1, batch_size)


def iwae_loss(
    model: Callable, guide: Callable, x: torch.Tensor, n_total: int, k: int
) -> torch.Tensor:
    """Negative k-sample importance-weighted bound, summed and scaled to ``n_total``.

    Returns
    -------
    Tensor
        Scalar: ``-(n_total / B) * sum_b [logsumexp_i log w_ib - log k]``.
    """
    log_w = log_weights(model, guide, x, k)
    bound = torch.logsumexp(log_w, dim=0) - math.log(k)
    return -bound.sum() * (n_total / x.shape[0])


def make_objective(name: str, particles: int) -> Objective:
    """The loss function for ``train.objective`` and ``train.particles``.

    Returns
    -------
    callable
        ``loss(model, guide, x, n_total, beta)`` returning a scalar tensor.
    """
    if name == "iwae":

        def iwae(model, guide, x, n_total, beta):
            return iwae_loss(model, guide, x, n_total, particles)

        return iwae
    elbo_class = {"elbo": Trace_ELBO, "analytic_kl": TraceMeanField_ELBO}[name]
    elbo = elbo_class(
        num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1
    )

    def loss(model, guide, x, n_total, beta):
        return elbo.differentiable_loss(model, guide, x, n_total, beta)

    return loss
