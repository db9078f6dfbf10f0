"""Local posteriors of a trained VAE: methods, gaps and one-plate MCMC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic_spec

from pyrovae.local.posteriors import latent_names, local_comparison, local_posteriors
from pyrovae.models import frozen
from pyrovae.pipeline import train_model
from pyrovae.posterior import diagnostics
from pyrovae.stats import linear_gaussian


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A trained probabilistic-PCA VAE: its p(z|x) is Gaussian and known exactly."""
    outcome = train_model(
        synthetic_spec("train.epochs=30"), tmp_path_factory.mktemp("r"), progress=False
    )
    x = outcome.data.test[:3]
    result = local_posteriors(outcome.model, x, num_samples=1000, warmup_steps=300, num_chains=2)
    return outcome.model, x, result


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


def test_local_posteriors_as_inference_data(local):
    """Every method's InferenceData: z (point, latent) with 1-based coords as the comparison
    names them, MCMC sample_stats kept, each point's log-likelihood, no LOO."""
    _, _, result = local
    for method, log_lik in result.log_likelihood.items():
        assert log_lik.shape == (result.draws[method].shape[0], 3), method
        assert np.isfinite(log_lik).all()
    comparison = local_comparison(result)
    idatas = {"reference": comparison.reference_posterior}
    idatas.update({m.method: m.posterior for m in comparison.methods})
    for name, idata in idatas.items():
        z = idata.posterior["z"]
        assert z.dims == ("chain", "draw", "point", "latent"), name
        np.testing.assert_array_equal(z["point"].values, [1, 2, 3])
        assert idata.log_likelihood["x"].dims == ("chain", "draw", "point")
        assert idata.observed_data["x"].dims == ("point", "pixel")
        assert diagnostics.loo_variables(idata) == []  # see LOCAL_LOO_NOTE
    assert list(diagnostics.summary(idatas["per_point"]).index[:2]) == ["z[1,1]", "z[1,2]"]
    nuts = idatas["reference"]
    assert nuts.posterior["z"].shape[:2] == (2, 1000)  # the run's chains, not a flat draw axis
    assert {"diverging", "tree_size", "acceptance_rate"} <= set(nuts.sample_stats.data_vars)
    np.testing.assert_allclose(
        nuts.log_likelihood["x"].values.reshape(-1, 3), result.log_likelihood["nuts"]
    )
    # E_q* log p(x | z) <= ELBO(q*) + KL: the reconstruction term beats the ELBO per point
    assert (result.log_likelihood["per_point"].mean(0) > result.elbo["per_point"]).all()
