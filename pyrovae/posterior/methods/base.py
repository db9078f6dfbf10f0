"""What a comparison method is: the :class:`Method` protocol, its :class:`Budget`, and
the helpers every method uses to hand its draws to ArviZ.

A method runs on a target (:class:`~pyrovae.posterior.targets.zoo.ZooModel`) with a
seed and a budget and returns a :class:`~pyrovae.posterior.compare.MethodResult`:
its draws ``(S, P)`` in the target's parameter order, what it reports about itself
(ESS, k-hat, ELBO, seconds) and its InferenceData.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypedDict, runtime_checkable

import numpy as np
import torch

from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.inference.pointwise import Pointwise
from pyrovae.posterior.targets.zoo import ZooModel, flatten

__all__ = ["Budget", "ConverterGroups", "Method", "converter_groups", "flat_chains"]


class Budget(NamedTuple):
    """How much a method may spend."""

    draws: int = 4000
    """Posterior draws it returns (MCMC: over all chains)."""
    restarts: int = 3
    """Fits from different seeds, for methods whose answer depends on the start
    (the variational fits' k-hat is the worst over them); others ignore it."""
    warmup: int | None = None
    """MCMC warm-up steps per chain; ``None``: the method's own default. Others ignore it."""
    chains: int | None = None
    """MCMC chains; ``None``: the method's own (:attr:`Method.chains`). Others ignore it.
    (Simulation-based calibration runs one short chain per fit.)"""
    mass: str = "auto"
    """NUTS/HMC mass matrix, one of :data:`~pyrovae.posterior.inference.mcmc.MASS`
    (``--mass``). Others ignore it."""
    chain_workers: int = 1
    """Processes running MCMC chains at once (``--chain-workers``; 0: the cores); the
    draws do not depend on it. Others ignore it."""


@runtime_checkable
class Method(Protocol):
    """A comparison method, registered by :attr:`name` in
    :data:`pyrovae.posterior.methods.METHODS`."""

    @property
    def name(self) -> str:
        """Shown in tables, legends and file names; what ``--methods`` takes."""

    @property
    def family(self) -> str:
        """``"mcmc"`` or ``"variational"``: how the tables read its diagnostics."""

    @property
    def chains(self) -> int:
        """Chains its draws come in (1 for independent draws)."""

    def run(
        self,
        target: ZooModel,
        *,
        seed: int,
        budget: Budget,
        progress: bool = False,
        predictive: bool = False,
    ) -> MethodResult:
        """Draws of ``target``'s posterior with the method's own diagnostics and
        InferenceData (``posterior_predictive`` too if ``predictive``)."""


def flat_chains(samples: dict[str, torch.Tensor], model: ZooModel) -> np.ndarray:
    """MCMC samples site -> ``(chains, draws, *shape)`` as ``(chains * draws, P)`` columns."""
    flat = flatten(samples, model.parameters, batch_ndim=2)
    return flat.reshape(-1, flat.shape[-1])


class ConverterGroups(TypedDict):
    """What :func:`converter_groups` gives: keyword arguments of the converters."""

    log_likelihood: dict[str, np.ndarray]
    posterior_predictive: dict[str, np.ndarray]
    observed_data: dict[str, np.ndarray]


def converter_groups(pw: Pointwise, chains: int | None = None) -> ConverterGroups:
    """Keyword arguments of the :mod:`~pyrovae.posterior.diagnostics` converters from a
    :class:`Pointwise`; ``chains``: reshape ``(S, ...)`` to ``(chains, S // chains, ...)``."""

    def split(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if chains is None:
            return arrays
        return {k: a.reshape(chains, -1, *a.shape[1:]) for k, a in arrays.items()}

    return ConverterGroups(
        log_likelihood=split(pw.log_likelihood),
        posterior_predictive=split(pw.posterior_predictive),
        observed_data=pw.observed_data,
    )
