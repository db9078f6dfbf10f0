"""Full-rank variational fits to convergence: pyrovae's ``auto_mvn`` against Pyro's
``AutoMultivariateNormal`` and against NUTS.

For each case (``regression_far``: a linear regression on predictors near 100 and -40,
exact Gaussian posterior; ``blr`` and ``kidscore_momiq``: posteriordb references) and
each seed:

- **auto_mvn**: :func:`~pyrovae.posterior.inference.variational.fit_guide` with the
  named family ``"auto_mvn"`` (starts at the Laplace approximation, fitted in whitened
  coordinates, plateau and offset tests);
- **baseline**: the same ``fit_guide`` given Pyro's ``AutoMultivariateNormal`` built
  from the prior median (``init_to_median``, ``init_scale=0.01``) as a callable, so it
  is fitted as given with the same optimizer (ClippedAdam, lr 0.02, 64 particles) and
  plateau rule (windows of 200 steps, 3 learning-rate drops): how pyrovae fitted
  ``auto_mvn`` before the whitened families; its step budget is ``--baseline-max-steps``;
- **1024 particles**: the same ``auto_mvn`` with 1,024 particles per step throughout, to
  tell the optimizer's noise from the family's limits (where both land alike, a
  remaining gap to the reference is the Gaussian family's);
- **Laplace start**: the same Pyro guide started at the Laplace approximation (mean at the
  mode, covariance the inverse Hessian) but optimized in the model's own coordinates, to
  tell what the start buys from what the whitening buys; same step budget;
- **NUTS**: :func:`~pyrovae.posterior.inference.mcmc.run_mcmc` with the chain length
  ``pyrovae compare`` uses (1000 warm-up + 1000 draws, no JIT, diagonal mass matrix);
  ``pyrovae compare`` runs 4 such chains one after the other, and ``--nuts-chains``
  (default 4) sets how many this benchmark runs per seed: the effective draws per
  second of sequential chains do not depend on their number.

Figures per fit: wall seconds (the whole ``fit_guide`` call, its Laplace approximation
and final ELBO estimates included, plus drawing), steps, whether it converged, and, from
as many guide draws as half the reference holds (the size of the halves the noise floor
compares, so the floor is the right yardstick), the largest |mean error| in reference
sds and the smallest and largest sd ratio; where the posterior is exact
(``regression_far``), the same two for the fitted Gaussian itself (its mean and
covariance, free of the draws' Monte Carlo error). Per NUTS run: wall seconds, the
smallest bulk ESS over the parameters (``arviz.ess``) and ``nuts_seconds_same_ess =
seconds / min ESS * draws``, the wall time NUTS needs for as many effective draws as a
variational fit returns independent draws. Each figure is shown as mean ± sd over the
seeds, next to the reference's noise floor (the largest mean error and |log sd ratio|
between two random halves of the reference; the sd-ratio band is
``exp(±max_abs_log_sd_ratio)``).

Usage (from the project root; ``blr`` and ``kidscore_momiq`` need
``../shared/data/posteriordb`` or ``$POSTERIORDB``, and are skipped without it)::

    python benchmarks/variational_convergence.py [--seeds N] [--cases NAME ...]
        [--baseline-max-steps STEPS] [--nuts-chains N]

Progress goes to stderr (the baseline can take minutes per fit). After the tables come
``key=value`` lines, e.g. ``regression_far_mvn_max_abs_mean_error_sd=0.012±0.004``.
The last line printed is ``ratio=<r>``: over the cases run, the mean of
``<case>_nuts_over_mvn_time`` (per seed, ``nuts_seconds_same_ess`` over auto_mvn's
seconds, averaged over seeds): how many times less wall time auto_mvn needs than NUTS
for the same number of effective draws.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import arviz
import numpy as np
import pyro
import torch
from pyro.infer.autoguide import AutoMultivariateNormal
from pyro.infer.autoguide.initialization import init_to_median

from pyrovae.errors import UserError
from pyrovae.posterior.distances import mean_error_sd, noise_floor, sd_ratio
from pyrovae.posterior.inference.draws import guide_samples
from pyrovae.posterior.inference.laplace import laplace
from pyrovae.posterior.inference.mcmc import run_mcmc
from pyrovae.posterior.inference.variational import VariationalResult, fit_guide
from pyrovae.posterior.methods.base import Budget
from pyrovae.posterior.methods.mcmc import MCMC_CHAINS
from pyrovae.posterior.reference import find_reference
from pyrovae.posterior.targets import zoo

CASES = ("regression_far", "blr", "kidscore_momiq")
ARMS = ("mvn", "mvn_1024", "laplace_start", "baseline")
"""The variational fits compared: pyrovae's auto_mvn, the same with 1,024 particles per
step throughout (16 times the default: what the fit would reach with little gradient
noise), Pyro's AutoMultivariateNormal started at the Laplace approximation, and the same
from the prior median (the old pyrovae)."""
TITLES = {
    "mvn": "auto_mvn",
    "mvn_1024": "1024 particles",
    "laplace_start": "Laplace start",
    "baseline": "baseline",
}
PARTICLES = {"mvn_1024": 1024}
DRAWS_PER_CHAIN = Budget().draws // MCMC_CHAINS
WARMUP = max(500, DRAWS_PER_CHAIN)  # as pyrovae.posterior.methods.mcmc.McmcMethod.run
FIT_FIGURES = (
    ("seconds", "seconds", "{:.3g}"),
    ("steps", "steps", "{:.0f}"),
    ("max_abs_mean_error_sd", "max |mean error| / sd", "{:.3g}"),
    ("min_sd_ratio", "min sd ratio", "{:.3f}"),
    ("max_sd_ratio", "max sd ratio", "{:.3f}"),
)
NUTS_FIGURES = (
    ("seconds", "seconds", "{:.3g}"),
    ("ess_min", "min bulk ESS", "{:.0f}"),
    ("seconds_same_ess", "seconds for the fit's draws", "{:.3g}"),
)


class Case:
    """A zoo model with its reference draws and their noise floor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = zoo.get_model(name)
        reference = find_reference(self.model, seed=0)
        self.reference, self.source = reference.draws, reference.source
        self.floor = noise_floor(self.reference, seed=0)
        self.draws = self.reference.shape[0] // 2
        """Draws of each fit, and the effective draws NUTS is timed for: the size of the
        reference halves the noise floor compares, so the floor applies to the fits."""

    @property
    def floor_sd_band(self) -> tuple[float, float]:
        log_ratio = self.floor["max_abs_log_sd_ratio"]
        return math.exp(-log_ratio), math.exp(log_ratio)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def baseline_guide(model: Callable, seed: int) -> AutoMultivariateNormal:
    """Pyro's full-rank autoguide from the prior median, as pyrovae built it before."""
    pyro.set_rng_seed(seed)
    with pyro.settings.context(module_local_params=True):
        return AutoMultivariateNormal(model, init_loc_fn=init_to_median, init_scale=0.01)


