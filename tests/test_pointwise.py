"""Pointwise log-likelihood and posterior predictive draws of Pyro models."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import pyrovae.posterior.inference.pointwise as pointwise_module
from pyrovae.errors import UserError
from pyrovae.posterior.inference.pointwise import model_sites, pointwise
from pyrovae.posterior.targets import zoo


def _normal_log_prob(y: np.ndarray, mean: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2 * np.pi * scale**2) - 0.5 * ((y - mean) / scale) ** 2


def test_normal_normal_log_likelihood_by_hand():
    model = zoo.get_model("normal_normal")
    mu = torch.linspace(1.0, 2.0, 7, dtype=torch.float64)
    result = pointwise(model.model, model.data, {"mu": mu})
    y = model.data["y"].double().numpy()
    expected = _normal_log_prob(y[None, :], mu.numpy()[:, None], 1.0)
    assert result.log_likelihood["y"].shape == (7, 20)
    assert result.log_likelihood["y"].dtype == np.float64
    np.testing.assert_allclose(result.log_likelihood["y"], expected, rtol=1e-5)
    np.testing.assert_array_equal(result.observed_data["y"], y)
    assert result.posterior_predictive == {}


def test_vector_latent_padding_and_regression_by_hand():
    """beta (S, 1, 3) as a vectorized guide gives it; y ~ N(X beta, 0.5^2) per row."""
    model = zoo.get_model("blr_known_noise")
    beta = torch.randn(5, 1, 3, generator=torch.Generator().manual_seed(0))
    result = pointwise(model.model, model.data, {"beta": beta})
    x, y = model.data["X"].double().numpy(), model.data["y"].double().numpy()
    mean = beta.double().numpy()[:, 0, :] @ x.T
    expected = _normal_log_prob(y, mean, 0.5)
    np.testing.assert_allclose(result.log_likelihood["y"], expected, rtol=1e-5)


def test_eight_schools_needs_latents_not_deterministic_sites():
    model = zoo.get_model("eight_schools_noncentered")
    sites = model_sites(model.model, model.data)
    assert list(sites.latent) == ["mu", "tau", "theta_trans"]  # theta is deterministic
    assert list(sites.observed) == ["y"] and sites.nesting == 1
    gen = torch.Generator().manual_seed(1)
    draws = {
        "mu": torch.randn(6, generator=gen),
        "tau": torch.rand(6, generator=gen) + 0.5,
        "theta_trans": torch.randn(6, 8, generator=gen),
        "theta": torch.zeros(6, 8),  # a deterministic site in the draws is recomputed
    }
    result = pointwise(model.model, model.data, draws)
    theta = (draws["mu"][:, None] + draws["tau"][:, None] * draws["theta_trans"]).numpy()
    sigma, y = model.data["sigma"].numpy(), model.data["y"].numpy()
    np.testing.assert_allclose(
        result.log_likelihood["y"], _normal_log_prob(y, theta, sigma), rtol=1e-5
    )
    del draws["theta_trans"]
    with pytest.raises(UserError, match=r"lack latent site\(s\) \['theta_trans'\]"):
        pointwise(model.model, model.data, draws)


def test_posterior_predictive_draws_follow_the_likelihood():
    model = zoo.get_model("normal_normal")
    mu = torch.full((4000,), 3.0)
    first = pointwise(model.model, model.data, {"mu": mu}, predictive=True, seed=5)
    again = pointwise(model.model, model.data, {"mu": mu}, predictive=True, seed=5)
    draws = first.posterior_predictive["y"]
    assert draws.shape == (4000, 20)
    np.testing.assert_array_equal(draws, again.posterior_predictive["y"])  # seeded
    # y_rep ~ N(3, 1): mean and sd of 80,000 values within 4 standard errors
    assert abs(draws.mean() - 3.0) < 4 / np.sqrt(draws.size)
    assert abs(draws.std() - 1.0) < 4 / np.sqrt(2 * draws.size)


def _scalar_only_model(y):
    """A model that cannot take a batch of draws: float(mu) needs one value."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    shift = float(mu)
    with pyro.plate("obs", y.shape[0]):
        pyro.sample("y", dist.Normal(shift, 1.0), obs=y)


def test_models_that_do_not_vectorize_are_evaluated_draw_by_draw():
    y = torch.tensor([0.5, 1.0, 2.5])
    mu = torch.tensor([0.0, 1.0, 2.0])
    result = pointwise(_scalar_only_model, {"y": y}, {"mu": mu}, predictive=True)
    expected = _normal_log_prob(y.numpy()[None, :], mu.numpy()[:, None], 1.0)
    np.testing.assert_allclose(result.log_likelihood["y"], expected, rtol=1e-6)
    assert result.posterior_predictive["y"].shape == (3, 3)


def test_chunks_give_the_same_values(monkeypatch):
    model = zoo.get_model("logistic_regression")
    beta = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    whole = pointwise(model.model, model.data, {"beta": beta})
    monkeypatch.setattr(pointwise_module, "CHUNK_ELEMENTS", 700)  # 7 draws of 100 rows
    chunked = pointwise(model.model, model.data, {"beta": beta})
    np.testing.assert_array_equal(whole.log_likelihood["y"], chunked.log_likelihood["y"])


def test_bad_draws_are_one_line_errors():
    model = zoo.get_model("blr_known_noise")
    with pytest.raises(UserError, match="draws of 'beta' have shape") as err:
        pointwise(model.model, model.data, {"beta": torch.zeros(5, 4)})
    assert "\n" not in str(err.value)

    def broken(y):
        raise ValueError("no\nluck")

    with pytest.raises(UserError, match="the model fails on its data: ValueError: no luck"):
        pointwise(broken, {"y": torch.zeros(2)}, {})
