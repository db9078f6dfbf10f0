"""Local posteriors p(z|x) of a trained VAE, and the gaps of Cremer et al. (2018).

With the decoder frozen, the posterior of each test point's latent is a small
target that every method can approximate:

- ``amortized``: the encoder's q_phi(z|x);
- ``per_point``: q*(z|x), the same diagonal-Gaussian family optimised for each
  point separately (initialised at the encoder's output);
- ``nuts`` and ``metropolis``: samples of p(z|x) from MCMC.

The points are independent given the decoder, so all N posteriors are sampled
in ONE MCMC run over the model's ``"data"`` plate (z has shape (N, L)) rather
than N runs: one tree per iteration serves every point.

Gaps per point, in nats: approximation gap log p(x) - ELBO(q*), amortization
gap ELBO(q*) - ELBO(q_phi), with log p(x) importance-sampled with q* as the
proposal (:func:`local_bounds`: in batches of points, each with its own rows of q*,
so that at most :data:`~pyrovae.evaluate.likelihood.MAX_SAMPLES_PER_PASS` samples
are decoded at once).

Each method's draws also get the log-likelihood log p(x_n | z_s) of each point at
each draw (:mod:`pyrovae.posterior.inference.pointwise`), saved in its InferenceData
(:func:`local_idata`). It is the reconstruction term per draw; it is not used for
PSIS-LOO, which here would be a harmonic-mean estimate of the prior predictive
p(x_n) (see :func:`pyrovae.posterior.diagnostics.from_local`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from pyrovae.errors import UserError
from pyrovae.evaluate import likelihood
from pyrovae.models import frozen
from pyrovae.models.likelihoods import MIN_SCALE, inverse_positive
from pyrovae.models.vae import VAE
from pyrovae.posterior import diagnostics
from pyrovae.posterior.compare import Comparison, MethodResult, compare
from pyrovae.posterior.inference.mcmc import METROPOLIS_EXTRA, McmcResult, run_mcmc
from pyrovae.posterior.inference.pointwise import pointwise
from pyrovae.posterior.inference.variational import Convergence, convergence, fit_guide

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "LocalPosteriors",
    "PerPointGuide",
    "gap_table",
    "latent_names",
    "local_bounds",
    "local_comparison",
    "local_idata",
    "local_posteriors",
]


class PerPointGuide(nn.Module):
    """q*(z|x): a free diagonal Gaussian for each of the N points, ``(N, L)`` parameters.

    A plain ``nn.Module`` (a Pyro guide is any callable), so it can be built and
    fitted under any ``pyro.settings``. Called with all N points; :meth:`rows` is the
    guide of a batch of them."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        raw = torch.tensor([inverse_positive(float(s)) for s in scale.reshape(-1)])
        self.raw_scale = nn.Parameter(raw.reshape(scale.shape).to(loc))

    @property
    def scale(self) -> torch.Tensor:
        """``(N, L)`` standard deviations."""
        return softplus(self.raw_scale) + MIN_SCALE

    def forward(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """Sample z ``(N, L)`` for ``x`` ``(N, D)``, all the points."""
        self._sample(x, index=slice(None))

    def rows(self, index: slice) -> Callable[..., None]:
        """The guide of points ``index`` alone, for ``x[index]`` ``(B, D)``.

        The model's ``"data"`` plate has one entry per row of the batch, so a batch of
        points needs its own rows of the parameters, not all N."""
        return partial(self._sample, index=index)

    def _sample(
        self,
        x: torch.Tensor,
        n_total: int | None = None,
        beta: float = 1.0,
        *,
        index: slice,
    ) -> None:
        loc, scale = self.loc[index], self.scale[index]
        if x.shape[0] != loc.shape[0]:
            raise ValueError(
                f"PerPointGuide: {x.shape[0]} rows of x for {loc.shape[0]} points' "
                "parameters (use .rows(index) for a batch of the points)"
            )
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class LocalPosteriors(NamedTuple):
    """Every method's answer for the local posteriors of N points."""

    x: torch.Tensor
    """``(N, D)`` the points."""
    draws: dict[str, np.ndarray]
    """method -> ``(S, N, L)`` draws of z."""
    seconds: dict[str, float]
    mcmc: dict[str, McmcResult]
    log_px: np.ndarray
    """``(N,)`` importance-sampled log p(x) (proposal q*)."""
    elbo: dict[str, np.ndarray]
    """``"amortized"`` / ``"per_point"`` -> ``(N,)`` ELBO in nats."""
    log_likelihood: dict[str, np.ndarray]
    """method -> ``(S, N)`` log p(x_n | z_s) of each point at each draw, in nats."""
    fits: dict[str, Convergence] | None = None
    """method -> how its variational fit ended (``"per_point"``), for the tables."""

    @property
    def approximation_gap(self) -> np.ndarray:
        """``(N,)`` log p(x) - ELBO(q*)."""
        return self.log_px - self.elbo["per_point"]

    @property
    def amortization_gap(self) -> np.ndarray:
        """``(N,)`` ELBO(q*) - ELBO(q_phi)."""
        return self.elbo["per_point"] - self.elbo["amortized"]


def _point_batches(n: int, particles: int) -> list[slice]:
    """Consecutive slices of ``n`` points with at most MAX_SAMPLES_PER_PASS samples each
    (``particles`` per point; one point at least)."""
    size = likelihood.rows_per_pass(particles)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _elbo(model: Callable, guide: Callable, x: torch.Tensor, k: int) -> torch.Tensor:
    """``(B,)`` mean of ``k`` log weights per row of ``x`` ``(B, D)``, in chunks of samples
    so that at most MAX_SAMPLES_PER_PASS are decoded at once."""
    return likelihood.chunked_log_weights(model, guide, x, k).mean(0)


@torch.no_grad()
def local_bounds(
    vae: VAE, guide: PerPointGuide, x: torch.Tensor, particles: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """log p(x) (proposal q*) and the ELBOs of q* and q_phi for each row of ``x`` ``(N, D)``.

    The points go in batches of at most MAX_SAMPLES_PER_PASS // ``particles`` (one at
    least, its particles then in chunks), each batch with its own rows of ``guide``, so
    that every point's estimates use its own q* whatever the batching.

    Returns
    -------
    log_px : ndarray
        ``(N,)`` importance-sampled log p(x) from ``particles`` samples of q*, in nats.
    elbo : dict
        ``"amortized"`` / ``"per_point"`` -> ``(N,)`` ELBO from ``particles`` samples.
    """
    log_px, amortized, per_point = [], [], []
    for index in _point_batches(x.shape[0], particles):
        star, xb = guide.rows(index), x[index]
        pair = _Pair(vae.model, star)
        log_px.append(likelihood.importance_log_likelihood(pair, xb, particles).log_px)
        amortized.append(_elbo(vae.model, vae.guide, xb, particles))
        per_point.append(_elbo(vae.model, star, xb, particles))
    return _numpy(log_px), {"amortized": _numpy(amortized), "per_point": _numpy(per_point)}


def _numpy(parts: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(parts).double().numpy()


def local_posteriors(
    vae: VAE,
    x: torch.Tensor,
    *,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 2,
    particles: int = 2000,
    seed: int = 0,
    kernels: tuple[str, ...] = ("nuts", "metropolis"),
    progress: bool = False,
) -> LocalPosteriors:
    """Approximate p(z|x) for each row of ``x`` ``(N, D)`` with every method.

    Parameters
    ----------
    num_samples, warmup_steps, num_chains
        Per MCMC chain; draws of the variational methods match the MCMC total.
    particles : int
        Samples per point for ELBOs and for log p(x).
    kernels : tuple of str
        MCMC kernels to run (a subset of ``("nuts", "hmc", "metropolis")``).
    """
    vae = frozen(vae)
    x = x.detach().cpu()
    total = num_samples * num_chains
    draws: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    with torch.no_grad():
        loc, scale = vae.encode(x)
        torch.manual_seed(seed)
        amortized = loc + scale * torch.randn(total, *loc.shape)
    draws["amortized"], seconds["amortized"] = amortized.numpy(), 0.0

    start = time.perf_counter()
    fit = fit_guide(
        vae.model,
        {"x": x},
        PerPointGuide(loc, scale),
        seed=seed,
        lr=0.01,
        particles=16,
        window=100,
        elbo_particles=16,
    )
    guide = cast(PerPointGuide, fit.guide)
    seconds["per_point"] = time.perf_counter() - start
    with torch.no_grad():
        torch.manual_seed(seed + 1)
        draws["per_point"] = (guide.loc + guide.scale * torch.randn(total, *loc.shape)).numpy()

    mcmc = {}
    for kernel in kernels:
        # a random walk is cheap per step but slow to adapt and to mix: give it more steps
        extra = METROPOLIS_EXTRA if kernel == "metropolis" else 1
        result = run_mcmc(
            vae.model,
            {"x": x},
            kernel=kernel,
            num_samples=num_samples * extra,
            warmup_steps=warmup_steps * extra,
            num_chains=num_chains,
            seed=seed,
            progress=progress,
        )
        mcmc[kernel] = result
        draws[kernel] = result.samples["z"].reshape(-1, *loc.shape).numpy()
        seconds[kernel] = result.seconds

    torch.manual_seed(seed + 2)
    log_px, elbo = local_bounds(vae, guide, x, particles)
    log_lik = {
        method: pointwise(vae.model, {"x": x}, {"z": z}).log_likelihood["x"]
        for method, z in draws.items()
    }
    fits = {"per_point": convergence([fit])}
    return LocalPosteriors(x, draws, seconds, mcmc, log_px, elbo, log_lik, fits)


class _Pair(NamedTuple):
    model: Callable[..., Any]
    guide: Callable[..., Any]


def latent_names(n_points: int, latent_dim: int) -> list[str]:
    """Stan-style names of the flattened local latents: ``z[point,unit]``, 1-based."""
    return [f"z[{n + 1},{u + 1}]" for n in range(n_points) for u in range(latent_dim)]


def local_idata(local: LocalPosteriors, method: str, name: str | None = None) -> az.InferenceData:
    """One method's local posteriors as ArviZ InferenceData.

    Variable ``z`` with dims ``("chain", "draw", "point", "latent")``, the log-likelihood
    ``x`` ``(chain, draw, point)`` and the points as ``observed_data``. MCMC runs go
    through :func:`~pyrovae.posterior.diagnostics.from_mcmc` (their chains and sample_stats are
    kept), the variational draws through :func:`~pyrovae.posterior.diagnostics.from_local` (one
    chain of independent draws).

    Parameters
    ----------
    method : str
        A key of ``local.draws``.
    name : str, optional
        Stored as ``attrs["method"]``; default ``method``.
    """
    name = name or method
    log_lik = local.log_likelihood[method]
    elbo = float(local.elbo[method].sum()) if method in local.elbo else None
    if method in local.mcmc:
        result = local.mcmc[method]
        chains = result.samples["z"].shape[0]
        return diagnostics.from_mcmc(
            result,
            method=name,
            parameters={"z": tuple(local.draws[method].shape[1:])},
            dims=diagnostics.LOCAL_DIMS,
            log_likelihood={"x": log_lik.reshape(chains, -1, *log_lik.shape[1:])},
            observed_data={"x": local.x},
            loo_note=diagnostics.LOCAL_LOO_NOTE,
        )
    return diagnostics.from_local(
        local.draws[method],
        method=name,
        seconds=local.seconds[method],
        elbo=elbo,
        log_likelihood=log_lik,
        observed=local.x,
    )


def local_comparison(local: LocalPosteriors, seed: int = 0) -> Comparison:
    """Every method's local posteriors against NUTS, as a :class:`Comparison`.

    Every :class:`MethodResult` (and the reference) carries its :func:`local_idata`; an
    MCMC method's carries the ESS of each ``z[point,unit]``, ArviZ's bulk ESS over its
    chains (:attr:`~pyrovae.posterior.inference.mcmc.McmcResult.ess`).

    Raises
    ------
    UserError
        When NUTS was not among the kernels (it is the reference).
    """
    if "nuts" not in local.draws:
        raise UserError("the local-posterior comparison needs NUTS draws as its reference")
    n, latent = local.x.shape[0], local.draws["amortized"].shape[-1]
    flat = {m: d.reshape(d.shape[0], n * latent) for m, d in local.draws.items()}
    methods = []
    for method in ("amortized", "per_point", "metropolis", "hmc"):
        if method not in flat:
            continue
        ess = None
        if method in local.mcmc:
            ess = local.mcmc[method].ess["z"].reshape(-1).numpy()
        elbo = float(local.elbo[method].sum()) if method in local.elbo else None
        methods.append(
            MethodResult(
                method,
                flat[method],
                seconds=local.seconds[method],
                ess=ess,
                elbo=elbo,
                posterior=local_idata(local, method),
                convergence=(local.fits or {}).get(method),
            )
        )
    return compare(
        flat["nuts"],
        tuple(latent_names(n, latent)),
        methods,
        reference_name="nuts",
        seed=seed,
        reference_posterior=local_idata(local, "nuts", "reference (nuts)"),
    )


def gap_table(local: LocalPosteriors) -> str:
    """Markdown table of log p(x), ELBOs and the two gaps per point, and their mean."""
    rows = [
        "| point | log p(x) | ELBO(q*) | ELBO(q_phi) | approximation gap | amortization gap |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    approx, amort = local.approximation_gap, local.amortization_gap
    for i in range(local.x.shape[0]):
        rows.append(
            f"| {i + 1} | {local.log_px[i]:.3f} | {local.elbo['per_point'][i]:.3f} | "
            f"{local.elbo['amortized'][i]:.3f} | {approx[i]:.3f} | {amort[i]:.3f} |"
        )
    rows.append(
        f"| mean | {local.log_px.mean():.3f} | {local.elbo['per_point'].mean():.3f} | "
        f"{local.elbo['amortized'].mean():.3f} | {approx.mean():.3f} | "
        f"{amort.mean():.3f} |"
    )
    return "\n".join(rows)