def exact_figures(case: Case, fit: VariationalResult) -> dict[str, float]:
    """Mean error and sd ratios of the fitted Gaussian itself against the exact posterior
    (real-valued parameters only, so unconstrained space is the parameters' space)."""
    exact = case.model.exact
    if exact is None:
        return {}
    with torch.no_grad():
        q = fit.guide.get_posterior()
        mean, cov = q.mean.double().numpy(), q.covariance_matrix.double().numpy()
    sd = exact.covariance.diagonal().sqrt().numpy()
    errors = (mean - exact.mean.numpy()) / sd
    ratios = np.sqrt(np.diag(cov)) / sd
    return {
        "exact_max_abs_mean_error_sd": float(np.max(np.abs(errors))),
        "exact_max_abs_log_sd_ratio": float(np.max(np.abs(np.log(ratios)))),
    }


def fit_figures(
    case: Case, fit: VariationalResult, draws: np.ndarray, seconds: float
) -> dict[str, float]:
    """How long the fit took and how far its draws are from the reference."""
    errors, ratios = mean_error_sd(draws, case.reference), sd_ratio(draws, case.reference)
    return {
        **exact_figures(case, fit),
        "seconds": seconds,
        "steps": float(fit.steps),
        "converged": float(fit.converged),
        "max_abs_mean_error_sd": float(np.max(np.abs(errors))),
        "min_sd_ratio": float(np.min(ratios)),
        "max_sd_ratio": float(np.max(ratios)),
        "max_abs_log_sd_ratio": float(np.max(np.abs(np.log(ratios)))),
    }


def laplace_start_guide(model: Callable, data: dict, seed: int) -> AutoMultivariateNormal:
    """Pyro's full-rank autoguide started at the Laplace approximation (its mean at the
    mode, its covariance the inverse Hessian), optimized in the model's own coordinates:
    the same start as pyrovae's ``auto_mvn`` without the whitening."""
    start = laplace(model, data, seed=seed)
    return gaussian_guide(model, data, seed, start.loc, start.scale_tril)


def gaussian_guide(
    model: Callable, data: dict, seed: int, loc: torch.Tensor, tril: torch.Tensor
) -> AutoMultivariateNormal:
    """Pyro's full-rank autoguide set to ``N(loc, tril tril^T)`` in unconstrained space."""
    guide = baseline_guide(model, seed)
    with pyro.settings.context(module_local_params=True):
        guide(**data)  # create the parameters
        tril = tril.to(guide.loc)
        scale = tril.diagonal()
        with torch.no_grad():
            guide.loc.copy_(loc.to(guide.loc))
        guide.scale = scale
        guide.scale_tril = tril / scale[:, None]
    return guide


