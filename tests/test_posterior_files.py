"""Every method's posterior on disk: NetCDF groups, identical names and coords, LOO, tables.

One small comparison on normal_normal (NUTS, a mean-field guide, the exact reference) feeds
every test; its LOO is checked against the closed form. (Metropolis goes through the same
``from_mcmc`` as NUTS; its saved file is checked in test_diagnostics.)
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from pyrovae.posterior import diagnostics
from pyrovae.posterior.files import loo_lines, write_posteriors
from pyrovae.posterior.run import compare_posterior
from pyrovae.posterior.targets import zoo

METHODS = ["nuts", "auto_normal"]
SAMPLES = 800  # per method; MCMC: 4 chains of 200


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model = zoo.get_model("normal_normal")
    comparison = compare_posterior(model, METHODS, num_samples=SAMPLES, seeds=1, predictive=True)
    folder = tmp_path_factory.mktemp("compare")
    files = write_posteriors(comparison, folder)
    loaded = {name: diagnostics.load(path) for name, path in files.netcdf.items()}
    return model, comparison, folder, files, loaded


def _exact_elpd_loo(y: np.ndarray) -> float:
    """y_i ~ N(mu, 1), mu ~ N(0, 10^2): the LOO predictive of y_i is N(m_-i, 1 + v_-i)."""
    total = 0.0
    for i in range(len(y)):
        rest = np.delete(y, i)
        variance = 1.0 / (1.0 / 100.0 + len(rest))
        scale, mean = 1.0 + variance, variance * rest.sum()
        total += -0.5 * math.log(2 * math.pi * scale) - 0.5 * (y[i] - mean) ** 2 / scale
    return total


def test_every_method_is_saved_with_its_groups(run):
    _, _, folder, files, loaded = run
    assert list(files.netcdf) == ["reference", *METHODS]
    assert all(p.parent == folder / "posteriors" for p in files.netcdf.values())
    for name, idata in loaded.items():
        expected = {"posterior", "log_likelihood", "observed_data", "posterior_predictive"}
        assert expected <= set(idata.groups()), name
    nuts = loaded["nuts"].sample_stats
    assert nuts["diverging"].dtype == bool and nuts["diverging"].shape == (4, SAMPLES // 4)
    assert {"acceptance_rate", "step_size", "tree_size"} <= set(nuts.data_vars)
    guide = loaded["auto_normal"].sample_stats
    assert {"lp", "log_q"} == set(guide.data_vars)
    assert "sample_stats" not in loaded["reference"].groups()  # exact draws
    attrs = loaded["auto_normal"].attrs
    assert attrs["method"] == "auto_normal" and len(attrs["khats"]) == 1
    assert attrs["khat"] == attrs["khats"][0] < 0.7  # the mean-field family is exact here
    row = next(r for r in run[1].method_rows if r["method"] == "auto_normal")
    assert attrs["fit_converged"] == 1 and attrs["fits_converged"] == row["fits_converged"]
    assert attrs["fit_convergence"] == row["convergence"]
    assert attrs["fit_convergence"].startswith("converged (plateau and offset) in ")
    assert attrs["fit_steps"] == row["fit_steps"] > 0
    assert attrs["fit_offset_sd"] == row["offset_sd"] < 0.1
    assert "fit_converged" not in loaded["nuts"].attrs


def test_names_dims_and_coords_are_identical_across_methods(run):
    _, _, _, _, loaded = run
    first = loaded["reference"]
    for name, idata in loaded.items():
        for group in ("posterior", "log_likelihood", "observed_data", "posterior_predictive"):
            mine, theirs = getattr(idata, group), getattr(first, group)
            assert list(mine.data_vars) == list(theirs.data_vars), (name, group)
            for var in theirs.data_vars:
                assert mine[var].dims == theirs[var].dims, (name, group, var)
            for dim in set(theirs.dims) - {"chain", "draw"}:
                np.testing.assert_array_equal(mine[dim].values, theirs[dim].values)
        np.testing.assert_array_equal(idata.observed_data["y"].values, first.observed_data["y"])
    assert first.log_likelihood["y"].dims == ("chain", "draw", "y_dim_0")
    np.testing.assert_array_equal(first.log_likelihood["y_dim_0"].values, np.arange(1, 21))


def test_posterior_predictive_draws_are_the_likelihood_at_each_draw(run):
    """y_rep - mu_s ~ N(0, 1) independently: mean and sd within 4 standard errors."""
    _, _, _, _, loaded = run
    for name, idata in loaded.items():
        y_rep = idata.posterior_predictive["y"]
        mu = idata.posterior["mu"]
        assert y_rep.shape == (*mu.shape, 20), name
        residual = (y_rep - mu).values.reshape(-1)
        assert abs(residual.mean()) < 4 / math.sqrt(residual.size), name
        assert abs(residual.std() - 1.0) < 4 / math.sqrt(2 * residual.size), name


def test_loo_of_every_method_matches_the_closed_form(run):
    """Each elpd_loo within 4 Monte Carlo standard errors of the exact value (the MCSE is
    checked against the spread over seeds in test_diagnostics), and NUTS against the guide
    within 4 of their combined MCSE."""
    model, _, _, files, _ = run
    exact = _exact_elpd_loo(model.data["y"].double().numpy())
    rows = {row["method"]: row for row in files.loo}
    assert list(rows) == ["reference", *METHODS]
    for name, row in rows.items():
        assert math.isfinite(row["elpd_loo"]) and row["khat_bad"] == 0, name
        assert abs(row["elpd_loo"] - exact) < 4 * row["mcse"], (name, row["elpd_loo"], exact)
    nuts, guide = rows["nuts"], rows["auto_normal"]
    assert abs(nuts["elpd_loo"] - guide["elpd_loo"]) < 4 * math.hypot(nuts["mcse"], guide["mcse"])
    assert guide["q_corrected"] and not nuts["q_corrected"]
    assert all(name in line for name, line in zip(rows, loo_lines(files.loo), strict=True))


def test_tables_name_the_methods_as_the_comparison_does(run):
    _, comparison, folder, files, _ = run
    names = ["reference", *(m.method for m in comparison.methods)]
    with (folder / "arviz_summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert [row["method"] for row in summary] == names  # one parameter, mu
    assert {"mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat"} <= set(summary[0])
    markdown = (folder / "arviz_summary.md").read_text()
    assert (
        [line[4:] for line in markdown.splitlines() if line.startswith("### ")]
        == [
            "Sampler warnings",
            "reference (analytic)",  # as the comparison's figures name it
            *names[1:],
        ]
    )
    with (folder / "loo.csv").open() as handle:
        loo = list(csv.DictReader(handle))
    assert [row["method"] for row in loo] == names
    assert tuple(loo[0]) == diagnostics.LOO_COLUMNS
    text = (folder / "loo.md").read_text()
    assert "| method | rank | elpd_loo | se | MCSE |" in text
    assert set(files.warnings) == set(names)
    assert set(files.tables) == {"summary_csv", "summary_md", "loo_csv", "loo_md"}
    assert set(files.figures) == {"density", "forest"}  # a pair plot needs two parameters
    assert all(path.stat().st_size > 1000 for path in files.figures.values())
