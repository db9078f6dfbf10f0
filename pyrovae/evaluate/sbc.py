"""Amortized simulation-based calibration of a trained VAE's encoder.

For ``N`` replications at once: z ~ p(z) from the model's own prior (N(0, s^2 I) or the
VampPrior), x ~ p(x|z) from its own likelihood (Bernoulli, continuous Bernoulli,
Gaussian, Laplace, discretized logistic: the decoder's distribution is sampled, so binary
models see binary images and 8-bit ones 8-bit images), one encoder pass for
q(z|x) = N(mu(x), diag sigma(x)^2), and the rank of each true z_d among ``L`` draws of
q(z_d|x). If q(z|x) were the exact posterior p(z|x) of the decoder, every rank would be
uniform on ``0..L``
(:mod:`pyrovae.stats.ranks` tests them per latent dimension). A U shape says the
encoder is overconfident in that dimension (q narrower than p(z|x)), an inverted U that it
is underconfident, skewed ranks that its mean is biased. Since nothing is fitted per
replication, thousands cost seconds.

The amortization and approximation gaps of the ELBO say *how much* q(z|x) misses p(z|x)
on average; SBC says *in which direction*, per dimension, and averages over the model's
own data (z from the prior), not over the training set.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import pyro.distributions as dist
import torch

from pyrovae.errors import UserError
from pyrovae.models import LatentModel
from pyrovae.models.vae import VAE
from pyrovae.stats.ranks import MIN_REPLICATIONS, MethodRanks

__all__ = ["CHUNK_VALUES", "ENCODER", "AmortizedSbc", "amortized_sbc", "latent_names"]

ENCODER = "encoder"
"""The method name of the amortized q(z|x) in tables, files and figures."""

CHUNK_VALUES = 2**22
"""Guide draws held at once (L x N x latent dims are drawn in chunks of this many values,
16 MB of float32)."""


class AmortizedSbc(NamedTuple):
    """Ranks of the true latents under q(z|x) over the replications.

    Attributes
    ----------
    ranks : MethodRanks
        Method :data:`ENCODER`, parameters ``z[1]..z[L_z]``, ``(N, L_z)`` ranks in
        ``0..draws``.
    seconds : float
        Wall time of the simulation and the ranks.
    prior, likelihood : str
        The model's prior and likelihood names.
    """

    ranks: MethodRanks
    seconds: float
    prior: str
    likelihood: str


def latent_names(latent_dim: int) -> tuple[str, ...]:
    """``("z[1]", ..., "z[L]")``: 1-based, as the comparison tables name elements."""
    return tuple(f"z[{d + 1}]" for d in range(latent_dim))


@torch.no_grad()
def _simulate(vae: VAE, replications: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z (N, L_z), x (N, D))`` from p(z) p(x|z), under torch's global generator."""
    like = next(vae.parameters())
    z = vae.prior(like).sample((replications,))
    x = vae.observation(z).sample()
    return z, x


@torch.no_grad()
def _guide_ranks(vae: VAE, z: torch.Tensor, x: torch.Tensor, draws: int) -> torch.Tensor:
    """``(N, L_z)`` int64: how many of ``draws`` draws of q(z|x) lie below each true z."""
    loc, scale = vae.encode(x)
    q = dist.Normal(loc, scale)
    below = torch.zeros(z.shape, dtype=torch.int64, device=z.device)
    chunk = max(1, CHUNK_VALUES // z.numel())
    for start in range(0, draws, chunk):
        sample = q.sample((min(chunk, draws - start),))
        below += (sample < z).sum(0)
    return below


def amortized_sbc(
    vae: LatentModel, *, replications: int = 2000, draws: int = 100, seed: int = 0
) -> AmortizedSbc:
    """SBC of the encoder of a trained VAE.

    Parameters
    ----------
    vae : VAE
        Trained, in eval mode.
    replications : int
        N, z ~ p(z) and x ~ p(x|z) pairs (at least
        :data:`~pyrovae.stats.ranks.MIN_REPLICATIONS`).
    draws : int
        L, draws of q(z|x) per replication.
    seed : int
        Seeds torch's generator inside the call (the global state is restored after).

    Returns
    -------
    AmortizedSbc

    Raises
    ------
    UserError
        An autoencoder (no prior to draw z from), or too few replications or draws.
    """
    if not isinstance(vae, VAE):
        raise UserError(
            f"SBC needs a prior p(z) to draw from; a {vae.spec.kind} has none "
            "(amortized SBC needs model.kind = 'vae')"
        )
    if replications < MIN_REPLICATIONS:
        raise UserError(f"--replications: SBC needs at least {MIN_REPLICATIONS}")
    if draws < 1:
        raise UserError(f"--samples: expected a positive integer, got {draws}")
    start = time.perf_counter()
    device = next(vae.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        z, x = _simulate(vae, replications)
        ranks = _guide_ranks(vae, z, x, draws)
    names = latent_names(vae.latent_dim)
    return AmortizedSbc(
        ranks=MethodRanks(ENCODER, names, ranks.cpu().numpy(), draws),
        seconds=time.perf_counter() - start,
        prior=vae.spec.prior.name,
        likelihood=vae.spec.likelihood.name,
    )
