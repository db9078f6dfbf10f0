"""What an MCMC run says about itself beyond its draws: mass matrix, start, tree depth.

NUTS doubles its trajectory until it turns back on itself, at most
:data:`~pyrovae.posterior.inference.mcmc.MAX_TREE_DEPTH` times. A transition that
reaches that depth was stopped by the cap, not by the posterior: the step size is small
against the posterior's widest direction, which happens when parameters are strongly
correlated or scaled very differently and the mass matrix does not undo it. The draws
are then still valid but cost up to 1,023 gradients each, and the chain explores
slowly. :func:`treedepth_warning` words it (the comparison's tables and flags and
``pyrovae inspect``'s warnings all use it) with what to do.
"""

from __future__ import annotations

from typing import NamedTuple

from pyrovae.posterior.inference.mcmc import McmcResult, max_tree_steps

__all__ = ["TREEDEPTH_WARN_FRACTION", "SamplerNotes", "sampler_notes", "treedepth_warning"]

TREEDEPTH_WARN_FRACTION = 0.01
"""Warn when more than this fraction of the kept NUTS transitions reached the maximum
tree depth. A few such transitions in a long run cost little; Stan's ``diagnose``
reports any, which on long runs of easy posteriors is noise."""


class SamplerNotes(NamedTuple):
    """An MCMC method's account of its run, for the comparison's tables.

    Attributes
    ----------
    mass : str
        ``"dense"``, ``"diag"`` (NUTS, HMC) or ``"isotropic"`` (Metropolis).
    start : str
        How warm-up started (:attr:`McmcResult.start`).
    transitions : int
        Kept transitions over all chains.
    treedepth_hits : int or None
        Kept NUTS transitions that reached the maximum tree depth (``None``: not NUTS).
    max_tree_depth : int or None
        NUTS's cap on the tree depth.
    """

    mass: str
    start: str
    transitions: int
    treedepth_hits: int | None
    max_tree_depth: int | None

    @property
    def treedepth_fraction(self) -> float | None:
        """:attr:`treedepth_hits` / :attr:`transitions`, or ``None`` when not NUTS."""
        if self.treedepth_hits is None or not self.transitions:
            return None
        return self.treedepth_hits / self.transitions

    def warnings(self) -> list[str]:
        """One line per problem (empty when none)."""
        if self.treedepth_hits is None or self.max_tree_depth is None:
            return []
        line = treedepth_warning(
            self.treedepth_hits, self.transitions, self.max_tree_depth, self.mass
        )
        return [line] if line else []


def sampler_notes(result: McmcResult) -> SamplerNotes:
    """The :class:`SamplerNotes` of one :func:`~pyrovae.posterior.inference.mcmc.run_mcmc`."""
    hits = result.treedepth_hits
    first = next(iter(result.samples.values()))
    return SamplerNotes(
        mass=result.mass,
        start=result.start,
        transitions=int(first.shape[0] * first.shape[1]),
        treedepth_hits=None if hits is None else int(hits.sum()),
        max_tree_depth=result.max_tree_depth,
    )


def treedepth_warning(hits: int, transitions: int, max_tree_depth: int, mass: str) -> str | None:
    """The warning for ``hits`` of ``transitions`` kept NUTS transitions at the maximum
    tree depth, or ``None`` when they are at most :data:`TREEDEPTH_WARN_FRACTION`."""
    if transitions <= 0 or hits / transitions <= TREEDEPTH_WARN_FRACTION:
        return None
    advice = (
        "strongly correlated or very differently scaled parameters: run with --mass dense"
        if mass != "dense"
        else "the dense mass matrix did not undo the geometry (a funnel or a curved "
        "posterior): reparameterise the model (non-centred, standardised predictors)"
    )
    return (
        f"{hits} of {transitions} transitions ({hits / transitions:.0%}) hit the maximum "
        f"tree depth {max_tree_depth} ({max_tree_steps(max_tree_depth)} leapfrog steps): the step "
        f"size is small against the posterior's widest direction; {advice}"
    )
