"""Tests of pyrovae.posterior.inference.mcmc on targets with exact posteriors.

Moment checks compare against the exact posterior within 4 Monte Carlo standard
errors: MCSE(mean) = sd / sqrt(ESS) with the ESS that ``run_mcmc`` reports, and
MCSE(sd) ~= sd / sqrt(2 * ESS_sq), where ESS_sq is the ESS of the squared centred
draws (the delta-method error of a Gaussian sample sd; approximate). The reported ESS
must agree within 20% with ``arviz.ess(method="bulk")`` computed here from the raw
draws, so an over-reported ESS cannot widen its own band (it is ArviZ's bulk ESS, so
the agreement is exact; :func:`test_ess_and_r_hat_are_arvizs` pins that). Every run is
seeded, so the outcome is fixed; the sizes keep each MCSE below a fifth of the sd.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.ops.stats import effective_sample_size

from pyrovae.errors import UserError
from pyrovae.posterior.inference.mcmc import KERNELS, METROPOLIS_INIT_SCALE, McmcResult, run_mcmc

# y_i ~ N(mu, 1), mu ~ N(0, 10^2): conjugate, posterior N(sum(y) / prec, 1 / prec).
Y = 1.0 + torch.linspace(-2.0, 2.0, 20)
PRIOR_SD = 10.0
POST_PREC = 1.0 / PRIOR_SD**2 + len(Y)
POST_MEAN = float(Y.sum()) / POST_PREC
POST_SD = POST_PREC**-0.5

# x ~ N(0, [[1, 0.9], [0.9, 1]]): the target itself is the "posterior".
CORR = 0.9
MVN_SCALE_TRIL = torch.linalg.cholesky(torch.tensor([[1.0, CORR], [CORR, 1.0]]))


def conjugate_model(y: torch.Tensor) -> None:
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    pyro.deterministic("mu_shift", mu + 1.0)
    pyro.deterministic("mu_pair", torch.stack([mu, 2.0 * mu]))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def correlated_model() -> None:
    # scale_tril instead of a covariance: no Cholesky in every potential evaluation
    pyro.sample("x", dist.MultivariateNormal(torch.zeros(2), scale_tril=MVN_SCALE_TRIL))


def funnel_model() -> None:
    """Neal's funnel in 2-D: the neck at very negative v defeats one adapted step size."""
    v = pyro.sample("v", dist.Normal(0.0, 3.0))
    pyro.sample("x", dist.Normal(0.0, torch.exp(v / 2)))


def _run_conjugate(kernel: str, warmup: int, draws: int) -> McmcResult:
    return run_mcmc(
        conjugate_model,
        {"y": Y},
        kernel=kernel,
        warmup_steps=warmup,
        num_samples=draws,
        num_chains=2,
        seed=0,
    )


@pytest.fixture(scope="module")
def nuts_conj() -> McmcResult:
    return _run_conjugate("nuts", 300, 500)


@pytest.fixture(scope="module")
def hmc_conj() -> McmcResult:
    # Pyro's static HMC (trajectory 2*pi) can nearly return to its start on a unit-scale
    # Gaussian, so its ESS varies a lot between chains.
    return _run_conjugate("hmc", 200, 600)


@pytest.fixture(scope="module")
def metropolis_conj() -> McmcResult:
    return _run_conjugate("metropolis", 1000, 2000)


@pytest.fixture(scope="module")
def nuts_mvn() -> McmcResult:
    return run_mcmc(correlated_model, warmup_steps=200, num_samples=500, num_chains=2, seed=0)


@pytest.fixture(scope="module")
def metropolis_mvn() -> McmcResult:
    # Pyro's adaptation gain is 0.1 / sqrt(1 + t): it needs a few thousand steps
    # to bring the scale up from 0.1.
    return run_mcmc(
        correlated_model,
        kernel="metropolis",
        warmup_steps=3000,
        num_samples=2000,
        num_chains=2,
        seed=0,
    )


def _check_moments(draws: torch.Tensor, ess: torch.Tensor, mean: float, sd: float) -> None:
    """draws: (chains, draws) of one scalar; checks mean and sd within 4 MCSE."""
    x = draws.double()
    ess_arviz = az.ess(x.numpy(), method="bulk")
    assert abs(float(ess) / ess_arviz - 1) < 0.2, (float(ess), ess_arviz)
    sample_mean, sample_sd = x.mean(), x.std()
    ess_sq = effective_sample_size((x - sample_mean) ** 2, chain_dim=0, sample_dim=1)
    mcse_mean = sd / math.sqrt(float(ess))
    mcse_sd = sd / math.sqrt(2.0 * float(ess_sq))
    assert mcse_mean < 0.2 * sd and mcse_sd < 0.2 * sd, (float(ess), float(ess_sq))
    assert abs(float(sample_mean) - mean) < 4 * mcse_mean, (float(sample_mean), mean, mcse_mean)
    assert abs(float(sample_sd) - sd) < 4 * mcse_sd, (float(sample_sd), sd, mcse_sd)


