"""Every posterior as an ArviZ ``InferenceData``: conversion, NetCDF files, diagnostics, overlays.

One converter per source of draws, all giving the same variable names, dims and coords
for the same model, so that the results of different methods overlay cleanly:

=====================  ==============================================================
:func:`from_mcmc`      an :class:`~pyrovae.posterior.inference.mcmc.McmcResult` (NUTS, ...)
:func:`from_samples`   draws of a variational guide or ``Predictive``, ``(S, ...)``
:func:`from_flat`      flattened Stan-named columns, ``(S, P)`` or ``(chains, draws, P)``
                       (posteriordb reference draws, analytic draws, ``MethodResult.draws``)
:func:`from_local`     VAE local posteriors ``(S, N, L)``
=====================  ==============================================================

Conventions
-----------
- Posterior variables are float64 with dims ``("chain", "draw", *event_dims)``. A site
  with event shape ``(K,)`` gets the dim ``f"{site}_dim_0"`` (``f"{site}_dim_1"`` for a
  second axis, ...) unless ``dims`` names them, e.g. ``{"theta": ["school"]}``.
- Element coords are 1-based integers ``1..K`` unless ``coords`` gives others, so that
  ArviZ's labels (``theta[1]``) are Stan's and those of the comparison tables
  (:func:`pyrovae.posterior.targets.zoo.parameter_names`); ``chain`` and ``draw`` stay ``0..n-1``.
- Groups: ``posterior``; ``sample_stats`` (MCMC: ``acceptance_rate``, ``step_size``,
  ``tree_size``, ``diverging``; variational: ``lp`` = log p(theta, y) and ``log_q`` =
  log q(theta) per draw); ``log_likelihood`` (observed site -> ``(chain, draw, *batch)``,
  see :mod:`pyrovae.posterior.inference.pointwise`), ``posterior_predictive`` and ``observed_data``.
  A ``log_likelihood`` variable takes the leading dims of the observed variable of the
  same name (the batch dims; event dims are summed into the density).
- Draws without chains (variational, analytic) are cut into ``chains`` equal chains of
  consecutive draws.
- Metadata (``method``, ``kernel``, ``seconds``, ``khat``, ``khats``, ``elbo``,
  ``divergences``) sit in ``idata.attrs``; ``None`` values are left out.
  :func:`save` stores values NetCDF cannot hold (lists, ``None``, booleans) as JSON
  strings and :func:`load` decodes them, so a round trip gives the same attrs.
- :func:`loo` is PSIS-LOO (``arviz.loo``); for draws of a variational guide (``log_q``
  in ``sample_stats``) the importance ratios are corrected by p(theta, y) / q(theta)
  (Magnusson et al. 2019; ArviZ 1.x's ``loo_approximate_posterior``), so every method
  estimates the elpd of the same model and their Pareto k-hat says whether it could.

Module layout
-------------
=====================  ==============================================================
``mcmc``               :func:`from_mcmc`
``draws``              :func:`from_samples`, :func:`from_local`
``flat``               :func:`from_flat` (Stan names ``theta[1]`` back to variables)
``_build``             arrays to InferenceData under the conventions above (private)
``netcdf``             :func:`save`, :func:`load`
``checks``             :func:`summary`, :func:`warnings` and their thresholds
``loo``                :func:`loo`, :func:`loo_mcse`, :func:`loo_table`
``overlays``           :func:`plot_overlays`
``ecdf``               :func:`plot_rank_ecdf` (SBC ranks, ECDF-difference plots)
=====================  ==============================================================

Import the names from here (``from pyrovae.posterior import diagnostics``); the modules
are the layout.
Every ``InferenceData`` conversion, NetCDF file, summary and plot lives in this package
(it is written for the ArviZ 0.2x line, ``InferenceData`` of xarray Datasets). The engines call
ArviZ directly only for their own numbers: the MCMC runner's ESS and R-hat
(``arviz.ess``, ``arviz.rhat`` on ``arviz.convert_to_dataset``, in
:mod:`pyrovae.posterior.inference.mcmc`, which the layer rules keep from importing this
package) and the Pareto k-hat of importance ratios (``arviz.psislw``, in
:mod:`pyrovae.posterior.distances`). A move to ArviZ 1.x touches this package and those two
functions.
"""

from pyrovae.posterior.diagnostics._build import NO_LOO
from pyrovae.posterior.diagnostics.checks import ESS_MIN_PER_CHAIN, RHAT_MAX, summary, warnings
from pyrovae.posterior.diagnostics.draws import LOCAL_DIMS, LOCAL_LOO_NOTE, from_local, from_samples
from pyrovae.posterior.diagnostics.ecdf import plot_rank_ecdf
from pyrovae.posterior.diagnostics.flat import from_flat
from pyrovae.posterior.diagnostics.loo import LOO_COLUMNS, loo, loo_mcse, loo_table, loo_variables
from pyrovae.posterior.diagnostics.mcmc import from_mcmc
from pyrovae.posterior.diagnostics.netcdf import load, save
from pyrovae.posterior.diagnostics.overlays import (
    MAX_FOREST_ROWS,
    MAX_PAIR_ELEMENTS,
    PAIR_POINTS,
    REFERENCE,
    plot_overlays,
)

__all__ = [
    "ESS_MIN_PER_CHAIN",
    "LOCAL_DIMS",
    "LOCAL_LOO_NOTE",
    "LOO_COLUMNS",
    "MAX_FOREST_ROWS",
    "MAX_PAIR_ELEMENTS",
    "NO_LOO",
    "PAIR_POINTS",
    "REFERENCE",
    "RHAT_MAX",
    "from_flat",
    "from_local",
    "from_mcmc",
    "from_samples",
    "load",
    "loo",
    "loo_mcse",
    "loo_table",
    "loo_variables",
    "plot_overlays",
    "plot_rank_ecdf",
    "save",
    "summary",
    "warnings",
]
