"""Reference posteriors by MCMC: NUTS, HMC and random-walk Metropolis behind one call.

:func:`run_mcmc` runs ``num_chains`` chains of Pyro's :class:`~pyro.infer.MCMC`
*one after the other* in this process by default, or ``workers`` at a time in spawned
processes (:mod:`~pyrovae.posterior.inference.chains`), with the same draws. Chain
``c`` is seeded with ``pyro.set_rng_seed(seed + c)`` and gets a fresh kernel. It
returns a :class:`McmcResult`: samples of the latent and deterministic sites,
per-chain sampler diagnostics, and per-site ESS and R-hat over all chains, both
ArviZ's rank-normalised ones (``arviz.ess(method="bulk")`` and ``arviz.rhat``), so
that every ESS pyrovae reports (``methods.csv``'s ``ess_min`` and
``ess_per_second``, ``summary.csv``'s ``ess``) is the ``ess_bulk`` of
``arviz_summary.csv`` for the same draws.

The file is laid out like a BlackJAX sampler: a result tuple, a kernel builder
(:func:`build_kernel`), a per-chain runner (:func:`run_chain`) and the thin
top-level :func:`run_mcmc`.

Where each diagnostic comes from (Pyro 1.9.2, read in ``pyro/infer/mcmc``):

* acceptance rate -- ``kernel._mean_accept_prob``, read by ``hook_fn`` after the
  last kept draw. All three kernels keep it as a running mean of the per-transition
  acceptance *probability* and restart the mean at the first kept draw, so the
  value is the mean over kept draws only. For NUTS the per-transition value is
  Pyro's ``sum_accept_probs / num_proposals`` over the tree; for HMC and
  Metropolis it is ``min(1, exp(-delta_energy))``. (The kernels' own
  ``diagnostics()["acceptance rate"]`` is the fraction of *moves*, which for NUTS
  counts moves to a new subtree, so it is not used.)
* step size -- ``kernel.step_size`` (the dual-averaging result, fixed after
  warm-up) for NUTS/HMC; ``exp(kernel._log_step_size)``, the proposal scale, for
  Metropolis.
* divergences -- ``kernel.diagnostics()["divergences"]`` after the last kept draw:
  the indices (0-based, among the kept draws) of the divergent transitions, kept as a
  per-draw flag (:attr:`McmcResult.diverging`) and counted per chain. Pyro records a
  transition as divergent when the energy error exceeds 1000 and only from the first
  kept draw on, so warm-up is excluded.
* leapfrog steps -- see :attr:`McmcResult.num_steps`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import HMC, MCMC, NUTS, Predictive
from pyro.infer.mcmc import RandomWalkKernel
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model

from pyrovae.errors import UserError
from pyrovae.posterior.inference import deadline
from pyrovae.posterior.inference.chains import (
    ChainJob,
    picklable,
    resolve_workers,
    run_in_processes,
)
from pyrovae.posterior.inference.warm_start import (
    LaplaceMass,
    WarmStart,
    latent_shapes,
    warm_start,
)

__all__ = [
    "DENSE_MASS_MAX_DIM",
    "KERNELS",
    "MASS",
    "MAX_TREE_DEPTH",
    "METROPOLIS_EXTRA",
    "METROPOLIS_INIT_SCALE",
    "ChainResult",
    "McmcResult",
    "build_kernel",
    "max_tree_steps",
    "resolve_mass",
    "run_chain",
    "run_mcmc",
    "unconstrained_size",
]

METROPOLIS_EXTRA = 4
"""Metropolis runs this many times NUTS's warm-up and draws (it costs far less per step)."""


KERNELS = ("nuts", "hmc", "metropolis")
"""Kernel names accepted by :func:`run_mcmc`."""

METROPOLIS_INIT_SCALE = 0.1
"""Initial proposal scale of the Metropolis kernel (Pyro's default ``init_step_size``)."""

MASS = ("auto", "dense", "diag")
"""Mass matrices NUTS/HMC adapt in warm-up: ``dense`` (a full covariance, which undoes
linear correlation and scale differences), ``diag`` (one scale per coordinate) or
``auto`` (dense up to :data:`DENSE_MASS_MAX_DIM` unconstrained values, diagonal above)."""