def run_fit(
    case: Case,
    make: Callable[[int], str | Callable],
    seed: int,
    max_steps: int,
    label: str,
    particles: int = 64,
) -> dict:
    """Build the guide, fit it, then draw as many draws as half the reference (the noise
    floor's halves): the wall time covers all three, and the fit's own ELBO estimates."""
    m = case.model
    start = time.perf_counter()
    guide = make(seed)
    fit = fit_guide(m.model, m.data, guide, seed=seed, max_steps=max_steps, particles=particles)
    samples = guide_samples(m.model, fit.guide, m.data, list(m.parameters), case.draws, seed)
    seconds = time.perf_counter() - start
    figures = fit_figures(case, fit, zoo.flatten(samples, m.parameters), seconds)
    log(
        f"[{case.name} seed {seed}] {label}: {seconds:.1f} s, {fit.judged}; "
        f"max |mean error| {figures['max_abs_mean_error_sd']:.3g} sd, sd ratio "
        f"{figures['min_sd_ratio']:.3f}..{figures['max_sd_ratio']:.3f}"
    )
    return figures


def run_nuts(case: Case, seed: int, chains: int) -> dict[str, float]:
    """NUTS chains as ``pyrovae compare`` runs them; min bulk ESS over the parameters."""
    m = case.model
    result = run_mcmc(
        m.model,
        m.data,
        kernel="nuts",
        num_samples=DRAWS_PER_CHAIN,
        warmup_steps=WARMUP,
        num_chains=chains,
        seed=seed,
    )
    chains = zoo.flatten(result.samples, m.parameters, batch_ndim=2)  # (chains, draws, P)
    ess = min(
        float(arviz.ess(np.ascontiguousarray(chains[..., p]), method="bulk"))
        for p in range(chains.shape[-1])
    )
    log(f"[{case.name} seed {seed}] NUTS: {result.seconds:.1f} s, min bulk ESS {ess:.0f}")
    return {
        "seconds": result.seconds,
        "ess_min": ess,
        "seconds_same_ess": result.seconds / ess * case.draws,
    }


def within_floor(case: Case, figures: dict[str, float]) -> bool:
    return (
        figures["max_abs_mean_error_sd"] <= case.floor["max_abs_mean_error_sd"]
        and figures["max_abs_log_sd_ratio"] <= case.floor["max_abs_log_sd_ratio"]
    )


