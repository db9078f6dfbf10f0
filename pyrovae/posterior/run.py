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

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pyrovae.errors import PyrovaeError, UserError
from pyrovae.posterior.compare import Comparison, MethodResult, compare
from pyrovae.posterior.inference.deadline import TimeLimitReached, remaining
from pyrovae.posterior.inference.deadline import time_limit as time_limit_of
from pyrovae.posterior.methods import DEFAULT_METHODS, Budget, get_method
from pyrovae.posterior.reference import Reference, find_reference, reference_posterior
from pyrovae.posterior.targets.precision import DEFAULT_DTYPE, default_dtype, with_dtype
from pyrovae.posterior.targets.zoo import ZooModel, parameter_names

__all__ = [
    "DEFAULT_METHOD_TIME_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "compare_posterior",
    "failure_reason",
    "run_method",
]

DEFAULT_TIME_LIMIT = 600.0
"""Seconds a whole comparison may take by default (``--time-limit``)."""

DEFAULT_METHOD_TIME_LIMIT = 240.0
"""Seconds one method may take by default (``--method-time-limit``)."""


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
    dtype: str = DEFAULT_DTYPE,
    mass: str = "auto",
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    method_time_limit: float | None = DEFAULT_METHOD_TIME_LIMIT,
    chain_workers: int = 1,
) -> Comparison:
    """Every method in ``methods`` against the reference for ``model``.

    ``predictive``: add ``posterior_predictive`` draws (one replicate of the data per
    posterior draw) to every method's and the reference's InferenceData. A method that
    raises is kept out of the measures and listed in ``Comparison.failed`` with its
    one-line reason; the others are compared as usual.

    Everything runs in ``dtype`` (:mod:`~pyrovae.posterior.targets.precision`; float64
    unless told otherwise). NUTS/HMC adapt the ``mass`` matrix
    (:data:`~pyrovae.posterior.inference.mcmc.MASS`). ``time_limit`` bounds the whole
    comparison (reference included) and ``method_time_limit`` each method, in seconds
    (``None``: no limit). A method stopped by a limit or by Ctrl-C is listed in
    ``Comparison.stopped``, as are the methods not started after it; the finished
    ones are compared as usual. With ``progress``, one line per method goes to stderr.
    ``chain_workers``: processes running MCMC chains at once (0: the cores), same draws.

    Raises
    ------
    UserError
        An unknown method name, or a reference that cannot be had.
    PyrovaeError
        The reference did not finish within ``time_limit`` (nothing to compare with).
    """
    for name in methods:
        get_method(name)  # every name checked before anything runs
    model = with_dtype(model, dtype)
    with default_dtype(dtype), time_limit_of(time_limit, "the comparison's time limit"):
        reference = _reference(model, reference_file, seed=seed, progress=progress)
        results, failed, stopped = _run_methods(
            model,
            methods,
            budget=Budget(
                draws=num_samples, restarts=seeds, mass=mass, chain_workers=chain_workers
            ),
            seed=seed,
            progress=progress,
            predictive=predictive,
            method_time_limit=method_time_limit,
        )
        return compare(
            reference.draws,
            tuple(parameter_names(model.parameters)),
            results,
            reference_name=reference.source,
            log_evidence=model.log_evidence,
            seed=seed,
            reference_posterior=reference_posterior(
                model, reference, predictive=predictive, seed=seed
            ),
            failed=failed,
            stopped=stopped,
        )


def _reference(
    model: ZooModel, reference_file: str | Path | None, *, seed: int, progress: bool
) -> Reference:
    try:
        return find_reference(model, reference_file, seed=seed, progress=progress)
    except UserError:
        raise
    except TimeLimitReached as err:
        raise PyrovaeError(
            f"the reference for {model.name} (a long NUTS run) {err}: nothing to compare "
            "with; raise --time-limit or give --reference draws"
        ) from None
    except Exception as err:  # the user's model: report it in one line, never a traceback
        raise UserError(f"the reference for {model.name} failed: {failure_reason(err)}") from None


def _run_methods(
    model: ZooModel,
    methods: Sequence[str],
    *,
    budget: Budget,
    seed: int,
    progress: bool,
    predictive: bool,
    method_time_limit: float | None,
) -> tuple[list[MethodResult], dict[str, str], dict[str, str]]:
    """Each method in turn under its time limit: the results, the failed and the stopped
    (a stopped method ends the loop when the limit was the whole comparison's or the
    user pressed Ctrl-C; the methods after it are listed as not started)."""
    results: list[MethodResult] = []
    failed: dict[str, str] = {}
    stopped: dict[str, str] = {}
    halted = False  # the whole comparison's limit passed, or Ctrl-C
    for i, name in enumerate(methods):
        if halted:
            stopped[name] = "not started: the comparison was stopped before this method"
            continue
        _say(progress, f"[{i + 1}/{len(methods)}] {name} ...")
        began = time.perf_counter()
        try:
            with time_limit_of(method_time_limit, "the time limit per method"):
                results.append(
                    get_method(name).run(
                        model, seed=seed, budget=budget, progress=progress, predictive=predictive
                    )
                )
        except TimeLimitReached as err:
            stopped[name] = f"{err} after {time.perf_counter() - began:.0f} s"
            halted = remaining() <= 0  # the outer limit, on the whole comparison
        except KeyboardInterrupt:
            stopped[name] = f"interrupted (Ctrl-C) after {time.perf_counter() - began:.0f} s"
            halted = True
        except Exception as err:  # one method's failure does not lose the others
            failed[name] = failure_reason(err)
        status = stopped.get(name) or (f"failed: {failed[name]}" if name in failed else "done")
        _say(
            progress,
            f"[{i + 1}/{len(methods)}] {name}: {status} ({time.perf_counter() - began:.1f} s)",
        )
    return results, failed, stopped


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)
