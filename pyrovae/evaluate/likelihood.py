"""Held-out metrics of a trained VAE, per example and in nats.

- ELBO = reconstruction - KL, with E_q[log p(x|z)] by Monte Carlo and
  KL(q(z|x) || p(z)) in closed form (both Gaussian), also per latent dimension;
  for a VampPrior by Monte Carlo (:func:`mixture_kl`), per dimension against
  each coordinate's marginal.
- log p(x) by importance sampling with k samples from q(z|x):
  log (1/k) sum_i p(x, z_i) / q(z_i|x), a consistent estimate that is a
  lower bound in expectation (it is the k-sample IWAE bound). Its Monte Carlo
  standard error comes from the delta method on the normalised weights,
  se_n^2 = Var(w) / (k E[w]^2), and is summed over examples for the mean.
- Active units (Burda et al., 2016): dimension u is active when
  Cov_x(E_q[z_u | x]) exceeds :data:`ACTIVE_UNIT_THRESHOLD`.
- Bits per dimension, -log2 P(x) / D, where P(x) is a probability of the data's
  discrete values (:func:`bits_per_dim`): for binary data under a Bernoulli likelihood
  and for 8-bit data (256 levels) under the discretized logistic it is exactly the
  model's log p(x) in bits; for 8-bit data stored as k / 255 under a density (gaussian,
  laplace, continuous_bernoulli) the density is turned into a probability by the bin
  width 1/255, P(x) ~= p(x) / 255^D, an approximation (not the bound that uniform
  dequantization would give).

:func:`evaluate` draws each pass of rows of the log p(x) estimate from a stream of its
own, seeded by the seed and the pass's index, so the passes can be shared out over the
processes of a torch.distributed group (``torchrun ... -m pyrovae evaluate RUN``): each
takes every ``world_size``-th pass and the per-example values are gathered in order,
equal to those of one process.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from tqdm.auto import tqdm

from pyrovae.models.m2 import M2
from pyrovae.models.priors import GaussianMixture
from pyrovae.models.vae import VAE
from pyrovae.spec import EIGHT_BIT_LIKELIHOODS
from pyrovae.train.objectives import log_weights
from pyrovae.train.process import ProcessGroup

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "ElboParts",
    "Evaluation",
    "LogLikelihood",
    "active_units",
    "bin_width",
    "bits_per_dim",
    "chunked_log_weights",
    "elbo_parts",
    "evaluate",
    "importance_log_likelihood",
    "kl_per_dimension",
    "mixture_kl",
    "rows_per_pass",
]

ACTIVE_UNIT_THRESHOLD = 0.01
"""Burda et al.'s threshold on the variance (over x) of the posterior mean of a unit."""

MAX_SAMPLES_PER_PASS = 20_000
"""Latent samples decoded at once (k x batch); bounds memory at about 70 MB per
1,000 pixels of decoder output."""


class LogLikelihood(NamedTuple):
    """Importance-sampled log p(x) of each example and its Monte Carlo standard error."""

    log_px: torch.Tensor
    """``(N,)`` nats."""
    se: torch.Tensor
    """``(N,)`` nats."""

    @property
    def mean_se(self) -> float:
        """Standard error of the mean over examples (Monte Carlo error only)."""
        return self.se.pow(2).sum().sqrt().item() / self.se.shape[0]


class Evaluation(NamedTuple):
    """Held-out metrics; scalars are means per example in nats."""

    elbo: float
    reconstruction: float
    kl: float
    log_likelihood: float
    log_likelihood_se: float
    particles: int
    kl_per_dimension: torch.Tensor
    """``(L,)`` mean KL of each latent dimension."""
    posterior_mean_variance: torch.Tensor
    """``(L,)`` Cov_x(E_q[z_u|x]), the activity statistic."""
    active: torch.Tensor
    """``(L,)`` bool."""
    bits_per_dim: float | None
    """-log2 P(x) / D (:func:`bits_per_dim`): binary data under a Bernoulli likelihood or
    8-bit data; None for other data."""

    def to_metrics(self, prefix: str = "test") -> dict[str, Any]:
        """Flat ``metrics.json`` keys with units in their names."""
        out = {
            f"{prefix}_elbo_nats": self.elbo,
            f"{prefix}_reconstruction_nats": self.reconstruction,
            f"{prefix}_kl_nats": self.kl,
            f"{prefix}_log_likelihood_nats": self.log_likelihood,
            f"{prefix}_log_likelihood_se": self.log_likelihood_se,
            f"{prefix}_log_likelihood_particles": self.particles,
            "active_units": int(self.active.sum()),
            "latent_dim": int(self.active.shape[0]),
        }
        if self.bits_per_dim is not None:
            out[f"{prefix}_bits_per_dim"] = self.bits_per_dim
        return out