DENSE_MASS_MAX_DIM = 100
"""``mass="auto"`` adapts a dense mass matrix up to this many unconstrained values.
Measured by ``benchmarks/mass_matrix.py`` (docs/benchmarks.md, one seed per cell): on
Gaussian targets that a diagonal matrix already suits, dense kept 0.46-1.14 of the
diagonal's ESS per second from d = 10 to 200 (Pyro's dense kinetic energy costs a little
per leapfrog step), while on correlated ones it gained 10-34x. 100 is the largest
measured d where dense kept at least half; above it the d(d+1)/2 covariances are
estimated from ever fewer draws per value and the diagonal stays the safe choice."""

MAX_TREE_DEPTH = 10
"""NUTS doubles its trajectory at most this many times: at most 2**10 - 1 = 1,023
leapfrog steps per transition (Pyro's and Stan's default)."""


def max_tree_steps(max_tree_depth: int) -> int:
    """Leapfrog steps of a NUTS transition that reached ``max_tree_depth``: the doubling
    tree's leaves, 1 + 2 + ... + 2**(depth - 1) = 2**depth - 1."""
    return 2**max_tree_depth - 1


_DEFAULT_TARGET_ACCEPT = {"nuts": 0.8, "hmc": 0.8, "metropolis": 0.234}
_MIN_DRAWS_FOR_DIAGNOSTICS = 4  # ArviZ splits every chain in halves of >= 2 draws
_MIN_CHAINS_FOR_RHAT = 2  # arviz.rhat compares chains: NaN (and a logged warning) below 2


class McmcResult(NamedTuple):
    """Samples and diagnostics of :func:`run_mcmc`.

    Attributes
    ----------
    kernel : str
        One of :data:`KERNELS`.
    samples : dict of str to torch.Tensor
        Site name -> ``(chains, draws, *site_shape)``, for every latent site and every
        deterministic site (``pyro.deterministic``) of the model, in the constrained
        space. ``site_shape`` is the shape of one draw of the site (plate dimensions
        included); it is ``()`` for a scalar site, without padding.
    acceptance_rate : torch.Tensor
        ``(chains,)`` float64, mean acceptance probability over the kept draws.
    step_size : torch.Tensor
        ``(chains,)`` float64, the step size after adaptation (NUTS, HMC) or the
        Metropolis proposal scale at the end of the chain.
    divergences : torch.Tensor or None
        ``(chains,)`` int64, divergent transitions among the kept draws (NUTS, HMC);
        ``None`` for Metropolis.
    num_steps : torch.Tensor or None
        ``(chains, draws)`` int64, leapfrog steps spent on each kept draw. NUTS: the
        number of leapfrog steps in the trajectory built for that transition (one per
        leaf of the doubling tree, fewer than ``2**depth`` when a U-turn or divergence
        stopped a subtree early), counted by wrapping ``NUTS._build_basetree`` since
        Pyro keeps this number local to ``NUTS.sample``. HMC: Pyro's
        ``HMC.num_steps = max(1, int(trajectory_length / step_size))``, constant over
        the kept draws. ``None`` for Metropolis.
    seconds : float
        Wall time of ``MCMC.run`` summed over chains (warm-up included; building the
        deterministic sites and the ESS/R-hat are not counted).
    ess : dict of str to torch.Tensor
        Site name -> ``site_shape`` float64 effective sample size over all chains:
        ArviZ's rank-normalised bulk ESS (``arviz.ess(..., method="bulk")`` on the
        ``(chains, draws, *site_shape)`` draws; Vehtari et al. 2021), the very
        ``ess_bulk`` of ``arviz_summary.csv``. NaN with fewer than 4 draws or for a
        constant site (where ArviZ reports the number of draws).
    r_hat : dict of str to torch.Tensor
        Site name -> ``site_shape`` float64 rank-normalised split R-hat over all chains
        (``arviz.rhat``, the larger of the bulk and the folded-tail R-hat; the ``r_hat``
        of ``arviz_summary.csv``). NaN with fewer than 4 draws, a single chain (as in
        ArviZ) or a constant site.
    diverging : torch.Tensor or None
        ``(chains, draws)`` bool, which kept transitions diverged (NUTS, HMC; its sum over
        draws is ``divergences``); ``None`` for Metropolis or when not recorded.
    mass : str
        The mass matrix adapted in warm-up: ``"dense"`` or ``"diag"`` (NUTS, HMC);
        ``"isotropic"`` for Metropolis (one proposal scale).
    max_tree_depth : int or None
        NUTS's largest tree depth (a transition of :attr:`max_tree_steps` leapfrog steps
        reached it); ``None`` for HMC and Metropolis.
    start : str
        How warm-up started: ``"laplace"`` (:mod:`~pyrovae.posterior.inference.warm_start`)
        or ``"pyro's default (<why>)"``.
    """

    kernel: str
    samples: dict[str, torch.Tensor]
    acceptance_rate: torch.Tensor
    step_size: torch.Tensor
    divergences: torch.Tensor | None
    num_steps: torch.Tensor | None
    seconds: float
    ess: dict[str, torch.Tensor]
    r_hat: dict[str, torch.Tensor]
    diverging: torch.Tensor | None = None
    mass: str = "diag"
    max_tree_depth: int | None = None
    start: str = ""

    @property
    def max_tree_steps(self) -> int | None:
        """Leapfrog steps of a NUTS transition that reached :attr:`max_tree_depth`."""
        return None if self.max_tree_depth is None else max_tree_steps(self.max_tree_depth)

    @property
    def treedepth_hits(self) -> torch.Tensor | None:
        """``(chains,)`` int64, kept NUTS transitions that reached the maximum tree depth
        (as Stan counts them: the trajectory was doubled as often as allowed); ``None``
        for HMC and Metropolis."""
        if self.max_tree_steps is None or self.num_steps is None:
            return None
        return (self.num_steps >= self.max_tree_steps).sum(dim=1)

    @property
    def min_ess(self) -> float:
        """Smallest finite ESS over all sites and elements (NaN if there is none)."""
        if not self.ess:
            return math.nan
        values = torch.cat([v.reshape(-1) for v in self.ess.values()])
        values = values[torch.isfinite(values)]
        return float(values.min()) if values.numel() else math.nan

    @property
    def ess_per_second(self) -> float:
        """:attr:`min_ess` divided by :attr:`seconds`."""
        return self.min_ess / self.seconds if self.seconds > 0 else math.nan


