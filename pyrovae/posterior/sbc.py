"""Simulation-based calibration of the comparison methods on one model.

Each replication draws the parameters from the prior and the data from the model
(:func:`simulate`: the model run under ``poutine.uncondition``), fits every method to the
simulated data through the method registry, keeps ``L`` of its draws and ranks the true
value of every reported parameter among them (:func:`model_sbc`). The ranks are uniform
on ``0..L`` for a method whose posterior is exact; :mod:`pyrovae.stats.ranks` tests them.

- Deterministic reported sites (eight schools' ``theta``) take their true value from the
  simulated trace like the sampled ones.
- MCMC methods run :data:`SBC_CHAINS` chain of :data:`SBC_WARMUP` warm-up steps and
  ``thin * L`` draws, thinned evenly to ``L`` so that the kept draws are nearly
  independent (autocorrelated draws make the ranks non-uniform even for a correct
  sampler); each fit's smallest ESS is kept to check this. Variational draws are
  independent and are not thinned.
- A model whose prior cannot be sampled (an improper ``ImproperUniform`` or flat site)
  is refused with one line naming the site: SBC needs a proper prior.
- Seeds: replication ``i`` simulates and fits with two seeds drawn from
  ``numpy.random.default_rng(seed)``, so that no fit replays the random numbers that
  made its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from tqdm.auto import tqdm

from pyrovae.errors import UserError
from pyrovae.posterior.methods import Budget, Method, get_method
from pyrovae.posterior.run import failure_reason
from pyrovae.posterior.targets.precision import default_dtype, with_dtype
from pyrovae.posterior.targets.zoo import ZooModel, flatten, parameter_names
from pyrovae.stats.ranks import MIN_REPLICATIONS, MethodRanks, rank_of

__all__ = [
    "MCMC_THIN",
    "SBC_CHAINS",
    "SBC_WARMUP",
    "ModelSbc",
    "Simulation",
    "check_proper_prior",
    "model_sbc",
    "simulate",
    "thin_evenly",
]

SBC_WARMUP = 200
"""MCMC warm-up steps per fit: enough for NUTS's step size and diagonal mass matrix on
the zoo's small models (Pyro's adaptation windows fit in 200 steps); the SBC ranks show
it where it is not."""

SBC_CHAINS = 1
"""MCMC chains per fit: warm-up is paid per chain, and SBC itself checks the sampler."""

MCMC_THIN = 3
"""MCMC fits draw this many times ``L`` and keep every ``MCMC_THIN``-th (evenly spaced):
Pyro's NUTS gets an ESS of about 0.4 per draw on a one-dimensional Gaussian (its trajectories
stop after 2-3 leapfrog steps), so the kept draws of ``normal_normal`` are about independent."""


class Simulation(NamedTuple):
    """One SBC replication's data and truth."""

    target: ZooModel
    """The model conditioned on the simulated observations (no exact posterior)."""
    truth: np.ndarray
    """``(P,)`` the parameters that made them, in :func:`parameter_names` order."""


class ModelSbc(NamedTuple):
    """SBC of several methods on one model.

    Attributes
    ----------
    model : str
        The model's name.
    ranks : tuple of MethodRanks
        Per method, ``(N_m, P)`` ranks of the replications it fitted (N_m = N less its
        failed fits).
    seconds : dict of str to ndarray
        Per method, ``(N_m,)`` wall time of each fit.
    min_ess : dict of str to ndarray
        Per method, ``(N_m,)`` smallest ESS over the parameters of each MCMC fit's
        ``MCMC_THIN * L`` draws (NaN for variational methods).
    failed : dict of str to tuple of str
        Per method, ``"replication i: reason"`` for each fit that raised.
    replications : int
        N.
    """

    model: str
    ranks: tuple[MethodRanks, ...]
    seconds: dict[str, np.ndarray]
    min_ess: dict[str, np.ndarray]
    failed: dict[str, tuple[str, ...]]
    replications: int


def _improper(fn: Any) -> bool:
    """An ``ImproperUniform`` (or a subclass, e.g. a flat prior) under any wrappers."""
    while fn is not None:
        if isinstance(fn, dist.ImproperUniform):
            return True
        fn = getattr(fn, "base_dist", None)
    return False


class _ImproperPrior(Exception):
    """Raised inside the model at an improper site; :func:`_trace` turns it into one line."""


class _ProperPrior(Messenger):
    """Stops at an unobserved site with an improper prior; remembers the last site."""

    def __init__(self) -> None:
        super().__init__()
        self.site: str | None = None
        self.improper: str | None = None

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        self.site = msg["name"]
        if not msg["is_observed"] and _improper(msg["fn"]):
            self.improper = f"an improper {type(msg['fn']).__name__}"
            raise _ImproperPrior(msg["name"])


def _refusal(model: str, site: str | None, what: str) -> UserError:
    return UserError(
        f"SBC needs a proper prior to draw parameters from: site {site!r} of {model} has "
        f"{what} prior; give it a proper one (e.g. a wide Normal or HalfNormal)"
    )


def _trace(target: ZooModel) -> poutine.Trace:
    """The model run with every observed site sampled, its prior checked on the way."""
    checker = _ProperPrior()
    try:
        with torch.no_grad():
            model = poutine.uncondition(checker(target.model))
            return poutine.trace(model).get_trace(**target.data)
    except _ImproperPrior:
        assert checker.improper is not None
        raise _refusal(target.name, checker.site, checker.improper) from None
    except NotImplementedError:  # a distribution that cannot draw
        raise _refusal(target.name, checker.site, "a distribution without draws as") from None
    except Exception as err:  # the user's model: one line, never a traceback
        raise UserError(f"simulating from {target.name} failed: {failure_reason(err)}") from None