@pytest.mark.parametrize(
    "name",
    # HMC: 17 s; its path is also checked by test_same_seed_same_samples[hmc]
    ["nuts_conj", pytest.param("hmc_conj", marks=pytest.mark.slow), "metropolis_conj"],
)
def test_conjugate_posterior_moments(name: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(name)
    _check_moments(result.samples["mu"], result.ess["mu"], POST_MEAN, POST_SD)


@pytest.mark.parametrize("name", ["nuts_mvn", "metropolis_mvn"])
def test_correlated_gaussian_moments(name: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(name)
    x = result.samples["x"]
    for i in range(2):
        _check_moments(x[..., i], result.ess["x"][i], 0.0, 1.0)
    corr = torch.corrcoef(x.reshape(-1, 2).T.double())[0, 1]
    assert abs(float(corr) - CORR) < 0.05


@pytest.mark.parametrize(
    "name", ["nuts_conj", "hmc_conj", "metropolis_conj", "nuts_mvn", "metropolis_mvn"]
)
def test_ess_and_r_hat_are_arvizs(name: str, request: pytest.FixtureRequest) -> None:
    """Every site's ESS is ArviZ's bulk ESS and its R-hat ArviZ's rank-normalised R-hat
    of the raw draws (what arviz_summary.csv shows), to rounding."""
    result = request.getfixturevalue(name)
    for site, draws in result.samples.items():
        dataset = az.convert_to_dataset({site: draws.double().numpy()})
        expected_ess = az.ess(dataset, method="bulk")[site].values
        expected_r_hat = az.rhat(dataset)[site].values
        np.testing.assert_allclose(result.ess[site].numpy(), expected_ess, rtol=1e-10)
        np.testing.assert_allclose(result.r_hat[site].numpy(), expected_r_hat, rtol=1e-10)
        assert result.ess[site].dtype == result.r_hat[site].dtype == torch.float64


def test_constant_site_and_single_chain_diagnostics_are_nan() -> None:
    """A constant site has no ESS or R-hat (ArviZ would count its draws as its ESS); one
    chain has an ESS but no R-hat, as in ArviZ (arviz_summary.csv shows a dash)."""

    def with_constant() -> None:
        pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.deterministic("one", torch.ones(2))

    result = run_mcmc(
        with_constant, kernel="metropolis", warmup_steps=50, num_samples=50, num_chains=1
    )
    assert torch.isnan(result.ess["one"]).all() and torch.isnan(result.r_hat["one"]).all()
    assert result.ess["one"].shape == result.r_hat["one"].shape == (2,)
    assert torch.isfinite(result.ess["x"]) and torch.isnan(result.r_hat["x"])
    assert result.min_ess == pytest.approx(float(result.ess["x"]))


def test_shapes_and_deterministic_sites(nuts_conj: McmcResult) -> None:
    s = nuts_conj.samples
    assert set(s) == {"mu", "mu_shift", "mu_pair"}
    assert s["mu"].shape == (2, 500)
    assert s["mu_shift"].shape == (2, 500)
    assert s["mu_pair"].shape == (2, 500, 2)
    torch.testing.assert_close(s["mu_shift"], s["mu"] + 1.0)
    torch.testing.assert_close(s["mu_pair"], torch.stack([s["mu"], 2.0 * s["mu"]], dim=-1))
    assert nuts_conj.ess["mu"].shape == () and nuts_conj.r_hat["mu"].shape == ()
    assert nuts_conj.ess["mu_pair"].shape == (2,) and nuts_conj.r_hat["mu_pair"].shape == (2,)
    for field in ("acceptance_rate", "step_size", "divergences"):
        assert getattr(nuts_conj, field).shape == (2,)
    assert nuts_conj.num_steps.shape == (2, 500)


def test_vector_site_shapes(nuts_mvn: McmcResult) -> None:
    assert nuts_mvn.samples["x"].shape == (2, 500, 2)
    assert nuts_mvn.ess["x"].shape == (2,) and nuts_mvn.r_hat["x"].shape == (2,)


@pytest.mark.parametrize(
    "name", ["nuts_conj", "hmc_conj", "metropolis_conj", "nuts_mvn", "metropolis_mvn"]
)
def test_sampler_diagnostics_are_sane(name: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(name)
    assert result.kernel == name.split("_")[0]
    assert torch.all(result.acceptance_rate > 0) and torch.all(result.acceptance_rate <= 1)
    assert torch.all(result.step_size > 0)
    assert result.seconds > 0
    assert 0 < result.min_ess and math.isfinite(result.min_ess)
    assert result.ess_per_second == pytest.approx(result.min_ess / result.seconds)
    for site, r_hat in result.r_hat.items():
        assert torch.all(r_hat < 1.05), (site, r_hat)


def test_hmc_and_nuts_diagnostics(
    nuts_conj: McmcResult, nuts_mvn: McmcResult, hmc_conj: McmcResult
) -> None:
    for result in (nuts_conj, nuts_mvn, hmc_conj):
        assert result.divergences.dtype == torch.int64
        assert result.divergences.tolist() == [0, 0]
        assert result.num_steps.dtype == torch.int64
        assert torch.all(result.num_steps >= 1) and torch.all(result.num_steps <= 1023)
    # static HMC: constant trajectory of int(2 pi / step size) leapfrog steps
    expected = [max(1, int(2 * math.pi / float(e))) for e in hmc_conj.step_size]
    assert hmc_conj.num_steps.tolist() == [[n] * 600 for n in expected]
    # NUTS trees on the correlated target vary in size
    assert len(torch.unique(nuts_mvn.num_steps)) > 1


def test_metropolis_adapts_towards_target(
    metropolis_mvn: McmcResult, metropolis_conj: McmcResult
) -> None:
    assert metropolis_mvn.divergences is None and metropolis_mvn.num_steps is None
    assert torch.all((metropolis_mvn.acceptance_rate - 0.234).abs() < 0.1)
    for result in (metropolis_mvn, metropolis_conj):
        assert torch.all(result.step_size > 2 * METROPOLIS_INIT_SCALE)


def test_funnel_makes_nuts_diverge() -> None:
    result = run_mcmc(funnel_model, warmup_steps=50, num_samples=300, num_chains=1, seed=0)
    assert result.divergences.dtype == torch.int64
    assert 0 < int(result.divergences[0]) <= 300
    # which draws diverged: a flag per kept draw whose count is the chain's total
    assert result.diverging.shape == (1, 300) and result.diverging.dtype == torch.bool
    assert result.diverging.sum(1).tolist() == result.divergences.tolist()


@pytest.mark.parametrize("kernel", KERNELS)
def test_same_seed_same_samples(kernel: str) -> None:
    def run(seed: int, chains: int = 2) -> McmcResult:
        return run_mcmc(
            conjugate_model,
            {"y": Y},
            kernel=kernel,
            warmup_steps=20,
            num_samples=20,
            num_chains=chains,
            seed=seed,
        )

    first, again, other, chain_one = run(3), run(3), run(4), run(4, chains=1)
    for site in first.samples:
        assert torch.equal(first.samples[site], again.samples[site])
        # chain c is seeded with seed + c
        assert torch.equal(first.samples[site][1], chain_one.samples[site][0])
    assert torch.equal(first.step_size, again.step_size)
    assert not torch.equal(first.samples["mu"], other.samples["mu"])


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.*:DeprecationWarning")
def test_jit_compile_passes_through() -> None:
    result = run_mcmc(
        conjugate_model, {"y": Y}, warmup_steps=30, num_samples=30, num_chains=1, jit_compile=True
    )
    assert result.samples["mu"].shape == (1, 30)
    assert torch.isfinite(result.samples["mu"]).all()


def test_few_draws_give_nan_diagnostics() -> None:
    result = run_mcmc(
        correlated_model, kernel="metropolis", warmup_steps=5, num_samples=3, num_chains=1
    )
    assert result.samples["x"].shape == (1, 3, 2)
    assert torch.isnan(result.ess["x"]).all() and torch.isnan(result.r_hat["x"]).all()
    assert math.isnan(result.min_ess)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kernel": "gibbs"}, "kernel must be one of nuts, hmc, metropolis"),
        ({"num_samples": 0}, "num_samples must be an integer >= 1"),
        ({"num_samples": 2.5}, "num_samples must be an integer >= 1"),
        ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
        ({"num_chains": 0}, "num_chains must be an integer >= 1"),
        ({"num_chains": True}, "num_chains must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"target_accept_prob": 1.0}, "target_accept_prob must be a number in (0, 1)"),
        ({"max_plate_nesting": -1}, "max_plate_nesting must be an integer >= 0"),
        ({"model_kwargs": [Y]}, "model_kwargs must be a dict or None"),
        ({"model": None}, "model must be a callable"),
    ],
)
def test_invalid_arguments(kwargs: dict, words: str) -> None:
    args = {"model": conjugate_model, "model_kwargs": {"y": Y}, **kwargs}
    with pytest.raises(UserError) as info:
        run_mcmc(args.pop("model"), args.pop("model_kwargs"), **args)
    message = str(info.value)
    assert words in message and "\n" not in message
