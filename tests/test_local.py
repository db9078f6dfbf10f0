"""Local posteriors of a trained VAE: methods, gaps and one-plate MCMC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic_spec

from pyrovae import linear_gaussian
from pyrovae.infer.local import frozen, latent_names, local_comparison, local_posteriors
from pyrovae.pipeline import train_model


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A trained probabilistic-PCA VAE: its p(z|x) is Gaussian and known exactly."""
    outcome = train_model(
        synthetic_spec("train.epochs=30"), tmp_path_factory.mktemp("r"), progress=False
    )
    x = outcome.data.test[:3]
    result = local_posteriors(outcome.vae, x, num_samples=1000, warmup_steps=300, num_chains=2)
    return outcome.vae, x, result


def test_all_points_sampled_in_one_plate_against_the_exact_posterior(local):
    vae, x, result = local
    assert result.draws["nuts"].shape == (2000, 3, 2)
    assert result.mcmc["nuts"].samples["z"].shape == (2, 1000, 3, 2)
    exact = linear_gaussian.posterior(x, *vae.linear_gaussian())
    sd = torch.diagonal(exact.covariance).sqrt().numpy()
    ess = result.mcmc["nuts"].ess["z"].numpy()
    mcse = sd / np.sqrt(ess)
    error = np.abs(result.draws["nuts"].mean(0) - exact.mean.numpy())
    assert (error < 4 * mcse).all()


def test_gaps_are_consistent(local):
    _, _, result = local
    assert result.log_px.shape == result.approximation_gap.shape == (3,)
    # q* is at least as good as the encoder, and both are below log p(x) (up to MC error)
    assert (result.amortization_gap > -0.05).all()
    assert (result.approximation_gap > -0.05).all()
    assert result.approximation_gap.mean() < 0.5  # a Gaussian family fits a Gaussian p(z|x)


def test_local_comparison_uses_nuts_as_reference(local):
    _vae, _x, result = local
    comparison = local_comparison(result)
    assert comparison.parameters == tuple(latent_names(3, 2))
    assert comparison.parameters[:2] == ("z[1,1]", "z[1,2]")
    assert {r["method"] for r in comparison.method_rows} == {"amortized", "per_point", "metropolis"}
    per_point = next(r for r in comparison.method_rows if r["method"] == "per_point")
    assert per_point["max_abs_mean_error_sd"] < 0.3


def test_frozen_copy_leaves_the_model_alone():
    from pyrovae.models import VAE
    from pyrovae.spec import ModelSpec

    vae = VAE(ModelSpec(), 8)
    copy = frozen(vae)
    assert all(p.requires_grad for p in vae.parameters())
    assert not any(p.requires_grad for p in copy.parameters())