def check_proper_prior(target: ZooModel) -> None:
    """Raise :class:`UserError` naming the first latent site whose prior cannot be sampled."""
    _trace(target)


def simulate(target: ZooModel, seed: int) -> Simulation:
    """Parameters from the prior and data from the model, with the model conditioned on them.

    Returns
    -------
    Simulation
        ``target`` with its observed sites conditioned on the simulated values (the same
        parameters and data arguments; exact posterior, evidence and reference dropped),
        and the true flattened parameters ``(P,)``.
    """
    pyro.set_rng_seed(seed)
    trace = _trace(target)
    observed: dict[str, torch.Tensor] = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        infer, value = site["infer"], site["value"]
        assert infer is not None and value is not None
        if infer.get("was_observed") and not infer.get("_deterministic"):
            observed[name] = value
    values = {
        name: cast(torch.Tensor, trace.nodes[name]["value"]).unsqueeze(0)
        for name in target.parameters
    }
    truth = flatten(values, target.parameters)[0]
    conditioned = ZooModel(
        name=target.name,
        model=poutine.condition(target.model, data=observed),
        data=target.data,
        parameters=target.parameters,
        description=f"{target.name} on data simulated from its prior",
    )
    return Simulation(conditioned, truth)


def thin_evenly(draws: np.ndarray, keep: int) -> np.ndarray:
    """``keep`` evenly spaced rows of draws ``(S, P)`` (S >= keep): ``(keep, P)``."""
    if draws.shape[0] < keep:
        raise ValueError(f"cannot keep {keep} of {draws.shape[0]} draws")
    index = np.linspace(0, draws.shape[0] - 1, keep).round().astype(np.int64)
    return draws[index]


def _fit(
    method: Method, sim: Simulation, draws: int, seed: int, warmup: int
) -> tuple[np.ndarray, float, float]:
    """Kept draws ``(L, P)``, seconds and smallest ESS of one fit."""
    mcmc = method.family == "mcmc"
    budget = Budget(
        draws=draws * (MCMC_THIN if mcmc else 1),
        restarts=1,
        warmup=warmup if mcmc else None,
        chains=SBC_CHAINS if mcmc else None,
    )
    result = method.run(sim.target, seed=seed, budget=budget)
    ess = result.ess if result.ess is not None else np.array([np.nan])
    min_ess = float(np.min(ess)) if np.isfinite(ess).all() else float("nan")
    return thin_evenly(result.draws, draws), float(result.seconds), min_ess


def model_sbc(
    target: ZooModel,
    methods: Sequence[str],
    *,
    replications: int = 100,
    draws: int = 100,
    seed: int = 0,
    warmup: int = SBC_WARMUP,
    dtype: str = "float64",
    progress: bool = False,
) -> ModelSbc:
    """Simulation-based calibration of ``methods`` on ``target``.

    Parameters
    ----------
    target : ZooModel
        A model with a proper prior (its data arguments are kept; its observed sites
        are simulated).
    methods : sequence of str
        Registered method names.
    replications : int
        N, at least :data:`~pyrovae.stats.ranks.MIN_REPLICATIONS`.
    draws : int
        L, posterior draws kept per fit (ranks are ``0..L``).
    seed : int
        Seeds the replications' data, fits and tie-breaking.
    warmup : int
        MCMC warm-up steps per fit.
    dtype : {"float64", "float32"}
        Precision of the data and of the fits.
    progress : bool
        A progress bar over the replications.

    Raises
    ------
    UserError
        An unknown method, too few replications or draws, or an improper prior.
    """
    if replications < MIN_REPLICATIONS:
        raise UserError(f"--replications: SBC needs at least {MIN_REPLICATIONS}")
    if draws < 1 or warmup < 1:
        raise UserError("--samples and the warm-up must be positive")
    registered = [get_method(name) for name in methods]  # every name checked first
    names = tuple(parameter_names(target.parameters))
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=(replications, 2))
    tie_rng = np.random.default_rng([seed, 1])
    ranks: dict[str, list[np.ndarray]] = {m.name: [] for m in registered}
    seconds: dict[str, list[float]] = {m.name: [] for m in registered}
    ess: dict[str, list[float]] = {m.name: [] for m in registered}
    failed: dict[str, list[str]] = {m.name: [] for m in registered}
    with default_dtype(dtype):
        target = with_dtype(target, dtype)
        check_proper_prior(target)
        bar = tqdm(range(replications), desc=f"sbc {target.name}", disable=not progress)
        for i in bar:
            sim = simulate(target, int(seeds[i, 0]))
            for method in registered:
                bar.set_postfix_str(method.name)
                try:
                    kept, took, min_ess = _fit(method, sim, draws, int(seeds[i, 1]), warmup)
                except Exception as err:  # one failed fit does not lose the others
                    failed[method.name].append(f"replication {i}: {failure_reason(err)}")
                    continue
                ranks[method.name].append(rank_of(sim.truth, kept, tie_rng))
                seconds[method.name].append(took)
                ess[method.name].append(min_ess)
    return ModelSbc(
        model=target.name,
        ranks=tuple(
            MethodRanks(m, names, np.array(r, dtype=np.int64).reshape(-1, len(names)), draws)
            for m, r in ranks.items()
        ),
        seconds={m: np.asarray(v, dtype=np.float64) for m, v in seconds.items()},
        min_ess={m: np.asarray(v, dtype=np.float64) for m, v in ess.items()},
        failed={m: tuple(v) for m, v in failed.items()},
        replications=replications,
    )
