"""Simulation-based calibration: which methods pass, and what it costs.

Cases (each through :func:`pyrovae.sbc.sbc_model`, as ``pyrovae sbc`` runs them; MCMC: one
chain of 200 warm-up steps and 3 L draws thinned to L):

- NUTS on ``normal_normal``: N = 100 replications, L = 100 draws; should pass;
- NUTS on ``eight_schools_noncentered``: N = 40, L = 50 (a fit costs seconds); should pass;
- ``auto_normal`` (mean-field) and ``auto_mvn`` (full-rank) on ``regression_far``, whose
  posterior correlations the mean-field cannot hold: N = 50, L = 100; the mean-field
  should fail U-shaped (too narrow) where the correlation is strong, ``auto_mvn`` pass;
- amortized SBC of the default digits VAE (trained first with the default spec; only the
  SBC is timed): N = 2000, L = 100.

Usage (from the project root)::

    python benchmarks/sbc.py [--out DIR]

It prints each method's tests and ends with ``amortized_seconds=<seconds>``. Files go to
``DIR`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pyrovae.evaluate.sbc import amortized_sbc
from pyrovae.pipeline import load_trained, train_model
from pyrovae.posterior.targets.zoo import get_model
from pyrovae.sbc import sbc_model, sbc_run, summary_lines
from pyrovae.spec import load_spec

CASES = (
    ("normal_normal", ("nuts",), 100, 100),
    ("eight_schools_noncentered", ("nuts",), 40, 50),
    ("regression_far", ("auto_normal", "auto_mvn"), 50, 100),
)
"""(model, methods, replications N, draws L)."""

VAE_REPLICATIONS, VAE_DRAWS = 2000, 100


def model_cases(out: Path) -> None:
    for name, methods, replications, draws in CASES:
        start = time.perf_counter()
        outcome = sbc_model(
            get_model(name), methods, out / name, replications=replications, draws=draws
        )
        seconds = time.perf_counter() - start
        print(f"\n{name}: N = {replications}, L = {draws}, {seconds:.0f} s")
        for method, tests in outcome.tests.items():
            for t in tests:
                verdict = "pass" if t.passed else "FAIL"
                print(
                    f"  {method:>12} {t.parameter:>9}: p = {t.p_value:.3g} {verdict} "
                    f"(bias z {t.bias_z:+.1f}, dispersion z {t.dispersion_z:+.1f}) {t.hint}"
                )
        for note in outcome.notes:
            print(f"  note: {note}")


def vae_case(out: Path) -> None:
    run = out / "digits-vae"
    start = time.perf_counter()
    train_model(load_spec(None), run, progress=False)
    print(f"\ndefault digits VAE trained in {time.perf_counter() - start:.0f} s")
    model = load_trained(run).model
    start = time.perf_counter()
    result = amortized_sbc(model, replications=VAE_REPLICATIONS, draws=VAE_DRAWS)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    outcome = sbc_run(run, replications=VAE_REPLICATIONS, draws=VAE_DRAWS)
    with_files = time.perf_counter() - start
    print(
        f"amortized SBC: N = {VAE_REPLICATIONS}, L = {VAE_DRAWS}, {result.ranks.ranks.shape[1]} "
        f"latent dims; {seconds:.2f} s ranks, {with_files:.2f} s with loading, tests and files"
    )
    for line in summary_lines(outcome):
        print(f"  {line}")
    for t in outcome.tests["encoder"]:
        print(
            f"  {t.parameter}: p = {t.p_value:.3g} (bias z {t.bias_z:+.1f}, "
            f"dispersion z {t.dispersion_z:+.1f})"
        )
    print(f"amortized_seconds={seconds:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the SBC files (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        model_cases(out)
        vae_case(out)
        print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
