"""Pyro's autoguides as comparison methods: mean-field, full-rank, low-rank and IAF.

Each :class:`AutoguideMethod` fits its guide ``budget.restarts`` times from different
seeds (:func:`~pyrovae.posterior.inference.variational.fit_guide`, stopped on
convergence); k-hat is the worst over the fits, and the first fit's draws are the
method's posterior, with ``lp`` and ``log_q`` per draw for importance-corrected LOO,
and how that fit converged (:class:`~pyrovae.posterior.inference.variational.Convergence`,
with the count of the fits that converged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyrovae.posterior import diagnostics
from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.distances import psis_khat
from pyrovae.posterior.inference.draws import GuideDraws, guide_draws, importance_log_ratios
from pyrovae.posterior.inference.pointwise import model_sites, pointwise
from pyrovae.posterior.inference.variational import VariationalResult, convergence, fit_guide
from pyrovae.posterior.methods.base import Budget, converter_groups
from pyrovae.posterior.targets.zoo import ZooModel, flatten

__all__ = [
    "AUTO_IAF",
    "AUTO_LOWRANK_MVN",
    "AUTO_MVN",
    "AUTO_NORMAL",
    "AutoguideMethod",
]


@dataclass(frozen=True)
class AutoguideMethod:
    """One autoguide of :data:`~pyrovae.posterior.inference.variational.GUIDES` as a
    :class:`~pyrovae.posterior.methods.base.Method`."""

    name: str
    chains: int = 1
    family: str = "variational"

    def run(
        self,
        target: ZooModel,
        *,
        seed: int,
        budget: Budget,
        progress: bool = False,
        predictive: bool = False,
    ) -> MethodResult:
        """Fit ``budget.restarts`` times (seeds ``seed``, ``seed + 1``, ...) for k-hat, then
        ``budget.draws`` draws of the first fit."""
        model, data = target.model, target.data
        latent = model_sites(model, data).latent
        sites = list(dict.fromkeys([*target.parameters, *latent]))
        khats, fits = [], []
        first: tuple[GuideDraws, VariationalResult] | None = None
        for offset in range(budget.restarts):
            fit = fit_guide(model, data, self.name, seed=seed + offset, progress=progress)
            fits.append(fit)
            if first is None:
                draws = guide_draws(model, fit.guide, data, sites, budget.draws, seed)
                log_ratios = draws.log_ratios
                first = (draws, fit)
            else:
                log_ratios = importance_log_ratios(
                    model, fit.guide, data, budget.draws, seed=seed + offset
                )
            khats.append(psis_khat(log_ratios))
        assert first is not None  # budget.restarts >= 1
        draws, fit = first
        fitted = convergence(fits)
        ratios = draws.log_ratios
        top = ratios.max()
        evidence = float(top + np.log(np.mean(np.exp(ratios - top))))
        pw = pointwise(model, data, draws.samples, predictive=predictive, seed=seed)
        posterior = diagnostics.from_samples(
            draws.samples,
            method=self.name,
            parameters=target.parameters,
            khat=max(khats),
            khats=khats,
            elbo=fit.elbo,
            seconds=fit.seconds,
            sample_stats={"lp": draws.log_joint, "log_q": draws.log_q},
            fit=fitted.attrs(),
            **converter_groups(pw),
        )
        return MethodResult(
            self.name,
            flatten(draws.samples, target.parameters),
            seconds=fit.seconds,
            khat=max(khats),
            khats=tuple(khats),
            elbo=fit.elbo,
            log_evidence_estimate=evidence,
            posterior=posterior,
            convergence=fitted,
        )


AUTO_NORMAL = AutoguideMethod("auto_normal")
AUTO_MVN = AutoguideMethod("auto_mvn")
AUTO_LOWRANK_MVN = AutoguideMethod("auto_lowrank_mvn")
AUTO_IAF = AutoguideMethod("auto_iaf")
