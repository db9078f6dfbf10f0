"""Run every inference method on one small posterior and compare with a reference.

The posterior is a :class:`~pyrovae.posterior.targets.zoo.ZooModel`: a built-in
model by name, or a user's own Pyro model
(:func:`~pyrovae.posterior.targets.user.load_user_model`). The methods come from the
registry :data:`pyrovae.posterior.methods.METHODS` (MCMC: ``nuts``, ``hmc``,
``metropolis``; variational: ``auto_normal``, ``auto_mvn``, ``auto_lowrank_mvn``,
``auto_iaf``), the reference from :mod:`pyrovae.posterior.reference`.

Every method's :class:`~pyrovae.posterior.compare.MethodResult` (and the comparison's
reference) also carries its posterior as ArviZ InferenceData
(:mod:`pyrovae.posterior.diagnostics`): MCMC through ``from_mcmc`` (chains and
sample_stats kept), guides through ``from_samples`` (``lp`` and ``log_q`` per
draw), each with the pointwise ``log_likelihood`` of the observed sites and
``observed_data`` (:mod:`pyrovae.posterior.inference.pointwise`), and
``posterior_predictive`` on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyrovae.errors import UserError
from pyrovae.posterior.compare import Comparison, MethodResult, compare
from pyrovae.posterior.methods import DEFAULT_METHODS, Budget, get_method
from pyrovae.posterior.reference import find_reference, reference_posterior
from pyrovae.posterior.targets.zoo import ZooModel, parameter_names

__all__ = ["compare_posterior", "failure_reason", "run_method"]


def failure_reason(err: BaseException) -> str:
    """``err`` as one line: its type and message, whitespace collapsed, at most 300 characters."""
    message = str(err).split("Trace Shapes:")[0]  # Pyro appends the trace's shapes
    text = " ".join(f"{type(err).__name__}: {message}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def run_method(
    model: ZooModel,
    method: str,
    *,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
    predictive: bool = False,
) -> MethodResult:
    """One registered method's draws ``(num_samples, P)``, its diagnostics and its
    InferenceData (``MethodResult.posterior``; ``posterior_predictive`` too if
    ``predictive``). ``seeds``: fits per variational guide, for k-hat."""
    return get_method(method).run(
        model,
        seed=seed,
        budget=Budget(draws=num_samples, restarts=seeds),
        progress=progress,
        predictive=predictive,
    )


def compare_posterior(
    model: ZooModel,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    reference_file: str | Path | None = None,
    num_samples: int = 4000,
    seeds: int = 3,
    seed: int = 0,
    progress: bool = False,
    predictive: bool = False,
) -> Comparison:
    """Every method in ``methods`` against the reference for ``model``.

    ``predictive``: add ``posterior_predictive`` draws (one replicate of the data per
    posterior draw) to every method's and the reference's InferenceData. A method that
    raises is kept out of the measures and listed in ``Comparison.failed`` with its
    one-line reason; the others are compared as usual.

    Raises
    ------
    UserError
        An unknown method name, or a reference that cannot be had.
    """
    for name in methods:
        get_method(name)  # every name checked before anything runs
    try:
        reference = find_reference(model, reference_file, seed=seed, progress=progress)
    except UserError:
        raise
    except Exception as err:  # the user's model: report it in one line, never a traceback
        raise UserError(f"the reference for {model.name} failed: {failure_reason(err)}") from None
    results, failed = [], {}
    for name in methods:
        try:
            results.append(
                run_method(
                    model,
                    name,
                    num_samples=num_samples,
                    seeds=seeds,
                    seed=seed,
                    progress=progress,
                    predictive=predictive,
                )
            )
        except Exception as err:  # one method's failure does not lose the others
            failed[name] = failure_reason(err)
    return compare(
        reference.draws,
        tuple(parameter_names(model.parameters)),
        results,
        reference_name=reference.source,
        log_evidence=model.log_evidence,
        seed=seed,
        reference_posterior=reference_posterior(model, reference, predictive=predictive, seed=seed),
        failed=failed,
    )