def mean_sd(values: list[float], fmt: str) -> str:
    """``mean±sd`` over seeds (sd with ddof 1; just the mean for one seed)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return fmt.format(mean)
    return f"{fmt.format(mean)}±{fmt.format(float(np.std(values, ddof=1)))}"


def run_case(case: Case, args: argparse.Namespace) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {arm: [] for arm in (*ARMS, "nuts")}
    model, data = case.model.model, case.model.data
    makers = {
        "mvn": lambda seed: "auto_mvn",
        "mvn_1024": lambda seed: "auto_mvn",
        "laplace_start": lambda seed: laplace_start_guide(model, data, seed),
        "baseline": lambda seed: baseline_guide(model, seed),
    }
    for seed in range(args.seeds):
        for arm in ARMS:
            steps = 20_000 if arm.startswith("mvn") else args.baseline_max_steps
            particles = PARTICLES.get(arm, 64)
            runs[arm].append(run_fit(case, makers[arm], seed, steps, arm, particles))
        runs["nuts"].append(run_nuts(case, seed, args.nuts_chains))
    return runs


def nuts_over_mvn(runs: dict[str, list[dict]]) -> list[float]:
    return [
        n["seconds_same_ess"] / v["seconds"] for n, v in zip(runs["nuts"], runs["mvn"], strict=True)
    ]


def print_table(case: Case, runs: dict[str, list[dict]]) -> None:
    seeds = len(runs["mvn"])
    low, high = case.floor_sd_band
    parameters, draws = case.reference.shape[1], case.reference.shape[0]
    print(
        f"\n{case.name}: {parameters} parameters, reference {case.source} ({draws} draws); "
        f"{case.draws} draws of each fit; mean ± sd over {seeds} seed(s)"
    )
    print(
        f"  noise floor: max |mean error| {case.floor['max_abs_mean_error_sd']:.3g} sd, "
        f"sd ratio {low:.3f}..{high:.3f}"
    )
    print(f"  {'':24s}" + "".join(f"{TITLES[arm]:>18s}" for arm in ARMS))
    for key, label, fmt in FIT_FIGURES:
        cells = [mean_sd([r[key] for r in runs[arm]], fmt) for arm in ARMS]
        print(f"  {label:24s}" + "".join(f"{cell:>18s}" for cell in cells))
    converged = [f"{sum(r['converged'] > 0 for r in runs[arm])}/{seeds}" for arm in ARMS]
    print(f"  {'converged':24s}" + "".join(f"{cell:>18s}" for cell in converged))
    print(f"  {'':24s} {'NUTS':>18s}")
    for key, label, fmt in NUTS_FIGURES:
        print(f"  {label:24s} {mean_sd([r[key] for r in runs['nuts']], fmt):>18s}")
    ratio = mean_sd(nuts_over_mvn(runs), "{:.3g}")
    print(f"  NUTS seconds for as many effective draws / auto_mvn seconds: {ratio}")
    inside = sum(within_floor(case, r) for r in runs["mvn"])
    verdict = "within" if inside == seeds else "NOT within"
    print(f"  auto_mvn is {verdict} the noise floor on every seed ({inside}/{seeds} seeds)")
    if "exact_max_abs_mean_error_sd" in runs["mvn"][0]:
        error = mean_sd([r["exact_max_abs_mean_error_sd"] for r in runs["mvn"]], "{:.2g}")
        ratio = mean_sd([r["exact_max_abs_log_sd_ratio"] for r in runs["mvn"]], "{:.2g}")
        print(f"  auto_mvn's Gaussian vs the exact posterior: max |mean error| {error} sd,")
        print(f"  max |log sd ratio| {ratio}")


def key_values(case: Case, runs: dict[str, list[dict]]) -> list[str]:
    name, seeds = case.name, len(runs["mvn"])
    low, high = case.floor_sd_band
    lines = [
        f"{name}_floor_max_abs_mean_error_sd={case.floor['max_abs_mean_error_sd']:.3g}",
        f"{name}_floor_sd_ratio={low:.3f}..{high:.3f}",
    ]
    for method in ARMS:
        for key, _, fmt in FIT_FIGURES:
            lines.append(f"{name}_{method}_{key}={mean_sd([r[key] for r in runs[method]], fmt)}")
        converged = sum(r["converged"] > 0 for r in runs[method])
        lines.append(f"{name}_{method}_converged={converged}/{seeds}")
    inside = sum(within_floor(case, r) for r in runs["mvn"])
    lines.append(f"{name}_mvn_within_noise_floor={inside}/{seeds}")
    for key in ("exact_max_abs_mean_error_sd", "exact_max_abs_log_sd_ratio"):
        if key in runs["mvn"][0]:
            lines.append(f"{name}_mvn_{key}={mean_sd([r[key] for r in runs['mvn']], '{:.2g}')}")
    for key, _, fmt in NUTS_FIGURES:
        lines.append(f"{name}_nuts_{key}={mean_sd([r[key] for r in runs['nuts']], fmt)}")
    lines.append(f"{name}_nuts_over_mvn_time={mean_sd(nuts_over_mvn(runs), '{:.3g}')}")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="auto_mvn vs Pyro AutoMultivariateNormal vs NUTS, fitted to convergence."
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument(
        "--cases", nargs="+", choices=CASES, default=list(CASES), help="default: all three"
    )
    parser.add_argument(
        "--baseline-max-steps",
        type=int,
        default=20_000,
        help="step budget of the baseline fit (default 20000, fit_guide's default)",
    )
    parser.add_argument(
        "--nuts-chains",
        type=int,
        default=MCMC_CHAINS,
        help=f"NUTS chains per seed (default {MCMC_CHAINS}, as pyrovae compare)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(
        f"auto_mvn vs Pyro AutoMultivariateNormal (baseline max {args.baseline_max_steps:,} "
        f"steps) vs NUTS ({args.nuts_chains} chain(s) x ({WARMUP} warm-up + {DRAWS_PER_CHAIN} "
        "draws)); "
        f"{args.seeds} seed(s); torch threads "
        f"{torch.get_num_threads()}"
    )
    start = time.perf_counter()
    results = []
    for name in args.cases:
        try:
            case = Case(name)
        except UserError as err:
            print(f"{name}: skipped ({' '.join(str(err).split())})")
            continue
        log(f"[{name}] reference: {case.source}, {case.reference.shape[0]} draws")
        runs = run_case(case, args)
        print_table(case, runs)
        results.append((case, runs))
    log(f"total {time.perf_counter() - start:.0f} s")
    print()
    for case, runs in results:
        print("\n".join(key_values(case, runs)))
    ratios = [float(np.mean(nuts_over_mvn(runs))) for _, runs in results]
    print(f"ratio={np.mean(ratios):.3g}" if ratios else "ratio=nan")


if __name__ == "__main__":
    main()