class ChainResult(NamedTuple):
    """What :func:`run_chain` returns for one chain (shapes without the chain axis).

    Attributes
    ----------
    samples : dict of str to torch.Tensor
        Site name -> ``(draws, *site_shape)``, latent and deterministic sites.
    acceptance_rate, step_size : float
        As in :class:`McmcResult`, for this chain.
    divergences : int or None
        Divergent kept draws (NUTS, HMC) or ``None``.
    num_steps : torch.Tensor or None
        ``(draws,)`` int64 leapfrog steps per kept draw (NUTS, HMC) or ``None``.
    seconds : float
        Wall time of ``MCMC.run`` for this chain.
    diverging : torch.Tensor or None
        ``(draws,)`` bool, which kept draws diverged (NUTS, HMC) or ``None``.
    """

    samples: dict[str, torch.Tensor]
    acceptance_rate: float
    step_size: float
    divergences: int | None
    num_steps: torch.Tensor | None
    seconds: float
    diverging: torch.Tensor | None = None


class _CountingNUTS(LaplaceMass, NUTS):
    """NUTS that counts the leapfrog steps of each transition in ``leapfrog_steps``.

    Every leaf of the NUTS doubling tree is one call of ``_build_basetree``, which takes
    exactly one leapfrog step; the step-size search of warm-up does not go through it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leapfrog_steps = 0

    def sample(self, params):
        self.leapfrog_steps = 0
        return super().sample(params)

    def _build_basetree(self, *args, **kwargs):
        self.leapfrog_steps += 1
        return super()._build_basetree(*args, **kwargs)


class _LaplaceHMC(LaplaceMass, HMC):
    """Pyro's HMC whose first inverse mass matrix may come from a Laplace approximation."""


