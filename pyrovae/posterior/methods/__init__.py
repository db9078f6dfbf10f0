"""Comparison methods by name: the registry ``pyrovae compare --methods`` reads.

Every entry of :data:`METHODS` follows the :class:`Method` protocol: a ``name``, a
``family`` (``mcmc`` or ``variational``), the ``chains`` its draws come in, and
``run(target, seed=, budget=, progress=, predictive=) -> MethodResult``. One
implementation per module: :mod:`.mcmc` (NUTS, HMC, Metropolis) and :mod:`.autoguide`
(Pyro's autoguides). A new method is a new module here with a class that follows
the protocol, and one line in :data:`METHODS`.
"""

from __future__ import annotations

from pyrovae.errors import UserError
from pyrovae.posterior.methods.autoguide import AUTO_IAF, AUTO_LOWRANK_MVN, AUTO_MVN, AUTO_NORMAL
from pyrovae.posterior.methods.base import Budget, Method
from pyrovae.posterior.methods.mcmc import HMC, MCMC_CHAINS, METROPOLIS, NUTS

__all__ = ["DEFAULT_METHODS", "MCMC_CHAINS", "METHODS", "Budget", "Method", "get_method"]

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        NUTS,
        HMC,
        METROPOLIS,
        AUTO_NORMAL,
        AUTO_MVN,
        AUTO_LOWRANK_MVN,
        AUTO_IAF,
    )
}
"""Every comparison method by name, in the order tables list them."""

DEFAULT_METHODS = ("nuts", "metropolis", "auto_normal", "auto_mvn", "auto_iaf")
"""What ``pyrovae compare`` runs without ``--methods``."""


def get_method(name: str) -> Method:
    """The registered method called ``name``.

    Raises
    ------
    UserError
        An unknown name, with the registered ones listed.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(
            f"--methods: unknown method {name!r}; choose from {', '.join(METHODS)}"
        ) from None
