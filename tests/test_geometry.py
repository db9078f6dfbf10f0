"""NUTS on posteriors with hard geometry: dense mass, the Laplace warm start, tree depth.

``regression_year`` (intercept and slope correlated -0.99999, sds 2,000-fold apart) is
the posterior a diagonal mass matrix cannot sample: its transitions run to the maximum
tree depth. A dense one, started from the Laplace covariance, samples it in a few
leapfrog steps per draw. Moments are checked against the model's exact draws within 4
Monte Carlo standard errors (sd / sqrt(ESS), with ArviZ's bulk ESS, which must agree
with the sampler's own within 20% so an over-reported ESS cannot widen its own band).
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

from pyrovae.errors import UserError
from pyrovae.posterior import diagnostics
from pyrovae.posterior.inference.mcmc import (
    DENSE_MASS_MAX_DIM,
    resolve_mass,
    run_mcmc,
    unconstrained_size,
)
from pyrovae.posterior.inference.sampler_notes import sampler_notes, treedepth_warning
from pyrovae.posterior.inference.warm_start import ScaledWelford, warm_start
from pyrovae.posterior.methods.mcmc import mcmc_posterior
from pyrovae.posterior.targets.precision import default_dtype, with_dtype
from pyrovae.posterior.targets.zoo import flatten, get_model


@pytest.fixture(scope="module")
def year():
    return with_dtype(get_model("regression_year"), "float64")


def test_unconstrained_size_counts_supports_and_plates() -> None:
    def model() -> None:
        pyro.sample("w", dist.Dirichlet(torch.ones(4)))  # simplex of 4: 3 free values
        pyro.sample("s", dist.HalfNormal(1.0))
        with pyro.plate("g", 5):
            pyro.sample("b", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(5))

    assert unconstrained_size(model, {}) == 3 + 1 + 5
    assert resolve_mass("auto", DENSE_MASS_MAX_DIM) == "dense"
    assert resolve_mass("auto", DENSE_MASS_MAX_DIM + 1) == "diag"
    assert resolve_mass("diag", 2) == "diag" and resolve_mass("dense", 10_000) == "dense"
    with pytest.raises(UserError, match="mass must be one of"):
        run_mcmc(model, mass="full")


def test_warm_start_orders_sites_as_pyro_mass_matrix() -> None:
    """Pyro's dense block is over the sites sorted by name; the Laplace covariance of a
    Gaussian target is its exact covariance, so the reordered matrix is known."""
    cov = torch.tensor([[4.0, 1.0, 0.5], [1.0, 2.0, 0.3], [0.5, 0.3, 1.0]], dtype=torch.float64)

    def model() -> None:  # "z" (2 values) comes first in the trace, "a" (1 value) second
        x = pyro.sample("z", dist.Normal(torch.zeros(2, dtype=torch.float64), 10.0).to_event(1))
        a = pyro.sample("a", dist.Normal(torch.zeros((), dtype=torch.float64), 10.0))
        joint = torch.cat([x, a.reshape(1)])
        pyro.factor("target", dist.MultivariateNormal(torch.ones(3).double(), cov).log_prob(joint))
        pyro.factor("unprior", -dist.Normal(torch.zeros(3).double(), 10.0).log_prob(joint).sum())

    with default_dtype("float64"):
        start = warm_start(model, {})
    assert start.ok, start.reason
    assert list(start.shapes) == ["a", "z"]
    order = [2, 0, 1]  # a, z[0], z[1]
    expected = cov[order][:, order]
    assert torch.allclose(start.covariance["dense"], expected, atol=1e-6)
    assert torch.allclose(start.covariance["diag"], expected.diagonal(), atol=1e-6)
    assert torch.allclose(start.loc, torch.ones(3, dtype=torch.float64), atol=1e-5)


def test_scaled_welford_pools_the_window_with_its_target() -> None:
    target = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    draws = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    welford = ScaledWelford(target)
    for row in draws:
        welford.update(row)
    sample_cov = torch.cov(draws.T)
    n, k = 20, 2 + 5  # k = d + 5 pseudo-draws of the target for a dense estimate
    expected = (n * sample_cov + k * target) / (n + k)
    assert torch.allclose(welford.get_covariance(), expected, atol=1e-12)
    assert torch.allclose(welford.get_covariance(regularize=False), sample_cov, atol=1e-12)
    diagonal = ScaledWelford(target.diagonal())
    for row in draws:
        diagonal.update(row)
    expected = (n * sample_cov.diagonal() + 5 * target.diagonal()) / (n + 5)
    assert torch.allclose(diagonal.get_covariance(), expected, atol=1e-12)


def _moments_within_mcse(result, model, exact: np.ndarray) -> None:
    idata = mcmc_posterior(model, result, "nuts")
    draws = flatten(result.samples, model.parameters, batch_ndim=2).reshape(-1, exact.shape[1])
    ess_ours = flatten({k: v.unsqueeze(0) for k, v in result.ess.items()}, model.parameters)[0]
    ess_arviz = az.ess(idata, method="bulk")
    ess = np.concatenate([np.atleast_1d(ess_arviz[name].values) for name in model.parameters])
    assert np.all(np.abs(ess_ours / ess - 1) < 0.2), (ess_ours, ess)
    mcse = exact.std(axis=0) / np.sqrt(ess)
    assert np.all(np.abs(draws.mean(axis=0) - exact.mean(axis=0)) < 4 * mcse)
    # sd: delta-method MCSE of a sample sd, sd / sqrt(2 ESS)
    sd_error = np.abs(draws.std(axis=0) / exact.std(axis=0) - 1)
    assert np.all(sd_error < 4 / np.sqrt(2 * ess) + 0.01), sd_error


def test_dense_mass_samples_the_correlated_regression(year) -> None:
    with default_dtype("float64"):
        result = run_mcmc(
            year.model, year.data, warmup_steps=300, num_samples=400, num_chains=2, seed=1
        )
    assert result.mass == "dense" and result.start == "laplace"
    assert int(result.treedepth_hits.sum()) == 0
    assert float(result.num_steps.double().mean()) < 31  # a few doublings, not 1,023 steps
    exact = year.exact_draws(np.random.default_rng(0), 20_000)
    _moments_within_mcse(result, year, exact)
    notes = sampler_notes(result)
    assert notes.mass == "dense" and notes.transitions == 800 and notes.warnings() == []


def test_diagonal_mass_hits_the_maximum_tree_depth_and_says_so(year) -> None:
    """A diagonal matrix cannot undo a -0.99999 correlation: every transition runs to the
    cap (depth 5 here, 31 leapfrog steps, to keep the test short) and both the tables'
    notes and the ArviZ warnings say so, pointing to --mass dense."""
    with default_dtype("float64"):
        result = run_mcmc(
            year.model,
            year.data,
            warmup_steps=60,
            num_samples=40,
            num_chains=1,
            mass="diag",
            max_tree_depth=5,
        )
    assert result.mass == "diag" and result.max_tree_steps == 31
    assert int(result.treedepth_hits.sum()) >= 20  # most of the 40
    (line,) = sampler_notes(result).warnings()
    assert "maximum tree depth 5 (31 leapfrog steps)" in line and "--mass dense" in line
    idata = mcmc_posterior(year, result, "nuts")
    assert idata.attrs["mass"] == "diag" and idata.attrs["max_tree_depth"] == 5
    assert any("maximum tree depth" in w for w in diagnostics.warnings(idata))


def test_treedepth_warning_threshold_and_advice() -> None:
    assert treedepth_warning(1, 1000, 10, "diag") is None  # 0.1%: a few cost little
    assert "--mass dense" in treedepth_warning(500, 1000, 10, "diag")
    assert "reparameterise" in treedepth_warning(500, 1000, 10, "dense")


def test_centred_eight_schools_funnel_raises_divergence_warnings() -> None:
    """The funnel of the centred eight schools: small tau is a neck one step size cannot
    enter, and NUTS reports divergent transitions (the warning the zoo model should raise).
    A diagonal mass matrix here; the dense one (the default at this size) diverges less
    but mixes tau no better (ESS warnings instead), which no mass matrix can fix."""
    model = with_dtype(get_model("eight_schools_centered"), "float64")
    with default_dtype("float64"):
        result = run_mcmc(
            model.model,
            model.data,
            warmup_steps=150,
            num_samples=200,
            num_chains=2,
            seed=0,
            mass="diag",
        )
    assert result.start.startswith("pyro's default (")  # no mode: tau -> 0 is unbounded
    assert int(result.divergences.sum()) > 0
    warnings = diagnostics.warnings(mcmc_posterior(model, result, "nuts"))
    assert any("divergent transition" in w for w in warnings)


def test_flat_positive_prior_is_sampled_like_stan() -> None:
    """A flat prior on sigma > 0 (Stan's implicit one) against a known posterior:
    y_i ~ N(0, sigma^2), p(sigma) flat => sigma^2 ~ InvGamma((n - 1) / 2, sum y^2 / 2)."""
    from pyrovae import flat

    y = torch.linspace(-2.0, 2.0, 15, dtype=torch.float64)

    def model(y: torch.Tensor) -> None:
        sigma = pyro.sample("sigma", flat(constraints.positive))
        with pyro.plate("obs", len(y)):
            pyro.sample("y", dist.Normal(0.0, sigma), obs=y)

    with default_dtype("float64"):
        result = run_mcmc(model, {"y": y}, warmup_steps=300, num_samples=1000, num_chains=2)
    rng = np.random.default_rng(0)
    exact = np.sqrt((float((y**2).sum()) / 2) / rng.gamma((len(y) - 1) / 2, size=100_000))
    draws = result.samples["sigma"].numpy().reshape(-1)
    mcse = exact.std() / np.sqrt(float(result.ess["sigma"]))
    assert abs(draws.mean() - exact.mean()) < 4 * mcse