class _RandomWalk(RandomWalkKernel):
    """Pyro's ``RandomWalkKernel`` with ``init_strategy`` and ``max_plate_nesting``.

    Pyro's kernel already adapts its proposal scale during warm-up (a Robbins-Monro
    step on the log scale, gain ``max(0.001, 0.1 / sqrt(1 + t))``, towards
    ``target_accept_prob``); this subclass only forwards the two model-initialisation
    options that Pyro's ``setup`` does not take. ``setup`` mirrors Pyro 1.9.2's.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        target_accept_prob: float,
        init_strategy: Callable[..., Any] | None,
        max_plate_nesting: int | None,
    ) -> None:
        super().__init__(
            model,
            init_step_size=float(METROPOLIS_INIT_SCALE),
            target_accept_prob=float(target_accept_prob),
        )
        self._init_options: dict[str, Any] = {"max_plate_nesting": max_plate_nesting}
        if init_strategy is not None:
            self._init_options["init_strategy"] = init_strategy

    def setup(self, warmup_steps, *args, **kwargs):
        self._warmup_steps = warmup_steps
        (
            self._initial_params,
            self.potential_fn,
            self.transforms,
            self._prototype_trace,
        ) = initialize_model(self.model, model_args=args, model_kwargs=kwargs, **self._init_options)
        self._energy_last = self.potential_fn(self._initial_params)

    @property
    def step_size(self) -> float:
        """Current proposal scale (standard deviation of the Gaussian step)."""
        return math.exp(self._log_step_size)


def build_kernel(
    model: Callable[..., Any],
    kernel: str = "nuts",
    *,
    jit_compile: bool = False,
    target_accept_prob: float | None = None,
    init_strategy: Callable[..., Any] | None = None,
    max_plate_nesting: int | None = None,
    full_mass: bool = False,
    max_tree_depth: int = MAX_TREE_DEPTH,
    initial_inverse_mass: dict[str, torch.Tensor] | None = None,
) -> MCMCKernel:
    """Build a fresh, unadapted Pyro kernel.

    Parameters
    ----------
    model : callable
        Pyro model; its keyword arguments are given later to ``MCMC.run``.
    kernel : {"nuts", "hmc", "metropolis"}
        Which sampler. Metropolis is an isotropic Gaussian random walk in the
        unconstrained space starting at scale :data:`METROPOLIS_INIT_SCALE`.
    jit_compile : bool
        Trace the potential energy with the PyTorch JIT (NUTS/HMC only, JIT warnings
        ignored); ignored for Metropolis.
    target_accept_prob : float, optional
        Adaptation target; default 0.8 for NUTS/HMC and 0.234 for Metropolis.
    init_strategy : callable, optional
        Per-site initialisation (``pyro.infer.autoguide.initialization``); default
        Pyro's ``init_to_uniform``.
    max_plate_nesting : int, optional
        Passed to Pyro's model initialisation; inferred when ``None``.
    full_mass : bool
        Adapt a dense mass matrix in warm-up instead of a diagonal one (NUTS/HMC).
    max_tree_depth : int
        NUTS's largest tree depth (ignored by HMC and Metropolis).
    initial_inverse_mass : dict, optional
        ``{"dense": (D, D), "diag": (D,)}``: the inverse mass matrix warm-up starts from
        (:attr:`~pyrovae.posterior.inference.warm_start.WarmStart.covariance`) instead of
        the identity (NUTS/HMC).

    Returns
    -------
    pyro.infer.mcmc.mcmc_kernel.MCMCKernel
        A kernel for one chain; do not reuse it for another chain.
    """
    target = _DEFAULT_TARGET_ACCEPT[kernel] if target_accept_prob is None else target_accept_prob
    if kernel == "metropolis":
        return _RandomWalk(
            model,
            target_accept_prob=target,
            init_strategy=init_strategy,
            max_plate_nesting=max_plate_nesting,
        )
    options: dict[str, Any] = {
        "jit_compile": jit_compile,
        "ignore_jit_warnings": True,
        "target_accept_prob": target,
        "max_plate_nesting": max_plate_nesting,
        "full_mass": full_mass,
    }
    if init_strategy is not None:
        options["init_strategy"] = init_strategy
    built = (
        _CountingNUTS(model, max_tree_depth=max_tree_depth, **options)
        if kernel == "nuts"
        else _LaplaceHMC(model, **options)
    )
    built.initial_inverse_mass = initial_inverse_mass
    return built


class _Recorder:
    """``hook_fn`` of :class:`~pyro.infer.MCMC`: collects per-chain diagnostics.

    Called after every warm-up and sampling iteration; reads the kernel's state after
    each kept draw, before Pyro's ``cleanup`` resets it at the end of the run.
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.num_steps: list[int] = []
        self.acceptance_rate = math.nan
        self.step_size = math.nan
        self.divergences: int | None = None
        self.diverging: torch.Tensor | None = None

    def __call__(self, kernel: HMC | _RandomWalk, params: Any, stage: str, i: int) -> None:
        deadline.check()  # every iteration, warm-up included
        if not stage.startswith("Sample"):
            return
        steps = _leapfrog_steps(kernel)
        if steps is not None:
            self.num_steps.append(steps)
        if i == self.num_samples - 1:
            self.acceptance_rate = float(kernel._mean_accept_prob)
            self.step_size = float(kernel.step_size)
            divergences = kernel.diagnostics().get("divergences")
            if divergences is not None:
                self.divergences = len(divergences)
                self.diverging = torch.zeros(self.num_samples, dtype=torch.bool)
                self.diverging[torch.as_tensor(list(divergences), dtype=torch.int64)] = True


