"""Summaries and convergence checks of a posterior: ``arviz.summary`` with Stan labels,
and one-line warnings for R-hat, ESS, maximum tree depth and divergences against named
thresholds."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings as _warnings  # this module defines warnings()
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import xarray as xr

from pyrovae.errors import UserError
from pyrovae.posterior.inference.mcmc import max_tree_steps
from pyrovae.posterior.inference.sampler_notes import treedepth_warning

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ESS_MIN_PER_CHAIN", "RHAT_MAX", "quiet_arviz", "summary", "warnings"]

RHAT_MAX = 1.01
"""Largest acceptable rank-normalised split R-hat. Vehtari, Gelman, Simpson, Carpenter and
Bürkner (2021), "Rank-normalization, folding, and localization: an improved R-hat", recommend
using draws only when R-hat < 1.01 (the older 1.1 threshold misses chains that have not mixed)."""

ESS_MIN_PER_CHAIN = 100
"""Smallest acceptable bulk and tail ESS per chain. Vehtari et al. (2021) ask for at least 100
per chain (400 for four chains) before R-hat and the Monte Carlo standard errors of means and
quantiles can be trusted."""

_LABEL_SPACES = re.compile(r",\s+")


def summary(
    idata: az.InferenceData, *, hdi_prob: float = 0.94, var_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """``arviz.summary`` of the posterior, unrounded.

    Columns ``mean``, ``sd``, ``hdi_3%``, ``hdi_97%`` (for ``hdi_prob=0.94``),
    ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat`` (rank-normalised
    split R-hat; NaN with a single chain, as ArviZ 0.2x gives it). One row per scalar
    element labelled like the comparison tables, e.g. ``theta[1]``, ``z[2,1]`` (ArviZ's
    ``"z[2, 1]"`` without the space).
    """
    with quiet_arviz():
        table = az.summary(
            idata,
            group="posterior",
            var_names=list(var_names) if var_names is not None else None,
            hdi_prob=hdi_prob,
            round_to="none",
        )
    table.index = [_LABEL_SPACES.sub(",", str(label)) for label in table.index]
    return table


@contextlib.contextmanager
def quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's log notices (a single chain fails its "at least two chains" shape
    check), its Pareto-k UserWarnings (the tables report k-hat themselves) and the
    deprecation warnings its internals raise."""
    # ArviZ 0.2x logs through its own Logger("arviz") instance, not logging.getLogger("arviz")
    logger = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", UserWarning)
            # ArviZ 0.2x's own use of pandas and numpy APIs that are going away
            _warnings.simplefilter("ignore", DeprecationWarning)
            _warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _worst(dataset: xr.Dataset, *, largest: bool) -> dict[str, tuple[str, float]]:
    """Per variable its worst element: label (``theta[2]``, coords values) and the largest
    (or smallest) finite value; variables with no finite value are left out."""
    out = {}
    for name, values in dataset.data_vars.items():
        array = np.asarray(values.values, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.any():
            continue
        masked = np.where(finite, array, -np.inf if largest else np.inf)
        flat = int(np.argmax(masked) if largest else np.argmin(masked))
        index = np.unravel_index(flat, array.shape) if array.ndim else ()
        labels = [str(values[d].values[i]) for d, i in zip(values.dims, index, strict=True)]
        label = f"{name}[{','.join(labels)}]" if labels else str(name)
        out[str(name)] = (label, float(array.reshape(-1)[flat]))
    return out


def _divergences(idata: az.InferenceData) -> list[int] | None:
    """Divergent transitions per chain from ``sample_stats.diverging`` or ``attrs``."""
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        counts = stats["diverging"].astype(int).sum("draw").values
        return [int(c) for c in np.asarray(counts).reshape(-1)]
    for attrs in (idata.attrs, stats.attrs if stats is not None else {}):
        value = attrs.get("divergences")
        if value is not None and not isinstance(value, str):
            return [int(c) for c in np.asarray(value).reshape(-1)]
    return None


def _treedepth_line(idata: az.InferenceData) -> str | None:
    """The maximum-tree-depth warning of a NUTS run's InferenceData, or ``None``."""
    stats = getattr(idata, "sample_stats", None)
    depth = idata.attrs.get("max_tree_depth")
    if stats is None or "tree_size" not in stats or depth is None:
        return None
    steps = np.asarray(stats["tree_size"].values)
    hits = int((steps >= max_tree_steps(int(depth))).sum())
    mass = str(idata.attrs.get("mass", "diag"))
    return treedepth_warning(hits, int(steps.size), int(depth), mass)


def warnings(idata: az.InferenceData) -> list[str]:
    """Convergence warnings, one line each; an empty list when all is fine.

    * R-hat (rank-normalised split R-hat) above :data:`RHAT_MAX`: the variables and their
      worst element. Skipped with a single chain: R-hat compares chains (ArviZ would compare
      the two halves of the one chain, which does not detect a chain stuck in one mode).
    * Bulk and tail ESS below :data:`ESS_MIN_PER_CHAIN` times the number of chains: the
      variables and their smallest value.
    * More than :data:`~pyrovae.posterior.inference.sampler_notes.TREEDEPTH_WARN_FRACTION`
      of the NUTS transitions at the maximum tree depth (``sample_stats.tree_size``
      against ``attrs["max_tree_depth"]``), with what to do.
    * Divergent transitions, from ``sample_stats.diverging`` or ``attrs["divergences"]``.
    """
    if "posterior" not in idata.groups():
        raise UserError("the InferenceData has no posterior group")
    posterior = idata["posterior"]
    chains = int(posterior.sizes["chain"])
    out = []

    def listing(values: dict[str, tuple[str, float]]) -> str:
        return ", ".join(f"{label} ({value:.3g})" for label, value in values.values())

    with quiet_arviz():
        r_hats = az.rhat(posterior) if chains > 1 else None
        ess_by_kind = {kind: az.ess(posterior, method=kind) for kind in ("bulk", "tail")}
    if r_hats is not None:
        r_hat = {k: v for k, v in _worst(r_hats, largest=True).items() if v[1] > RHAT_MAX}
        if r_hat:
            out.append(
                f"r_hat > {RHAT_MAX} (chains have not mixed) for {len(r_hat)} variable(s), "
                f"worst value: {listing(r_hat)}"
            )
    minimum = ESS_MIN_PER_CHAIN * chains
    for kind in ("bulk", "tail"):
        ess = {k: v for k, v in _worst(ess_by_kind[kind], largest=False).items() if v[1] < minimum}
        if ess:
            out.append(
                f"ess_{kind} < {minimum} ({ESS_MIN_PER_CHAIN} per chain x {chains} chain(s)) "
                f"for {len(ess)} variable(s), smallest value: {listing(ess)}"
            )
    depth = _treedepth_line(idata)
    if depth:
        out.append(depth)
    divergences = _divergences(idata)
    if divergences and sum(divergences) > 0:
        out.append(
            f"{sum(divergences)} divergent transition(s) (per chain: "
            f"{', '.join(map(str, divergences))}); the sampler missed regions of high curvature"
        )
    return out
