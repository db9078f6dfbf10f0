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
- ``iwae_dreg``: the same bound, differentiated with the doubly
  reparameterised gradient estimator of Tucker et al. (2019). The decoder's
  gradient is the IWAE one; the encoder's keeps only the path through z,
  ``sum_i w~_i^2 d log w_i / d z_i  d z_i / d phi`` (w~ the normalised
  weights, log q scored with the encoder's outputs held fixed). It is
  unbiased for the same gradient, and its variance does not grow with k the
  way the IWAE encoder gradient's signal-to-noise ratio shrinks (Rainforth et
  al. 2018); with q equal to the posterior it is exactly zero. For a guide
  with one latent site (the VAE's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.poutine.util import site_is_subsample

from pyrovae.spec import IWAE_OBJECTIVES
from pyrovae.train.traced import elbo_tensor_loss, traced_objective

__all__ = [
    "Objective",
    "estimate_bound",
    "estimate_elbo",
    "iwae_dreg_loss",
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
    return _weighted_traces(model, guide, x, k, hold_q=False)[0]


def _weighted_traces(
    model: Callable, guide: Callable, x: torch.Tensor, k: int, hold_q: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Log weights ``(k, B)`` and the guide's sampled values.

    With ``hold_q`` each guide site is scored by a copy of its distribution
    whose parameters are detached, so log q depends on the encoder only
    through the sampled z (the path derivative).
    """
    guide_trace = poutine.trace(_in_particle_plate(guide, k)).get_trace(x)
    replayed = poutine.replay(_in_particle_plate(model, k), trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(x)
    model_trace.compute_log_prob()
    total = x.new_zeros(k, x.shape[0])
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["log_prob"]
    values = []
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            fn = cast(dist.Distribution, site["fn"])
            if hold_q:
                fn = _held(fn)
            value = site["value"]
            assert value is not None
            total = total - scale_and_mask(fn.log_prob(value), site["scale"], site["mask"])
            values.append(value)
    return total, values


def _held(fn: dist.Distribution) -> dist.Distribution:
    """``fn`` with its parameters detached (Normal-family guides, optionally Independent)."""
    if isinstance(fn, dist.Independent):
        return dist.Independent(_held(fn.base_dist), fn.reinterpreted_batch_ndims)
    if isinstance(fn, dist.Normal):
        return dist.Normal(fn.loc.detach(), fn.scale.detach())
    raise TypeError(f"iwae_dreg needs reparameterised Normal guide sites, got {type(fn).__name__}")


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


def iwae_dreg_loss(
    model: Callable, guide: Callable, x: torch.Tensor, n_total: int, k: int
) -> torch.Tensor:
    """The negative IWAE bound with doubly reparameterised encoder gradients.

    The value equals :func:`iwae_loss` on the same draws. Its gradient is
    the IWAE gradient for every parameter of the model, and for the guide's
    parameters the DReG estimator ``sum_i w~_i^2 d log w_i / d z_i d z_i / d
    phi`` (Tucker et al. 2019, eq. 6): log q is scored with its parameters
    held fixed, and a hook on the sampled z multiplies the gradient that
    reaches it by ``w~_i`` once more. Parameters the model also uses (a
    VampPrior's encoder) keep their direct IWAE term, so the estimate stays
    unbiased; for those part of the variance advantage is lost, and early in
    training DReG's encoder gradient is noisier than IWAE's
    (``benchmarks/dreg_variance.py``).

    Parameters
    ----------
    model, guide : callable
        A Pyro pair taking ``x``; the guide must have exactly one latent site,
        a reparameterised (Independent) Normal inside the data plate, as the
        VAE's has. With several sites the hooks would compound along
        dependent draws and holding q(z2 | z1) fixed would cut a path.
    x : Tensor
        ``(B, D)`` minibatch.
    n_total : int
        Examples in the full data set; the loss is scaled by ``n_total / B``.
    k : int
        Importance samples per example.

    Returns
    -------
    Tensor
        Scalar: ``-(n_total / B) * sum_b [logsumexp_i log w_ib - log k]``.

    Raises
    ------
    ValueError
        When the guide has other than one latent site of batch shape ``(k, B)``.
    """
    log_w, values = _weighted_traces(model, guide, x, k, hold_q=True)
    if len(values) != 1 or values[0].shape[:2] != log_w.shape:
        shapes = [tuple(v.shape) for v in values]
        raise ValueError(
            f"iwae_dreg needs a guide with one latent site inside the data plate, of batch "
            f"shape {tuple(log_w.shape)}; got sites of shapes {shapes}"
        )
    with torch.no_grad():
        w = torch.softmax(log_w, dim=0)
    z = values[0]
    if z.requires_grad:
        z.register_hook(lambda g: g * w.reshape(w.shape + (1,) * (g.dim() - 2)))
    surrogate = (w * log_w).sum(0)
    bound = torch.logsumexp(log_w.detach(), dim=0) - math.log(k)
    return -(bound + surrogate - surrogate.detach()).sum() * (n_total / x.shape[0])


def make_objective(
    name: str,
    particles: int,
    traced_for: torch.nn.Module | None = None,
    *,
    enumerate_discrete: bool = False,
) -> Objective:
    """The loss function for ``train.objective`` and ``train.particles``.

    Parameters
    ----------
    name : str
        ``elbo``, ``analytic_kl``, ``iwae`` or ``iwae_dreg``.
    particles : int
        Samples per example.
    traced_for : torch.nn.Module, optional
        The model the objective will train; when given, the objective traces its
        step once per minibatch shape (:mod:`pyrovae.train.traced`) where that is
        exact, and runs eagerly where it is not (``iwae_dreg``, enumeration). The same
        model and objective get the same traced objective back, traces included.
    enumerate_discrete : bool
        The model has discrete latent sites marked for enumeration (M2's class): the
        ``elbo`` is Pyro's :class:`~pyro.infer.TraceEnum_ELBO`, which sums them out
        exactly in one batched pass (one enumeration dimension, dim -2), run eagerly.

    Returns
    -------
    callable
        ``loss(model, guide, x, n_total, beta)`` returning a scalar tensor.
    """
    if enumerate_discrete:
        if name != "elbo":
            raise ValueError(f"enumerated discrete latents train the 'elbo', not {name!r}")
        enum_elbo = TraceEnum_ELBO(num_particles=particles, max_plate_nesting=1)

        def enumerated(model, guide, x, n_total, beta):
            return enum_elbo.differentiable_loss(model, guide, x, n_total, beta)

        return enumerated
    if name in IWAE_OBJECTIVES:
        bound = iwae_loss if name == "iwae" else iwae_dreg_loss

        def iwae(model, guide, x, n_total, beta):
            return bound(model, guide, x, n_total, particles)

        if traced_for is None:
            return iwae
        return traced_objective((name, particles), traced_for, iwae, iwae)
    elbo_class = {"elbo": Trace_ELBO, "analytic_kl": TraceMeanField_ELBO}[name]
    elbo = elbo_class(
        num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1
    )

    def loss(model, guide, x, n_total, beta):
        return elbo.differentiable_loss(model, guide, x, n_total, beta)

    if traced_for is None:
        return loss
    return traced_objective((name, particles), traced_for, loss, elbo_tensor_loss(elbo))