def _leapfrog_steps(kernel: MCMCKernel) -> int | None:
    """Leapfrog steps of the transition just made, or ``None`` for Metropolis."""
    if isinstance(kernel, _CountingNUTS):
        return kernel.leapfrog_steps
    if isinstance(kernel, HMC):
        return kernel.num_steps
    return None


def run_chain(
    model: Callable[..., Any],
    mcmc_kernel: MCMCKernel,
    model_kwargs: dict[str, Any],
    *,
    num_samples: int,
    warmup_steps: int,
    seed: int,
    deterministic_shapes: dict[str, torch.Size] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Run one chain with a fresh kernel and collect its draws and diagnostics.

    Parameters
    ----------
    model : callable
        The model ``mcmc_kernel`` was built on (used for the deterministic sites).
    mcmc_kernel : MCMCKernel
        Fresh kernel from :func:`build_kernel`.
    model_kwargs : dict
        Keyword arguments of the model.
    num_samples, warmup_steps : int
        Kept draws and warm-up iterations.
    seed : int
        Passed to ``pyro.set_rng_seed`` before the chain starts.
    deterministic_shapes : dict of str to torch.Size, optional
        Deterministic site name -> shape of one draw; these sites are recomputed from
        the draws with :class:`~pyro.infer.Predictive`.
    progress : bool
        Show Pyro's progress bar.

    Returns
    -------
    ChainResult
        Samples ``(draws, *site_shape)`` and this chain's diagnostics.
    """
    pyro.set_rng_seed(seed)
    recorder = _Recorder(num_samples)
    mcmc = MCMC(
        mcmc_kernel,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=1,
        hook_fn=recorder,
        disable_progbar=not progress,
    )
    start = time.perf_counter()
    mcmc.run(**model_kwargs)
    seconds = time.perf_counter() - start
    samples = dict(mcmc.get_samples())
    if deterministic_shapes:
        samples.update(_deterministic_draws(model, model_kwargs, samples, deterministic_shapes))
    num_steps = torch.tensor(recorder.num_steps, dtype=torch.int64) if recorder.num_steps else None
    return ChainResult(
        samples=samples,
        acceptance_rate=recorder.acceptance_rate,
        step_size=recorder.step_size,
        divergences=recorder.divergences,
        num_steps=num_steps,
        seconds=seconds,
        diverging=recorder.diverging,
    )


def _deterministic_shapes(
    model: Callable[..., Any], model_kwargs: dict[str, Any]
) -> dict[str, torch.Size]:
    """Names and per-draw shapes of the model's ``pyro.deterministic`` sites (one prior run)."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(**model_kwargs)
    shapes = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        infer, value = site["infer"], site["value"]
        assert infer is not None and value is not None
        if infer.get("_deterministic", False):
            shapes[name] = value.shape
    return shapes


def _deterministic_draws(
    model: Callable[..., Any],
    model_kwargs: dict[str, Any],
    latent: dict[str, torch.Tensor],
    shapes: dict[str, torch.Size],
) -> dict[str, torch.Tensor]:
    """Deterministic sites ``(draws, *site_shape)`` recomputed from latent draws.

    Predictive pads every site with singleton plate dimensions after the draw axis;
    the reshape to the site's own shape removes them.
    """
    predictive = Predictive(model, posterior_samples=latent, return_sites=list(shapes))
    out = predictive(**model_kwargs)
    draws = next(iter(latent.values())).shape[0]
    return {name: out[name].reshape((draws, *shape)) for name, shape in shapes.items()}


def unconstrained_size(model: Callable[..., Any], model_kwargs: dict[str, Any]) -> int:
    """Number of unconstrained values the samplers move: the sizes of
    :func:`~pyrovae.posterior.inference.warm_start.latent_shapes`, summed."""
    return sum(shape.numel() for shape, _ in latent_shapes(model, model_kwargs).values())


def resolve_mass(mass: str, size: int) -> str:
    """``"dense"`` or ``"diag"`` for ``mass`` in :data:`MASS` and ``size`` unconstrained
    values (``"auto"``: dense up to :data:`DENSE_MASS_MAX_DIM`)."""
    if mass == "auto":
        return "dense" if size <= DENSE_MASS_MAX_DIM else "diag"
    return mass


def _site_diagnostics(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ArviZ's bulk ESS and rank-normalised R-hat, each ``site_shape`` float64.

    Parameters
    ----------
    draws : torch.Tensor
        ``(chains, draws, *site_shape)``; any site shape, e.g. a local plate's ``(N, L)``,
        goes to ArviZ in one call per diagnostic.

    Returns
    -------
    tuple of torch.Tensor
        ``(ess, r_hat)``, see :attr:`McmcResult.ess` and :attr:`McmcResult.r_hat`.
    """
    chains, num_draws, *shape = draws.shape
    nan = torch.full(shape, math.nan, dtype=torch.float64)
    if num_draws < _MIN_DRAWS_FOR_DIAGNOSTICS:
        return nan, nan.clone()
    x = draws.detach().to(torch.float64).cpu().numpy()
    constant = torch.as_tensor(np.asarray(np.all(x == x[:1, :1], axis=(0, 1))))
    ess = _arviz_diagnostic(x, "ess").masked_fill(constant, math.nan)
    if chains < _MIN_CHAINS_FOR_RHAT:
        return ess, nan
    return ess, _arviz_diagnostic(x, "rhat").masked_fill(constant, math.nan)


def _arviz_diagnostic(x: np.ndarray, which: str) -> torch.Tensor:
    """``arviz.ess(method="bulk")`` or ``arviz.rhat`` of ``x`` ``(chains, draws, *shape)``,
    as a ``shape`` float64 tensor (``x`` is one variable of an ArviZ dataset)."""
    import arviz as az  # imported here: slow to import, and only the diagnostics need it

    dataset = az.convert_to_dataset({"x": x})
    # a chain that never moved has zero within-chain variance: ArviZ's division gives inf
    # or NaN, which is the answer, not a reason to warn
    with np.errstate(divide="ignore", invalid="ignore"):
        result = az.ess(dataset, method="bulk") if which == "ess" else az.rhat(dataset)
    return torch.as_tensor(np.asarray(result["x"].values, dtype=np.float64))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _validate(
    model: Any,
    model_kwargs: Any,
    kernel: Any,
    num_samples: Any,
    warmup_steps: Any,
    num_chains: Any,
    seed: Any,
    target_accept_prob: Any,
    max_plate_nesting: Any,
    mass: Any = "auto",
) -> None:
    """Raise :class:`~pyrovae.errors.UserError` on the first bad argument of run_mcmc."""
    if not callable(model):
        raise UserError(f"model must be a callable Pyro model, got {type(model).__name__}")
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise UserError(f"model_kwargs must be a dict or None, got {type(model_kwargs).__name__}")
    if kernel not in KERNELS:
        raise UserError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    _check_int("num_samples", num_samples, 1)
    _check_int("warmup_steps", warmup_steps, 0)
    _check_int("num_chains", num_chains, 1)
    _check_int("seed", seed, 0)
    if target_accept_prob is not None and not (
        isinstance(target_accept_prob, int | float)
        and not isinstance(target_accept_prob, bool)
        and 0.0 < target_accept_prob < 1.0
    ):
        raise UserError(
            f"target_accept_prob must be a number in (0, 1) or None, got {target_accept_prob!r}"
        )
    if max_plate_nesting is not None:
        _check_int("max_plate_nesting", max_plate_nesting, 0)
    if mass not in MASS:
        raise UserError(f"mass must be one of {', '.join(MASS)}; got {mass!r}")


def run_mcmc(
    model: Callable[..., Any],
    model_kwargs: dict[str, Any] | None = None,
    *,
    kernel: str = "nuts",
    num_samples: int = 1000,
    warmup_steps: int = 1000,
    num_chains: int = 4,
    seed: int = 0,
    jit_compile: bool = False,
    target_accept_prob: float | None = None,
    init_strategy: Callable[..., Any] | None = None,
    max_plate_nesting: int | None = None,
    progress: bool = False,
    mass: str = "auto",
    laplace_start: bool = True,
    max_tree_depth: int = MAX_TREE_DEPTH,
    workers: int = 1,
) -> McmcResult:
    """Sample a Pyro model's posterior with NUTS, HMC or Metropolis; chains run in sequence
    or in parallel processes, with the same draws.

    Parameters
    ----------
    model : callable
        Pyro model with continuous latent sites, called as ``model(**model_kwargs)``.
    model_kwargs : dict, optional
        Keyword arguments of the model (data, observations).
    kernel : {"nuts", "hmc", "metropolis"}
        Sampler; see :func:`build_kernel`.
    num_samples : int
        Kept draws per chain, >= 1 (ESS and R-hat need >= 4, R-hat two chains, else NaN).
    warmup_steps : int
        Warm-up (adaptation) iterations per chain, >= 0; discarded.
    num_chains : int
        Chains, >= 1; chain ``c`` uses ``pyro.set_rng_seed(seed + c)``.
    seed : int
        Base seed, >= 0. Same arguments and seed give identical samples.
    jit_compile : bool
        JIT the potential energy (NUTS/HMC; ignored for Metropolis).
    target_accept_prob : float, optional
        Adaptation target in (0, 1); default 0.8 (NUTS/HMC) or 0.234 (Metropolis).
    init_strategy : callable, optional
        Pyro initialisation strategy; default ``init_to_uniform``.
    max_plate_nesting : int, optional
        Passed to Pyro's model initialisation.
    progress : bool
        Show Pyro's progress bar per chain.
    mass : {"auto", "dense", "diag"}
        Mass matrix NUTS/HMC adapt in warm-up (see :data:`MASS`); ignored by Metropolis.
    laplace_start : bool
        NUTS/HMC: start warm-up from the Laplace approximation's covariance as inverse
        mass matrix and each chain at a draw of it
        (:mod:`~pyrovae.posterior.inference.warm_start`; a given ``init_strategy`` wins
        for the points). Without a Laplace approximation, Pyro's own start.
    max_tree_depth : int
        NUTS's cap on the doublings of a trajectory (default :data:`MAX_TREE_DEPTH`).
    workers : int
        Processes running chains at once: 1 (default) in sequence in this process, 0 as
        many as this process has cores, at most one per chain. The draws do not depend
        on it; the model, its arguments and ``init_strategy`` must pickle for more than
        one, else the chains run in sequence.

    Returns
    -------
    McmcResult
        Samples ``(chains, draws, *site_shape)`` and diagnostics.

    Raises
    ------
    pyrovae.errors.UserError
        If an argument is out of range.
    """
    _validate(
        model,
        model_kwargs,
        kernel,
        num_samples,
        warmup_steps,
        num_chains,
        seed,
        target_accept_prob,
        max_plate_nesting,
        mass,
    )
    _check_int("max_tree_depth", max_tree_depth, 1)
    model_kwargs = dict(model_kwargs or {})
    deterministic = _deterministic_shapes(model, model_kwargs)
    if kernel == "metropolis":
        mass = "isotropic"
    else:
        mass = resolve_mass(mass, unconstrained_size(model, model_kwargs))
    start = _start(model, model_kwargs, kernel, laplace_start, init_strategy, seed)
    jobs = []
    for c in range(num_chains):
        options = {
            "jit_compile": jit_compile,
            "target_accept_prob": target_accept_prob,
            "init_strategy": init_strategy or start.init_strategy(seed + c),
            "max_plate_nesting": max_plate_nesting,
            "full_mass": mass == "dense",
            "initial_inverse_mass": start.covariance or None,
            "max_tree_depth": max_tree_depth,
        }
        chain = {
            "num_samples": num_samples,
            "warmup_steps": warmup_steps,
            "seed": seed + c,
            "deterministic_shapes": deterministic,
            "progress": progress,
        }
        jobs.append(ChainJob(_build_and_run, (model, kernel, options, model_kwargs), chain))
    processes = resolve_workers(workers, num_chains)
    if processes > 1 and picklable(jobs):
        chains = run_in_processes(jobs, processes)
    else:
        chains = [job.run(*job.args, **job.kwargs) for job in jobs]
    return _combine(kernel, chains)._replace(
        mass=mass,
        max_tree_depth=max_tree_depth if kernel == "nuts" else None,
        start="laplace" if start.ok else f"pyro's default ({start.reason})",
    )


def _build_and_run(
    model: Callable[..., Any],
    kernel: str,
    options: dict[str, Any],
    model_kwargs: dict[str, Any],
    **chain: Any,
) -> ChainResult:
    """One chain: a fresh kernel from :func:`build_kernel` and :func:`run_chain`."""
    return run_chain(model, build_kernel(model, kernel, **options), model_kwargs, **chain)


def _start(
    model: Callable[..., Any],
    model_kwargs: dict[str, Any],
    kernel: str,
    laplace_start: bool,
    init_strategy: Callable[..., Any] | None,
    seed: int,
) -> WarmStart:
    """The Laplace warm start of NUTS/HMC, or an empty one saying why there is none."""
    if kernel == "metropolis":
        reason = "Metropolis adapts one proposal scale"
    elif not laplace_start:
        reason = "laplace_start=False"
    else:
        return warm_start(model, model_kwargs, seed=seed)
    return WarmStart.none(reason)


def _combine(kernel: str, chains: list[ChainResult]) -> McmcResult:
    """Stack per-chain results along a new leading chain axis and add ArviZ's bulk ESS and
    R-hat."""
    samples = {name: torch.stack([ch.samples[name] for ch in chains]) for name in chains[0].samples}
    diagnostics = {name: _site_diagnostics(x) for name, x in samples.items()}
    has_divergences = chains[0].divergences is not None
    has_steps = chains[0].num_steps is not None
    num_steps = [ch.num_steps for ch in chains if ch.num_steps is not None]
    diverging = [ch.diverging for ch in chains if ch.diverging is not None]
    return McmcResult(
        kernel=kernel,
        samples=samples,
        acceptance_rate=torch.tensor([ch.acceptance_rate for ch in chains], dtype=torch.float64),
        step_size=torch.tensor([ch.step_size for ch in chains], dtype=torch.float64),
        divergences=(
            torch.tensor([ch.divergences for ch in chains], dtype=torch.int64)
            if has_divergences
            else None
        ),
        num_steps=torch.stack(num_steps) if has_steps else None,
        seconds=sum(ch.seconds for ch in chains),
        ess={name: ess for name, (ess, _) in diagnostics.items()},
        r_hat={name: r_hat for name, (_, r_hat) in diagnostics.items()},
        diverging=torch.stack(diverging) if len(diverging) == len(chains) else None,
    )
