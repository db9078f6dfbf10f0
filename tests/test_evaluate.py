"""Held-out metrics against closed forms and constructed cases."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import synthetic_spec
from torch.distributions import Normal, kl_divergence

import pyrovae.evaluate.likelihood as ev
from pyrovae.models import VAE
from pyrovae.pipeline import train_model
from pyrovae.spec import LikelihoodSpec, ModelSpec, NetworkSpec
from pyrovae.stats import linear_gaussian


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The shipped probabilistic-PCA spec, trained (seeded, about 2 s)."""
    outcome = train_model(synthetic_spec(), tmp_path_factory.mktemp("ppca"), progress=False)
    vae, test = outcome.model.eval(), outcome.data.test
    exact = linear_gaussian.log_marginal(test, *vae.linear_gaussian()).mean().item()
    return vae, test, exact


def test_importance_log_likelihood_matches_exact_within_reported_se(trained):
    vae, test, exact = trained
    result = ev.evaluate(vae, test, particles=1000, seed=0)
    assert 0 < result.log_likelihood_se < 0.01  # small enough for the check to bite
    assert abs(result.log_likelihood - exact) <= 2 * result.log_likelihood_se
    assert result.elbo < result.log_likelihood  # the bound sits below
    assert result.elbo == pytest.approx(result.reconstruction - result.kl)


def test_reported_se_is_calibrated_across_seeds(trained):
    """Standardised errors over 12 seeds look like N(0, 1): the SE is honest."""
    vae, test, exact = trained
    z = []
    for seed in range(12):
        torch.manual_seed(100 + seed)
        ll = ev.importance_log_likelihood(vae, test, 200)
        z.append((ll.log_px.mean().item() - exact) / ll.mean_se)
    z = torch.tensor(z)
    assert abs(z.mean().item()) < 3 / math.sqrt(12) + 0.5  # mean of 12 N(0,1), plus IWAE bias
    assert 0.4 < z.std().item() < 2.0


def test_a_poor_guide_gives_a_larger_se_and_still_covers_exact(trained):
    vae, test, exact = trained
    poor = VAE(vae.spec, vae.data_dim)
    poor.load_state_dict(vae.state_dict())
    with torch.no_grad():
        poor.encoder[-1].bias[2:] += 1.5  # inflate q's scale
    good = ev.evaluate(vae, test, particles=1000, seed=0)
    bad = ev.evaluate(poor, test, particles=1000, seed=0)
    assert bad.log_likelihood_se > 2 * good.log_likelihood_se
    assert bad.elbo < good.elbo - 0.5
    assert abs(bad.log_likelihood - exact) <= 3 * bad.log_likelihood_se


def test_chunking_does_not_change_the_estimate(trained, monkeypatch):
    vae, test, _exact = trained
    monkeypatch.setattr(ev, "MAX_SAMPLES_PER_PASS", 37)  # uneven batches and chunks
    ll = ev.importance_log_likelihood(vae, test[:50], 13)
    assert ll.log_px.shape == ll.se.shape == (50,)
    reference = linear_gaussian.log_marginal(test[:50], *vae.linear_gaussian()).float()
    assert torch.all((ll.log_px - reference).abs() < 6 * ll.se + 1e-4)


def _collapsed_vae(active: int, latent: int = 4, d: int = 6) -> VAE:
    torch.manual_seed(0)
    spec = ModelSpec(
        latent_dim=latent,
        encoder=NetworkSpec(hidden=()),
        decoder=NetworkSpec(hidden=()),
        likelihood=LikelihoodSpec("gaussian", 1.0),
    )
    vae = VAE(spec, d)
    with torch.no_grad():
        layer = vae.encoder[0]
        layer.weight[active:latent] = 0.0  # means of the last units ignore x
        layer.bias[active:latent] = 0.0
        layer.weight[latent + active :] = 0.0  # and their scales are the prior's
        layer.bias[latent + active :] = math.log(math.e - 1)  # softplus(.) = 1
        layer.weight[:active] *= 5
    return vae


def test_active_units_counts_known_collapsed_dimensions():
    vae = _collapsed_vae(active=2)
    x = torch.randn(500, 6)
    result = ev.evaluate(vae, x, particles=10)
    assert result.active.tolist() == [True, True, False, False]
    assert result.to_metrics()["active_units"] == 2
    assert torch.all(result.posterior_mean_variance[2:] == 0)
    assert torch.all(result.kl_per_dimension[2:] < 1e-3)  # q = prior up to MIN_SCALE
    assert torch.all(result.kl_per_dimension[:2] > 0.1)


def test_active_units_threshold():
    loc = torch.stack([torch.full((100,), 3.0), torch.randn(100) * 0.05, torch.randn(100)], 1)
    variance, active = ev.active_units(loc)
    assert active.tolist() == [False, False, True]
    assert variance[1] < ev.ACTIVE_UNIT_THRESHOLD < variance[2]


def test_kl_per_dimension_matches_torch():
    loc, scale = torch.randn(5, 3), torch.rand(5, 3) + 0.1
    ours = ev.kl_per_dimension(loc, scale, 2.0)
    theirs = kl_divergence(Normal(loc, scale), Normal(0.0, 2.0))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_bits_per_dim_only_for_binary_data():
    torch.manual_seed(0)
    small = NetworkSpec(hidden=(8,))
    spec = ModelSpec(latent_dim=2, encoder=small, decoder=small)
    vae = VAE(spec, 10)
    x = torch.bernoulli(torch.full((20, 10), 0.3))
    result = ev.evaluate(vae, x, particles=5)
    assert result.bits_per_dim == pytest.approx(-result.log_likelihood / (10 * math.log(2)))
    assert "test_bits_per_dim" in result.to_metrics()
    gaussian = _collapsed_vae(active=2)
    assert ev.evaluate(gaussian, torch.randn(20, 6), particles=5).bits_per_dim is None


def test_metrics_keys_and_units():
    result = ev.evaluate(_collapsed_vae(active=1), torch.randn(30, 6), particles=20)
    metrics = result.to_metrics()
    assert set(metrics) >= {
        "test_elbo_nats",
        "test_reconstruction_nats",
        "test_kl_nats",
        "test_log_likelihood_nats",
        "test_log_likelihood_se",
        "test_log_likelihood_particles",
        "active_units",
        "latent_dim",
    }
    assert metrics["test_log_likelihood_particles"] == 20 and metrics["latent_dim"] == 4
