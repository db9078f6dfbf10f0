"""The VAE's model/guide pair: shapes, sites, scaling and conveniences."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyrovae.models import VAE
from pyrovae.spec import LikelihoodSpec, ModelSpec, NetworkSpec, PriorSpec

LIKELIHOODS = [
    LikelihoodSpec("bernoulli"),
    LikelihoodSpec("continuous_bernoulli"),
    LikelihoodSpec("gaussian", "decoder"),
    LikelihoodSpec("gaussian", "learned"),
    LikelihoodSpec("gaussian", 0.3),
    LikelihoodSpec("laplace", "learned"),
    LikelihoodSpec("laplace", "decoder"),
    LikelihoodSpec("discretized_logistic"),
]


def make(likelihood: LikelihoodSpec, latent: int = 3, d: int = 12) -> VAE:
    torch.manual_seed(0)
    spec = ModelSpec(
        latent_dim=latent,
        encoder=NetworkSpec(hidden=(16,)),
        decoder=NetworkSpec(hidden=(16,)),
        likelihood=likelihood,
    )
    return VAE(spec, d)


def data_for(likelihood: LikelihoodSpec, n: int = 5, d: int = 12) -> torch.Tensor:
    x = torch.rand(n, d)
    if likelihood.name == "discretized_logistic":  # 8-bit values k / 255
        return (x * 255).round() / 255
    return torch.bernoulli(x) if likelihood.name == "bernoulli" else x


@pytest.fixture(autouse=True)
def _validation():
    with pyro.validation_enabled(True):
        yield


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda s: f"{s.name}-{s.scale}")
def test_model_and_guide_sites_and_shapes(likelihood):
    vae, x = make(likelihood), data_for(likelihood)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    z_model, x_site = model_trace.nodes["z"], model_trace.nodes["x"]
    assert z_model["value"].shape == (5, 3)
    assert z_model["fn"].event_shape == (3,) and z_model["fn"].batch_shape == (5,)
    assert x_site["is_observed"] and torch.equal(x_site["value"], x)
    assert x_site["log_prob"].shape == (5,)
    assert guide_trace.nodes["z"]["log_prob"].shape == (5,)
    assert torch.isfinite(x_site["log_prob"]).all()
    assert {"data", "z", "x"} <= set(model_trace.nodes)


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda s: f"{s.name}-{s.scale}")
def test_conveniences_shapes_and_ranges(likelihood):
    vae, x = make(likelihood), data_for(likelihood)
    loc, scale = vae.encode(x)
    assert loc.shape == scale.shape == (5, 3) and (scale > 0).all()
    assert vae.decode(torch.randn(7, 3)).shape == (7, 12)
    assert vae.decode(torch.randn(2, 7, 3)).shape == (2, 7, 12)
    assert vae.reconstruct(x).shape == (5, 12)
    samples = vae.sample(4, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (4, 12)
    if likelihood.name in ("bernoulli", "continuous_bernoulli", "discretized_logistic"):
        assert ((samples >= 0) & (samples <= 1)).all()


def test_subsample_scaling_multiplies_log_density_by_n_over_b():
    vae, x = make(LIKELIHOODS[0]), data_for(LIKELIHOODS[0], n=4)
    guide_trace = poutine.trace(vae.guide).get_trace(x, 100)
    replayed = poutine.replay(vae.model, trace=guide_trace)
    scaled = poutine.trace(replayed).get_trace(x, 100)
    plain = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    ratio = scaled.log_prob_sum() / plain.log_prob_sum()
    assert ratio.item() == pytest.approx(25.0, rel=1e-5)


def test_beta_scales_only_the_latent_site():
    vae, x = make(LIKELIHOODS[0]), data_for(LIKELIHOODS[0])
    trace = poutine.trace(vae.model).get_trace(x, None, 0.25)
    assert trace.nodes["z"]["scale"] == 0.25
    assert trace.nodes["x"]["scale"] == 1.0
    guide_trace = poutine.trace(vae.guide).get_trace(x, None, 0.25)
    assert guide_trace.nodes["z"]["scale"] == 0.25


def test_learned_scale_is_one_parameter_and_fixed_scale_none():
    learned = make(LikelihoodSpec("gaussian", "learned"))
    fixed = make(LikelihoodSpec("gaussian", 0.3))
    n_learned = sum(p.numel() for p in learned.parameters())
    n_fixed = sum(p.numel() for p in fixed.parameters())
    assert n_learned == n_fixed + 1
    assert fixed.likelihood.scale().item() == pytest.approx(0.3)
    assert learned.likelihood.scale().item() == pytest.approx(1.0, abs=1e-6)


def test_decoder_scale_doubles_the_decoder_output():
    vae = make(LikelihoodSpec("gaussian", "decoder"))
    assert vae.decoder[-1].out_features == 24


def test_prior_scale_is_used():
    vae = VAE(ModelSpec(latent_dim=2, prior=PriorSpec("normal", 3.0)), 4)
    prior = vae.prior(torch.zeros(1))
    assert torch.equal(prior.base_dist.scale, torch.full((2,), 3.0))
    assert prior.log_prob(torch.zeros(2)).item() == pytest.approx(
        -2 * math.log(3 * math.sqrt(2 * math.pi))
    )


def test_linear_gaussian_only_for_linear_gaussian_models():
    spec = ModelSpec(
        latent_dim=2, decoder=NetworkSpec(hidden=()), likelihood=LikelihoodSpec("gaussian")
    )
    w, b, s = VAE(spec, 5).linear_gaussian()
    assert w.shape == (5, 2) and b.shape == (5,) and s.shape == ()
    assert VAE(ModelSpec(latent_dim=2), 5).linear_gaussian() is None
    decoder_scale = ModelSpec(
        latent_dim=2,
        decoder=NetworkSpec(hidden=()),
        likelihood=LikelihoodSpec("gaussian", "decoder"),
    )
    assert VAE(decoder_scale, 5).linear_gaussian() is None


def test_two_vaes_do_not_share_parameters():
    a, b = make(LIKELIHOODS[0]), make(LIKELIHOODS[0])
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))
    assert len(pyro.get_param_store()) == 0
