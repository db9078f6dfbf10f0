"""Every posterior of a comparison as ArviZ InferenceData on disk.

:func:`write_posteriors` turns the reference and each method of a
:class:`~pyrovae.compare.Comparison` into InferenceData with the same variable
names, dims and coords (:func:`pyrovae.diagnostics.from_flat`), saves each as
``posteriors/<method>.nc``, draws ArviZ overlay figures (density, forest,
pair; reference first, the comparison's colours) and returns the sampler
warnings (R-hat, ESS, divergences) of each method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import arviz as az

from pyrovae import diagnostics
from pyrovae.compare import Comparison

__all__ = ["PosteriorFiles", "comparison_posteriors", "write_posteriors"]


class PosteriorFiles(NamedTuple):
    """What :func:`write_posteriors` wrote."""

    netcdf: dict[str, Path]
    figures: dict[str, Path]
    warnings: dict[str, list[str]]


def comparison_posteriors(
    comparison: Comparison, chains: Mapping[str, int] | None = None
) -> dict[str, az.InferenceData]:
    """The reference and every method as InferenceData, reference first.

    Parameters
    ----------
    chains : mapping, optional
        Chains of each method's draws (MCMC draws are stored chain after chain);
        1 where not given or where the draws do not split evenly.
    """
    names = list(comparison.parameters)
    out = {
        diagnostics.REFERENCE: diagnostics.from_flat(
            comparison.reference, names, method=f"reference ({comparison.reference_name})"
        )
    }
    for result in comparison.methods:
        count = (chains or {}).get(result.method, 1)
        if result.draws.shape[0] % count:
            count = 1
        out[result.method] = diagnostics.from_flat(
            result.draws,
            names,
            method=result.method,
            chains=count,
            khat=result.khat,
            khats=result.khats,
            elbo=result.elbo,
            seconds=result.seconds,
        )
    return out


def write_posteriors(
    comparison: Comparison, folder: str | Path, chains: Mapping[str, int] | None = None
) -> PosteriorFiles:
    """Save ``posteriors/*.nc`` and ``figures/{density,forest,pair}.png`` under ``folder``."""
    folder = Path(folder)
    idatas = comparison_posteriors(comparison, chains)
    netcdf = {
        name: diagnostics.save(idata, folder / "posteriors" / f"{name}.nc")
        for name, idata in idatas.items()
    }
    figures = diagnostics.plot_overlays(idatas, folder / "figures")
    warnings = {
        name: diagnostics.warnings(idata)
        for name, idata in idatas.items()
        if name != diagnostics.REFERENCE and (chains or {}).get(name, 1) > 1
    }
    return PosteriorFiles(netcdf, figures, warnings)
