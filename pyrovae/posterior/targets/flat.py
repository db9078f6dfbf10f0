"""Improper flat priors as Stan programs leave them: :func:`flat` and :func:`flat_priors`.

A Stan parameter without a prior statement has a flat (improper) prior on its support,
e.g. ``real<lower=0> sigma;`` is flat on (0, inf). Pyro's
:class:`~pyro.distributions.ImproperUniform` has that density (log-density 0) but no
``sample``, and Pyro traces a model by running it, so a model that uses it cannot be
initialised by NUTS or the autoguides. :func:`flat` is the same distribution with a
``sample`` that returns one fixed feasible point (the image of zero under
``transform_to(support)``: 0 on the real line, 1 on (0, inf), the midpoint of an
interval), which is all that tracing and initialisation need. These are not prior
draws: the prior is improper, so anything that needs prior draws (simulation-based
calibration, prior predictive checks) refuses such a model.

:func:`flat_priors` wraps a model so that every ``ImproperUniform`` site it has is read
as :func:`flat`; the comparison applies it to user models, so a model translated from
Stan with ``dist.ImproperUniform`` works as written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import constraints, transform_to

__all__ = ["Flat", "flat", "flat_priors", "improper_sites"]


class Flat(dist.ImproperUniform):
    """``ImproperUniform`` whose ``sample`` gives a fixed feasible point.

    ``log_prob`` is zero as for ``ImproperUniform``; ``sample`` returns the image of
    zero under ``transform_to(support)`` with shape ``sample_shape + batch_shape +
    event_shape``, in the default dtype.
    """

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Flat, _instance)
        return super().expand(batch_shape, _instance=new)

    def sample(self, sample_shape=torch.Size()):  # noqa: B008 (torch's signature)
        return transform_to(self.support)(torch.zeros(self._extended_shape(sample_shape)))


def flat(
    support: constraints.Constraint = constraints.real, event_shape: Sequence[int] = ()
) -> Flat:
    """Stan's implicit prior: flat on ``support``, usable as a ``pyro.sample`` distribution.

    Parameters
    ----------
    support : torch.distributions.constraints.Constraint
        Where the parameter lives: ``constraints.real`` (``real beta;``),
        ``constraints.positive`` (``real<lower=0> sigma;``),
        ``constraints.interval(a, b)``, ``constraints.simplex``, ...
    event_shape : sequence of int
        Shape of one value, e.g. ``(K,)`` for ``vector[K] beta;``. Inside a
        ``pyro.plate`` the batch shape comes from the plate.

    Returns
    -------
    Flat
        Log-density 0 on ``support``; ``sample`` gives one fixed point of it.

    Examples
    --------
    >>> sigma = pyro.sample("sigma", pyrovae.flat(constraints.positive))  # doctest: +SKIP
    >>> beta = pyro.sample("beta", pyrovae.flat(event_shape=(2,)))  # doctest: +SKIP
    """
    return Flat(support, torch.Size(), torch.Size(tuple(event_shape)))


class _FlatPriors(Messenger):
    """Reads every unobserved ``ImproperUniform`` sample site as :class:`Flat`."""

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        fn = msg["fn"]
        if type(fn) is dist.ImproperUniform and not msg["is_observed"]:
            msg["fn"] = Flat(fn.support, fn.batch_shape, fn.event_shape)


def flat_priors(model: Callable[..., Any]) -> Callable[..., Any]:
    """``model`` with every ``pyro.distributions.ImproperUniform`` prior read as :func:`flat`.

    A model without such sites runs unchanged. (Only the exact class is replaced: a
    subclass with its own ``sample`` is the user's choice and is left alone.)
    """
    handled = _FlatPriors()(model)
    handled.__name__ = getattr(model, "__name__", "model")
    handled.__doc__ = getattr(model, "__doc__", None)
    return handled


def improper_sites(trace: Any) -> list[str]:
    """Names of a ``pyro.poutine.Trace``'s latent sites whose prior is improper (flat)."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and isinstance(site["fn"], dist.ImproperUniform)
    ]
