"""Variational fits against exact Gaussian posteriors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyrovae.posterior.inference.variational as vi
from pyrovae.errors import PyrovaeError, UserError
from pyrovae.posterior.targets import zoo


def _exact(name: str):
    model = zoo.get_model(name)
    return model, model.exact.mean.numpy(), model.exact.covariance.numpy()


@pytest.mark.parametrize("name", ["normal_normal", "blr_known_noise"])
def test_full_covariance_guide_matches_exact_posterior_to_two_decimals(name):
    model, mean, cov = _exact(name)
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", seed=0)
    assert fit.converged
    posterior = fit.guide.get_posterior()  # unconstrained = constrained for real parameters
    loc = posterior.loc.detach().double().numpy()
    q_cov = posterior.covariance_matrix.detach().double().numpy()
    np.testing.assert_allclose(loc, mean, atol=0.005)
    np.testing.assert_allclose(q_cov, cov, atol=0.005)
    # q is the exact posterior's family: the ELBO reaches log p(y)
    assert fit.elbo <= model.log_evidence + 0.01
    assert model.log_evidence - fit.elbo < 0.02


def test_mean_field_underestimates_correlated_posterior_sds():
    model, _mean, cov = _exact("blr_known_noise")
    fit = vi.fit_guide(model.model, model.data, "auto_normal", seed=0)
    samples = vi.guide_samples(model.model, fit.guide, model.data, ["beta"], 4000)
    draws = zoo.flatten(samples, model.parameters)
    assert draws.shape == (4000, 3)
    sd_ratio = draws.std(0) / np.sqrt(np.diag(cov))
    optimal = 1 / np.sqrt(np.diag(np.linalg.inv(cov))) / np.sqrt(np.diag(cov))
    np.testing.assert_allclose(sd_ratio, optimal, rtol=0.1)  # mean field's known optimum
    assert (sd_ratio < 0.7).all()
    assert fit.elbo < model.log_evidence - 0.5


def test_importance_log_ratios_estimate_the_evidence():
    model, _, _ = _exact("blr_known_noise")
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", seed=1)
    log_ratios = vi.importance_log_ratios(model.model, fit.guide, model.data, 4000)
    assert log_ratios.shape == (4000,) and log_ratios.dtype == np.float64
    top = log_ratios.max()
    evidence = top + np.log(np.mean(np.exp(log_ratios - top)))
    assert evidence == pytest.approx(model.log_evidence, abs=0.02)
    assert log_ratios.std() < 0.2  # q close to p: nearly constant weights


def test_guide_samples_include_deterministic_sites_with_event_shapes():
    model = zoo.get_model("eight_schools_noncentered")
    fit = vi.fit_guide(model.model, model.data, "auto_normal", max_steps=200)
    samples = vi.guide_samples(model.model, fit.guide, model.data, ["mu", "tau", "theta"], 50)
    flat = zoo.flatten(samples, model.parameters)
    assert flat.shape == (50, 10)
    assert (samples["tau"] > 0).all()


@pytest.mark.parametrize("guide", vi.GUIDES)
def test_every_guide_fits_and_reports(guide):
    model, mean, _cov = _exact("normal_normal")
    fit = vi.fit_guide(model.model, model.data, guide, max_steps=3000)
    assert fit.losses.ndim == 1 and fit.seconds > 0
    draws = vi.guide_samples(model.model, fit.guide, model.data, ["mu"], 2000)["mu"]
    assert abs(draws.mean().item() - mean[0]) < 0.05
    assert fit.elbo < model.log_evidence + 0.01


def test_unknown_guide_and_non_finite_loss():
    model, _, _ = _exact("normal_normal")
    with pytest.raises(UserError, match="unknown guide 'auto_foo'"):
        vi.make_guide("auto_foo", model.model)

    def runaway(y):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.factor("pull", -((mu - 100.0) ** 2))  # drags mu far from its start at 0
        pyro.factor("cliff", torch.where(mu.abs() > 3, torch.tensor(float("nan")), 0.0))

    with pytest.raises(PyrovaeError, match=r"loss became nan at step \d+; try a smaller lr"):
        vi.fit_guide(runaway, {"y": None}, "auto_normal", particles=1)

    def broken_at_start(y):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.factor("nan", mu * torch.tensor(float("nan")))

    with pytest.raises(UserError, match="the model fails on its data"):
        vi.fit_guide(broken_at_start, {"y": None}, "auto_normal")


def test_max_plate_nesting():
    model = zoo.get_model("normal_normal")
    assert vi.max_plate_nesting(model.model, model.data) == 1

    def no_plates():
        import pyro
        import pyro.distributions as dist

        pyro.sample("a", dist.Normal(0.0, 1.0))

    assert vi.max_plate_nesting(no_plates, {}) == 0
