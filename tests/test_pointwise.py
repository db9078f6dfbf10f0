"""Pointwise log-likelihood and posterior predictive draws of Pyro models."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import SHARED_DATA
from pyro import poutine
from torch.distributions import biject_to

import pyrovae.posterior.inference.pointwise as pointwise_module
from pyrovae.errors import UserError
from pyrovae.posterior.inference.pointwise import DrawByDrawWarning, model_sites, pointwise
from pyrovae.posterior.targets import zoo

DB = SHARED_DATA / "posteriordb"
NEEDS_DB = {"blr", "kidscore_momiq"}  # data from the posteriordb subset, as in test_zoo.py


def _zoo_params() -> list:
    skip = pytest.mark.skipif(
        not (DB / "posteriors").is_dir(), reason="needs the posteriordb subset in ../shared/data"
    )
    return [pytest.param(n, marks=skip) if n in NEEDS_DB else n for n in zoo.MODELS]


def _zoo(name: str) -> zoo.ZooModel:
    return zoo.get_model(name, root=DB if name in NEEDS_DB else None)


def _spread_draws(model, data, count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``count`` distinct draws ``(S, *value_shape)`` of every latent site, in its support.

    Prior draws would do for proper priors, but a flat prior's ``sample`` is a constant;
    distinct draws let a test catch values that land on the wrong draw.
    """
    gen = torch.Generator().manual_seed(seed)
    trace = poutine.trace(model).get_trace(**data)
    draws = {}
    for name in model_sites(model, data).latent:
        fn = trace.nodes[name]["fn"]
        free = 0.5 * torch.randn(count, *fn.batch_shape, *fn.event_shape, generator=gen)
        draws[name] = biject_to(fn.support)(free)
    return draws


def _loop_log_likelihood(model, data, draws: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Reference: one conditioned model run per draw, ``log p(y | theta_s)`` per site."""
    observed = list(model_sites(model, data).observed)  # conditioned latents look observed
    count = next(iter(draws.values())).shape[0]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in observed}
    for s in range(count):
        values = {name: value[s] for name, value in draws.items()}
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(**data)
        for name in observed:
            site = trace.nodes[name]
            rows[name].append(site["fn"].log_prob(site["value"]).detach().double().numpy())
    return {name: np.stack(values) for name, values in rows.items()}


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


def _branching_model(y):
    """Python control flow on a sampled value: ``if mu > 0`` needs one value of mu."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    scale = 1.0 if mu > 0 else 3.0
    with pyro.plate("obs", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, scale), obs=y)


def test_models_that_do_not_vectorize_are_evaluated_draw_by_draw():
    y = torch.tensor([0.5, 1.0, 2.5])
    mu = torch.tensor([0.0, 1.0, 2.0])
    with pytest.warns(DrawByDrawWarning, match="_scalar_only_model"):
        result = pointwise(_scalar_only_model, {"y": y}, {"mu": mu}, predictive=True)
    expected = _normal_log_prob(y.numpy()[None, :], mu.numpy()[:, None], 1.0)
    np.testing.assert_allclose(result.log_likelihood["y"], expected, rtol=1e-6)
    assert result.posterior_predictive["y"].shape == (3, 3)


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_models_take_the_vectorized_path(name, monkeypatch):
    """Every built-in model runs all draws in one plate: no per-draw fallback, no warning,
    and the values equal one conditioned run per draw."""
    model = _zoo(name)
    draws = _spread_draws(model.model, model.data, 12)
    batched = []
    vectorized = pointwise_module._vectorized

    def spy(*args, **kwargs):
        batched.append(next(iter(args[3].values())).shape[0])
        return vectorized(*args, **kwargs)

    def fallback(*args, **kwargs):
        raise AssertionError(f"{name} fell back to one draw at a time")

    monkeypatch.setattr(pointwise_module, "_vectorized", spy)
    monkeypatch.setattr(pointwise_module, "_one_by_one", fallback)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DrawByDrawWarning)
        result = pointwise(model.model, model.data, draws, predictive=True)
    assert batched == [12]
    expected = _loop_log_likelihood(model.model, model.data, draws)
    assert set(result.log_likelihood) == set(expected)
    for site, values in expected.items():
        np.testing.assert_allclose(result.log_likelihood[site], values, rtol=1e-5, atol=1e-5)
        assert result.posterior_predictive[site].shape == (12, *result.observed_data[site].shape)


def test_fallback_warns_once_per_call_and_matches_a_loop(monkeypatch):
    """Four chunks of 3 draws, one warning; values as one conditioned run per draw."""
    y = torch.tensor([-1.0, 0.5, 2.0, 4.0])
    mu = torch.linspace(-3.0, 3.0, 12)
    monkeypatch.setattr(pointwise_module, "CHUNK_ELEMENTS", 12)  # 3 draws of 4 values
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pointwise(_branching_model, {"y": y}, {"mu": mu})
    messages = [str(w.message) for w in caught if issubclass(w.category, DrawByDrawWarning)]
    assert len(messages) == 1, messages
    assert "'_branching_model'" in messages[0] and "12 draw(s)" in messages[0]
    assert "one model run at a time" in messages[0] and "slow" in messages[0]
    assert "Boolean value of Tensor" in messages[0]  # why: the branch on a batch
    assert "\n" not in messages[0]
    assert caught[0].filename == __file__  # points at the caller of pointwise
    expected = _loop_log_likelihood(_branching_model, {"y": y}, {"mu": mu})["y"]
    scale = np.where(mu.numpy() > 0, 1.0, 3.0)[:, None]
    by_hand = _normal_log_prob(y.numpy()[None, :], mu.numpy()[:, None], scale)
    np.testing.assert_allclose(expected, by_hand, rtol=1e-5)
    np.testing.assert_allclose(result.log_likelihood["y"], expected, rtol=1e-6)


def test_errors_other_than_shape_errors_are_not_masked_by_the_fallback():
    """Only shape-like errors (RuntimeError, ValueError, IndexError, TypeError) fall back."""

    def batch_refusing(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        if mu.ndim:
            raise KeyError("no batches here")
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("error", DrawByDrawWarning)
        with pytest.raises(KeyError, match="no batches here"):
            pointwise(batch_refusing, {"y": torch.tensor(0.0)}, {"mu": torch.zeros(3)})


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
