"""Tutorial 2: your own Pyro model, SVI guides against NUTS, read with ArviZ.

Any Pyro model function can be compared: pyrovae runs MCMC (NUTS) and variational
inference (SVI with Pyro's autoguides) on it, measures each against a reference
posterior, and saves every posterior as ArviZ InferenceData (NetCDF ``.nc``).

Our model is a Bayesian linear regression, y ~ N(alpha + beta * x, 1), on 12 points
whose x lie between 5 and 15, far from 0. A line through such points can tilt about
their centre, so alpha and beta are strongly correlated a posteriori. A mean-field
guide (``auto_normal``, independent Gaussians) cannot represent that; a full-rank
one (``auto_mvn``) can. Watch the comparison say so.

    python examples/tutorial_2_your_own_model.py [--out DIR] [--fast]
"""

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

from pyrovae.posterior.files import write_posteriors
from pyrovae.posterior.run import compare_posterior
from pyrovae.posterior.targets.user import load_user_model
from pyrovae.stats.linear_gaussian import GaussianPosterior

PRIOR_SD, NOISE_SD = 10.0, 1.0


def model(x, y):
    """The model: what `pyrovae compare this_file.py:model` would load."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, PRIOR_SD))  # latent sites are the
    beta = pyro.sample("beta", dist.Normal(0.0, PRIOR_SD))  # parameters compared
    with pyro.plate("obs", x.shape[0]):
        pyro.sample("y", dist.Normal(alpha + beta * x, NOISE_SD), obs=y)


if __name__ == "__main__":  # importing this file (as load_user_model does) runs only the above
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tutorial-2"))
    parser.add_argument("--fast", action="store_true", help="few draws, for a smoke test")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. Data, fixed seed, as the JSON object of keyword arguments that `--data` takes.
    rng = np.random.default_rng(0)
    x = rng.uniform(5.0, 15.0, size=12)
    y = 1.0 + 0.5 * x + NOISE_SD * rng.normal(size=12)
    (args.out / "data.json").write_text(json.dumps({"x": x.tolist(), "y": y.tolist()}))

    # 2. The model as a comparison target, exactly as the command line loads it. Without
    # more, the reference would be a long NUTS run (20,000 draws, minutes). This model is
    # conjugate, so we hand pyrovae its exact Gaussian posterior over (alpha, beta) instead.
    target = load_user_model(f"{Path(__file__).resolve()}:model", args.out / "data.json")
    design = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(design.T @ design / NOISE_SD**2 + np.eye(2) / PRIOR_SD**2)
    mean = cov @ design.T @ y / NOISE_SD**2
    exact = GaussianPosterior(torch.tensor(mean), torch.tensor(cov))
    target = dataclasses.replace(target, exact=exact)
    correlation = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    print(f"parameters {list(target.parameters)}; exact correlation {correlation:.3f}")

    # 3. Compare. Each method gets `num_samples` draws; each guide is fitted `seeds` times.
    methods = ["nuts", "auto_normal", "auto_mvn"]
    draws = 200 if args.fast else 4000
    comparison = compare_posterior(target, methods, num_samples=draws, seeds=1 if args.fast else 3)
    comparison.write(args.out)  # comparison.md, methods.csv, summary.csv, figures/
    files = write_posteriors(comparison, args.out)  # posteriors/*.nc, arviz_summary.*, loo.*
    for row in comparison.method_rows:  # sd ratio: sd / exact sd, 1 is right
        print(
            f"{row['method']:12} sd ratio {row['min_sd_ratio']:.2f}-{row['max_sd_ratio']:.2f}"
            f"  mean error {row['max_abs_mean_error_sd']:.3f} sd  verdict: {row['verdict']}"
        )

    # 4. Read the files back with plain ArviZ, as you would in a notebook.
    # R-hat compares chains, so it is NaN for one chain of draws (the guides, the exact
    # reference); ArviZ logs a warning for each such file, which we silence.
    logging.getLogger("arviz").setLevel(logging.ERROR)
    posteriors = {name: az.from_netcdf(path) for name, path in files.netcdf.items()}
    summaries = [
        az.summary(idata, var_names=["alpha", "beta"], round_to=3).assign(method=name)
        for name, idata in posteriors.items()
    ]
    columns = ["method", "parameter", "mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"]
    table = pd.concat(summaries).rename_axis("parameter").reset_index()[columns]
    table.to_csv(args.out / "summary_table.csv", index=False)
    print(table.to_string(index=False))

    # The 94% intervals of every method side by side: mean field is visibly too narrow.
    idatas, names = list(posteriors.values()), list(posteriors)
    axes = az.plot_forest(idatas, model_names=names, combined=True, figsize=(7, 4))
    axes[0].set_title("94% HDI of alpha and beta, by method")
    axes[0].get_legend().set_bbox_to_anchor((1.3, 1))  # move the legend off the intervals
    axes[0].figure.savefig(args.out / "forest_by_method.png", dpi=80, bbox_inches="tight")
    print(
        f"wrote {args.out / 'forest_by_method.png'}, {args.out / 'summary_table.csv'} "
        f"and {len(files.netcdf)} .nc files in {args.out / 'posteriors'}"
    )