class _ModelGuide(Protocol):
    """A Pyro model and guide pair: a VAE, or anything else that has the two."""

    @property
    def model(self) -> Callable[..., Any]: ...

    @property
    def guide(self) -> Callable[..., Any]: ...


def rows_per_pass(k: int) -> int:
    """Rows of data whose ``k`` samples each fit in one pass of
    :data:`MAX_SAMPLES_PER_PASS` (one row at least, its samples then in chunks)."""
    return max(1, MAX_SAMPLES_PER_PASS // k)


def chunked_log_weights(model: Any, guide: Any, x: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` log importance weights of each row of ``x`` ``(B, D)``: ``(k, B)``, drawn in
    chunks of samples so that at most :data:`MAX_SAMPLES_PER_PASS` are decoded at once
    (one chunk when ``B * k`` fits)."""
    chunk = max(1, min(k, MAX_SAMPLES_PER_PASS // x.shape[0]))
    sizes = [chunk] * (k // chunk) + ([k % chunk] if k % chunk else [])
    return torch.cat([log_weights(model, guide, x, s) for s in sizes])


def _pass_seed(seed: int, index: int) -> int:
    """The seed of pass ``index`` of a seeded estimate: 63 bits of SHA-256."""
    digest = hashlib.sha256(f"pyrovae-log-px:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _one_pass(vae: _ModelGuide, xb: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) ``(B,)`` and its standard error ``(B,)`` of the rows ``xb`` ``(B, D)``."""
    lw = chunked_log_weights(vae.model, vae.guide, xb, k)
    w = (lw - lw.max(0).values).exp()
    se = (w.var(0, correction=1) / k).sqrt() / w.mean(0) if k > 1 else w[0] * math.inf
    return torch.logsumexp(lw, 0) - math.log(k), se


@torch.no_grad()
def importance_log_likelihood(
    vae: _ModelGuide,
    x: torch.Tensor,
    k: int,
    *,
    progress: bool = False,
    seed: int | None = None,
    process: ProcessGroup | None = None,
) -> LogLikelihood:
    """log p(x) of each row of ``x`` ``(N, D)`` from ``k`` samples of q(z|x).

    Rows are processed in passes and the k samples in chunks so that at most
    :data:`MAX_SAMPLES_PER_PASS` latent samples are decoded at once.

    Parameters
    ----------
    seed : int, optional
        Without it, the draws come from the caller's random state. With it, pass ``j``
        draws from a stream seeded by ``seed`` and ``j`` (the caller's state is left as
        it was), so the values do not depend on which process computes which pass.
    process : ProcessGroup, optional
        With ``seed``: the processes to share the passes with; each computes every
        ``world_size``-th pass and all receive every value (a collective).
    """
    batch = max(1, min(x.shape[0], rows_per_pass(k)))
    passes = x.split(batch)
    if seed is None:
        bar = tqdm(passes, disable=not progress, desc=f"log p(x), k={k}", unit="batch")
        parts = [_one_pass(vae, xb, k) for xb in bar]
    else:
        parts = _seeded_passes(vae, passes, k, seed, process, progress)
    if not parts:
        return LogLikelihood(x.new_zeros(0), x.new_zeros(0))
    return LogLikelihood(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def _seeded_passes(
    vae: _ModelGuide,
    passes: tuple[torch.Tensor, ...],
    k: int,
    seed: int,
    process: ProcessGroup | None,
    progress: bool,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every pass's values, this process computing passes ``rank, rank + world_size, ...``."""
    rank, world = (process.rank, process.world_size) if process is not None else (0, 1)
    mine = range(rank, len(passes), world)
    devices = [passes[0].device] if passes and passes[0].device.type == "cuda" else []
    done = {}
    for j in tqdm(mine, disable=not progress, desc=f"log p(x), k={k}", unit="batch"):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_pass_seed(seed, j))
            done[j] = tuple(t.cpu() for t in _one_pass(vae, passes[j], k))
    if world > 1 and process is not None:
        done = {j: v for part in process.gather(done) for j, v in part.items()}
    device = passes[0].device if passes else torch.device("cpu")
    return [(done[j][0].to(device), done[j][1].to(device)) for j in range(len(passes))]


def kl_per_dimension(loc: torch.Tensor, scale: torch.Tensor, prior_scale: float) -> torch.Tensor:
    """KL(N(loc, scale^2) || N(0, prior_scale^2)) elementwise: ``(N, L) -> (N, L)``."""
    return math.log(prior_scale) - scale.log() + (scale**2 + loc**2) / (2 * prior_scale**2) - 0.5


def mixture_kl(
    loc: torch.Tensor,
    scale: torch.Tensor,
    prior: GaussianMixture,
    samples: int,
    max_elements: int = 2**24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo KL(q(z|x) || p(z)) for a mixture prior, where no closed form exists.

    Parameters
    ----------
    loc, scale : Tensor
        ``(N, L)`` parameters of q(z|x).
    prior : GaussianMixture
        p(z) with K components.
    samples : int
        Draws of z per example (seeded by the caller's random state).
    max_elements : int
        Bound on the ``(samples, rows, K, L)`` tensor of the per-dimension
        marginals; examples are processed in chunks of ``rows`` to stay under it.

    Returns
    -------
    per_dimension : Tensor
        ``(N, L)``: KL(q(z_d|x) || p(z_d)) against each coordinate's marginal
        under the prior, a 1-D mixture. A mixture prior does not factorise, so
        these do not sum to the total.
    total : Tensor
        ``(N,)``: KL(q(z|x) || p(z)).
    """
    per_dim, total = [], []
    rows = max(1, max_elements // (samples * prior.components * loc.shape[-1]))
    for m, s in zip(loc.split(rows), scale.split(rows), strict=True):
        q = torch.distributions.Normal(m, s)
        z = q.sample((samples,))  # (S, rows, L)
        log_q = q.log_prob(z)
        per_dim.append((log_q - prior.marginal_log_prob(z)).mean(0))
        total.append((log_q.sum(-1) - prior.log_prob(z)).mean(0))
    return torch.cat(per_dim), torch.cat(total)


def active_units(
    loc: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance over examples of each posterior mean ``(N, L) -> (L,)``, and which exceed it."""
    variance = loc.var(0, correction=1) if loc.shape[0] > 1 else torch.zeros(loc.shape[1])
    return variance, variance > threshold


def _is_binary(vae: VAE, x: torch.Tensor) -> bool:
    pixels = vae.pixels(x)
    return vae.likelihood.name == "bernoulli" and bool(((pixels == 0) | (pixels == 1)).all())


def bin_width(vae: VAE, x: torch.Tensor, levels: int | None) -> float | None:
    """The width w that turns ``vae``'s p(x) into a probability of the data's values,
    P(x) = p(x) w^D, or None when there is none to give.

    1 where p(x) already is a probability: a Bernoulli likelihood of binary ``x`` or the
    discretized logistic of 8-bit data; 1 / 255 for a density (gaussian, laplace,
    continuous_bernoulli) of 8-bit data stored as k / 255 (``levels = 256``), each value
    standing for its bin [k/255 - 1/510, k/255 + 1/510] of the density's mass; None for
    continuous data, or data of other levels under a density.
    """
    if _is_binary(vae, x) or (levels == 256 and vae.likelihood.name in EIGHT_BIT_LIKELIHOODS):
        return 1.0
    if levels == 256 and vae.likelihood.name != "bernoulli":
        return 1.0 / (levels - 1)
    return None


def bits_per_dim(log_likelihood: float, dim: int, width: float = 1.0) -> float:
    """-log2 P(x) / D with P(x) = p(x) * width^D: ``(-log p(x) - D ln width) / (D ln 2)``.

    Parameters
    ----------
    log_likelihood : float
        log p(x) of one example (or the mean over examples), nats.
    dim : int
        D, the values per example.
    width : float
        The bin width of :func:`bin_width`: 1 for a probability; 1 / 255 for a density of
        8-bit data, which adds log2(255) ~= 7.99 bits per value to -log2 p(x) / D.
    """
    return (-log_likelihood - dim * math.log(width)) / (dim * math.log(2))


class ElboParts(NamedTuple):
    """The ELBO's two parts per example, and the KL of each latent dimension."""

    reconstruction: torch.Tensor
    """``(N,)`` E_q[log p(x|z)], nats."""
    kl: torch.Tensor
    """``(N,)`` KL(q(z|x) || p(z)), nats."""
    kl_per_dimension: torch.Tensor
    """``(N, L)`` KL of each coordinate (against its prior marginal for a VampPrior)."""
    loc: torch.Tensor
    """``(N, L)`` the encoder's means."""


@torch.no_grad()
def elbo_parts(vae: VAE, x: torch.Tensor, samples: int = 10) -> ElboParts:
    """ELBO = reconstruction - KL of each example of ``x`` ``(N, D)``, drawing from the
    caller's random state: ``samples`` draws of z per example for the reconstruction (and
    for a VampPrior's KL); a N(0, s^2 I) prior's KL is in closed form."""
    if isinstance(vae, M2):  # the class summed out exactly
        return ElboParts(*vae.elbo_terms(x, samples))
    loc, scale = vae.encode(x)
    if vae.spec.prior.name == "normal":
        kl = kl_per_dimension(loc, scale, vae.prior_scale)
        kl_sum = kl.sum(-1)
    else:
        kl, kl_sum = mixture_kl(loc, scale, vae.prior(x), samples)
    pixels = vae.pixels(x)
    recon = torch.stack(
        [
            vae.observation(loc + scale * torch.randn_like(loc), x).log_prob(pixels)
            for _ in range(samples)
        ]
    ).mean(0)
    return ElboParts(recon, kl_sum, kl, loc)


@torch.no_grad()
def evaluate(
    vae: VAE,
    x: torch.Tensor,
    *,
    particles: int = 1000,
    reconstruction_samples: int = 10,
    seed: int = 0,
    progress: bool = False,
    process: ProcessGroup | None = None,
    levels: int | None = None,
) -> Evaluation:
    """All held-out metrics of ``vae`` on ``x`` ``(N, D)``, seeded.

    Parameters
    ----------
    particles : int
        k, samples of q(z|x) per example for log p(x).
    reconstruction_samples : int
        Samples per example for E_q[log p(x|z)].
    process : ProcessGroup, optional
        Processes that share the log p(x) passes out (every one calls ``evaluate`` and
        gets the same result, equal to one process's).
    levels : int, optional
        The values the data's pixels take (:attr:`~pyrovae.data.dataset.Dataset.levels`):
        with 256, bits per dimension are reported for every likelihood
        (:func:`bin_width`); binary data under a Bernoulli likelihood get them without.
    """
    device = next(vae.parameters()).device
    x = x.to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        parts = elbo_parts(vae, x, reconstruction_samples)
        ll = importance_log_likelihood(
            vae, x, particles, progress=progress, seed=seed, process=process
        )
    variance, active = active_units(parts.loc.cpu())
    mean_ll = ll.log_px.mean().item()
    width = bin_width(vae, x, levels)
    bits = None if width is None else bits_per_dim(mean_ll, vae.data_dim, width)
    reconstruction, kl_total = parts.reconstruction.mean().item(), parts.kl.mean().item()
    return Evaluation(
        elbo=reconstruction - kl_total,
        reconstruction=reconstruction,
        kl=kl_total,
        log_likelihood=mean_ll,
        log_likelihood_se=ll.mean_se,
        particles=particles,
        kl_per_dimension=parts.kl_per_dimension.mean(0).cpu(),
        posterior_mean_variance=variance,
        active=active,
        bits_per_dim=bits,
    )
