"""MCMC as comparison methods: NUTS, HMC and adaptive random-walk Metropolis.

One :class:`McmcMethod` per kernel of :func:`~pyrovae.posterior.inference.mcmc.run_mcmc`,
:data:`MCMC_CHAINS` chains run one after the other; the draws keep their chains and
sample_stats in the InferenceData (:func:`mcmc_posterior`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyrovae.posterior import diagnostics
from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.inference.mcmc import METROPOLIS_EXTRA, McmcResult, run_mcmc
from pyrovae.posterior.inference.pointwise import pointwise
from pyrovae.posterior.inference.sampler_notes import sampler_notes
from pyrovae.posterior.methods.base import Budget, converter_groups, flat_chains
from pyrovae.posterior.targets.zoo import ZooModel, flatten

if TYPE_CHECKING:
    import arviz as az

__all__ = ["HMC", "MCMC_CHAINS", "METROPOLIS", "NUTS", "McmcMethod", "mcmc_posterior"]

MCMC_CHAINS = 4
"""Chains of every MCMC method and of a long-NUTS reference (run one after the other)."""


def mcmc_posterior(
    model: ZooModel, result: McmcResult, method: str, *, predictive: bool = False, seed: int = 0
) -> az.InferenceData:
    """An MCMC run on ``model`` as InferenceData with every group it can have.

    Posterior (the reported sites ``model.parameters``), sample_stats (acceptance,
    step size, tree size, divergences), the pointwise log-likelihood and observed data
    of the observed sites, and ``posterior_predictive`` if ``predictive``.
    """
    first = next(iter(result.samples.values()))
    chains, draws = first.shape[:2]
    latent = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in result.samples.items()}
    pw = pointwise(model.model, model.data, latent, predictive=predictive, seed=seed)
    return diagnostics.from_mcmc(
        result, method=method, parameters=model.parameters, **converter_groups(pw, chains)
    )


@dataclass(frozen=True)
class McmcMethod:
    """One MCMC kernel as a :class:`~pyrovae.posterior.methods.base.Method`.

    ``steps_factor``: warm-up and draws are this many times the budget's (a random walk
    is cheap per step but slow to adapt and to mix), so Metropolis returns 4x the draws.
    """

    name: str
    steps_factor: int = 1
    chains: int = MCMC_CHAINS
    family: str = "mcmc"

    def run(
        self,
        target: ZooModel,
        *,
        seed: int,
        budget: Budget,
        progress: bool = False,
        predictive: bool = False,
    ) -> MethodResult:
        """``budget.draws * steps_factor`` draws over :attr:`chains` chains; warm-up of at least
        500 steps a chain (times ``steps_factor``); ``budget.warmup`` and ``budget.chains``
        override the warm-up and the chains when given."""
        chains = budget.chains or self.chains
        per_chain = max(1, budget.draws // chains)
        warmup = max(500, per_chain) if budget.warmup is None else budget.warmup
        result = run_mcmc(
            target.model,
            target.data,
            kernel=self.name,
            num_samples=per_chain * self.steps_factor,
            warmup_steps=warmup * self.steps_factor,
            num_chains=chains,
            seed=seed,
            progress=progress,
            mass=budget.mass,
            workers=budget.chain_workers,
        )
        ess = flatten({k: v.unsqueeze(0) for k, v in result.ess.items()}, target.parameters)[0]
        posterior = mcmc_posterior(target, result, self.name, predictive=predictive, seed=seed)
        return MethodResult(
            self.name,
            flat_chains(result.samples, target),
            seconds=result.seconds,
            ess=ess,
            posterior=posterior,
            sampler=sampler_notes(result),
        )


NUTS = McmcMethod("nuts")
HMC = McmcMethod("hmc")
METROPOLIS = McmcMethod("metropolis", steps_factor=METROPOLIS_EXTRA)
