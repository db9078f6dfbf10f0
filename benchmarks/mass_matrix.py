"""Dense against diagonal mass matrices for NUTS, and the default comparison on the
strongly correlated regression.

Three parts, all on this machine, one process, sequential:

1. **Threshold.** For each dimension d, NUTS (1 chain, 500 warm-up + 500 draws, Laplace
   start, float64) with a dense and with a diagonal mass matrix on two Gaussian targets:
   ``independent`` (scales log-spaced over 1e-2..1e2: a diagonal matrix is exactly
   right, so dense only pays its costs, the d(d+1)/2 covariances to estimate from
   short windows and the d x d products) and ``correlated`` (the same scales with an
   AR(1) correlation 0.9 between neighbours: a diagonal matrix cannot undo it). Printed:
   seconds, min bulk ESS (``arviz.ess``) and ESS/s of each, and ``dense/diag`` ESS/s.
   ``DENSE_MASS_MAX_DIM`` (``mass="auto"``) is chosen from the ``independent`` rows:
   the largest d where dense keeps at least half the diagonal's ESS/s, so choosing
   dense costs at most 2x where it is not needed, against the orders of magnitude it
   gains where it is (the ``correlated`` rows).
2. **regression_year.** NUTS on the zoo's year-like regression (alpha and beta
   correlated -0.99999): dense (500 + 500) against diagonal (``--diag-iterations``
   warm-up + as many draws; each of its transitions runs to 1,023 leapfrog steps, so a
   longer diagonal run only costs time). Prints ``dense_over_diag_ess_per_second=``.
3. **Default comparison.** ``pyrovae compare regression_year`` with every default
   (methods, draws, seeds, float64, mass auto, time limits), run in this process as the
   command line runs it; prints its wall time (``compare_seconds=``, the issue's target
   is under 180 s on 2 cores), each method's verdict, and NUTS's largest mean error and
   sd ratios against the exact draws next to the reference's noise floor.

Usage (from the project root)::

    python benchmarks/mass_matrix.py [--dims 10 25 50 100 200] [--diag-iterations 75]
        [--skip-threshold] [--skip-compare]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch

from pyrovae.cli import main as cli_main
from pyrovae.posterior.distances import noise_floor
from pyrovae.posterior.inference.mcmc import DENSE_MASS_MAX_DIM, run_mcmc
from pyrovae.posterior.reference import find_reference
from pyrovae.posterior.targets.precision import default_dtype, with_dtype
from pyrovae.posterior.targets.zoo import get_model


def _gaussian(d: int, correlated: bool) -> torch.Tensor:
    """``(d, d)`` scale_tril of the target: log-spaced sds, AR(1) 0.9 if ``correlated``."""
    sds = torch.logspace(-2, 2, d, dtype=torch.float64)
    i = torch.arange(d, dtype=torch.float64)
    corr = 0.9 ** (i[:, None] - i[None, :]).abs() if correlated else torch.eye(d).double()
    return torch.linalg.cholesky(corr * sds[:, None] * sds[None, :])


def _run(model, data, mass: str, warmup: int, draws: int) -> tuple[float, float, float]:
    """(seconds, min bulk ESS, mean leapfrog steps) of one NUTS chain."""
    start = time.perf_counter()
    result = run_mcmc(
        model, data, num_samples=draws, warmup_steps=warmup, num_chains=1, seed=0, mass=mass
    )
    seconds = time.perf_counter() - start
    posterior = {k: v.numpy() for k, v in result.samples.items()}
    ess = az.ess(az.from_dict(posterior=posterior), method="bulk")
    min_ess = min(float(np.min(ess[k].values)) for k in posterior)
    return seconds, min_ess, float(result.num_steps.double().mean())


def threshold(dims: list[int]) -> None:
    print("## 1. dense vs diagonal on Gaussian targets (1 chain, 500 + 500)")
    print("target       d  mass   seconds  min_ess  ess/s  steps  dense/diag")
    for d in dims:
        for correlated in (False, True):
            tril = _gaussian(d, correlated)

            def model(tril=tril) -> None:
                pyro.sample(
                    "x", dist.MultivariateNormal(torch.zeros(len(tril)).double(), scale_tril=tril)
                )

            rates = {}
            for mass in ("dense", "diag"):
                seconds, ess, steps = _run(model, {}, mass, 500, 500)
                rates[mass] = ess / seconds
                name = "correlated " if correlated else "independent"
                ratio = f"{rates['dense'] / rates['diag']:.2f}" if mass == "diag" else ""
                print(
                    f"{name}  {d:3d}  {mass:5s}  {seconds:7.1f}  {ess:7.0f}  "
                    f"{ess / seconds:5.1f}  {steps:5.1f}  {ratio}",
                    flush=True,
                )
    print(f"DENSE_MASS_MAX_DIM (mass=auto) = {DENSE_MASS_MAX_DIM}")


def regression_year(diag_iterations: int) -> None:
    print("\n## 2. regression_year: NUTS dense vs diagonal (1 chain)")
    model = with_dtype(get_model("regression_year"), "float64")
    rates = {}
    for mass, n in (("dense", 500), ("diag", diag_iterations)):
        seconds, ess, steps = _run(model.model, model.data, mass, n, n)
        rates[mass] = ess / seconds
        print(
            f"{mass:5s} {n} + {n}: {seconds:.1f} s, min bulk ESS {ess:.0f}, "
            f"ESS/s {ess / seconds:.2f}, mean leapfrog steps {steps:.0f}",
            flush=True,
        )
    print(f"dense_over_diag_ess_per_second={rates['dense'] / rates['diag']:.0f}")


def default_compare() -> None:
    print("\n## 3. pyrovae compare regression_year, every default")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cmp"
        start = time.perf_counter()
        status = cli_main(["compare", "regression_year", "--out", str(out), "--quiet"])
        seconds = time.perf_counter() - start
        rows = list(csv.DictReader((out / "methods.csv").open()))
    reference = find_reference(get_model("regression_year"), seed=0)  # what compare used
    floor = noise_floor(reference.draws, seed=0)
    for row in rows:
        print(
            f"{row['method']:>12}: {row['verdict']:>13}, {float(row['seconds'] or 'nan'):6.1f} s, "
            f"max |mean error| {float(row['max_abs_mean_error_sd'] or 'nan'):.3f} sd, "
            f"sd ratio {float(row['min_sd_ratio'] or 'nan'):.3f}.."
            f"{float(row['max_sd_ratio'] or 'nan'):.3f}"
            + (f", min ESS {float(row['ess_min']):.0f}" if row["ess_min"] else "")
        )
    print(
        f"reference: {reference.source}; noise floor (two halves of it): max |mean error| "
        f"{floor['max_abs_mean_error_sd']:.3f} sd, sd ratio within "
        f"exp(+-{floor['max_abs_log_sd_ratio']:.3f})"
    )
    print(f"exit status {status}")
    print(f"compare_seconds={seconds:.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--diag-iterations", type=int, default=75)
    parser.add_argument("--skip-threshold", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args(argv)
    print(f"torch threads {torch.get_num_threads()}; {sys.platform}", flush=True)
    with default_dtype("float64"):
        if not args.skip_threshold:
            threshold(args.dims)
        regression_year(args.diag_iterations)
    if not args.skip_compare:
        default_compare()


if __name__ == "__main__":
    main()
