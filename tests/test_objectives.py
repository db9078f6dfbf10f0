"""Objectives against closed forms on a linear-Gaussian VAE.

When the guide is the exact posterior p(z|x), every importance weight equals
p(x): log w = log p(x) for every sample, so ELBO, IWAE bound and the Pyro
losses must all equal the closed-form log marginal up to float error.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyrovae.models import VAE
from pyrovae.models.likelihoods import MIN_SCALE, inverse_positive
from pyrovae.spec import LikelihoodSpec, ModelSpec, NetworkSpec
from pyrovae.stats import linear_gaussian
from pyrovae.train.objectives import (
    estimate_elbo,
    iwae_dreg_loss,
    iwae_loss,
    log_weights,
    make_objective,
)

D, L, NOISE = 4, 2, 0.5


def linear_vae() -> VAE:
    """A linear-Gaussian VAE whose encoder is set to the exact posterior."""
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g))
    weight = q[:, :L] * torch.tensor([2.0, 0.7])  # orthogonal columns: diagonal posterior
    bias = torch.randn(D, generator=g)
    spec = ModelSpec(
        latent_dim=L,
        encoder=NetworkSpec(hidden=()),
        decoder=NetworkSpec(hidden=()),
        likelihood=LikelihoodSpec("gaussian", NOISE),
    )
    vae = VAE(spec, D)
    post = linear_gaussian.posterior(torch.zeros(1, D), weight, bias, NOISE)
    cov = post.covariance.float()
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-6)
    gain = weight @ cov / NOISE**2  # loc = (x - b) @ gain
    with torch.no_grad():
        vae.decoder[0].weight.copy_(weight)
        vae.decoder[0].bias.copy_(bias)
        enc = vae.encoder[0]
        enc.weight.zero_()
        enc.weight[:L] = gain.T
        enc.bias[:L] = -(bias @ gain)
        sd = torch.diagonal(cov).sqrt()
        enc.bias[L:] = torch.tensor([inverse_positive(float(s)) for s in sd])
    return vae


@pytest.fixture
def setup():
    vae = linear_vae()
    x = torch.randn(6, D, generator=torch.Generator().manual_seed(4)) * 2
    w, b, s = vae.linear_gaussian()
    exact = linear_gaussian.log_marginal(x, w, b, s).float()
    return vae, x, exact


def test_posterior_guide_is_exact(setup):
    vae, x, _ = setup
    w, b, s = vae.linear_gaussian()
    loc, scale = vae.encode(x)
    post = linear_gaussian.posterior(x, w, b, s)
    assert torch.allclose(loc, post.mean.float(), atol=1e-5)
    assert torch.allclose(scale**2, torch.diagonal(post.covariance).float().expand(6, L), atol=1e-5)
    assert MIN_SCALE < scale.min()


def test_log_weights_equal_log_marginal_for_exact_guide(setup):
    vae, x, exact = setup
    torch.manual_seed(0)
    log_w = log_weights(vae.model, vae.guide, x, 50)
    assert log_w.shape == (50, 6)
    assert torch.allclose(log_w, exact.expand(50, 6), atol=1e-4)


def test_pyro_losses_equal_minus_log_marginal_for_exact_guide(setup):
    vae, x, exact = setup
    torch.manual_seed(0)
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(vae.model, vae.guide, x)
    assert loss.item() == pytest.approx(-exact.sum().item(), abs=1e-3)
    assert iwae_loss(vae.model, vae.guide, x, 6, 7).item() == pytest.approx(
        -exact.sum().item(), abs=1e-3
    )


def test_trace_elbo_equals_log_weights_and_gradients_by_reseeding(setup):
    vae, x, _ = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.3)  # move q away from the posterior
    params = list(vae.parameters())
    torch.manual_seed(11)
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(vae.model, vae.guide, x, 60)
    grads = torch.autograd.grad(loss, params)
    torch.manual_seed(11)
    ours = -log_weights(vae.model, vae.guide, x, 1).sum() * 10
    our_grads = torch.autograd.grad(ours, params)
    assert loss.item() == pytest.approx(ours.item(), rel=1e-6)
    for a, b in zip(grads, our_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def _closed_form_elbo(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x|z)] - KL(q || p) for diagonal Gaussian q and linear-Gaussian p."""
    w, b, s = (t.double() for t in vae.linear_gaussian())
    loc, scale = (t.double() for t in vae.encode(x))
    var = scale**2
    resid = x.double() - loc @ w.T - b
    expected_sq = (resid**2).sum(-1) + (var @ (w**2).sum(0))
    recon = -0.5 * D * math.log(2 * math.pi * s**2) - expected_sq / (2 * s**2)
    kl = 0.5 * (var + loc**2 - 1 - var.log()).sum(-1)
    return recon - kl


def test_elbo_estimate_matches_closed_form_within_monte_carlo_error(setup):
    vae, x, exact = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.4)
    n = 20000
    torch.manual_seed(1)
    draws = estimate_elbo(vae.model, vae.guide, x[:1].expand(n, D).contiguous())
    closed = _closed_form_elbo(vae, x[:1]).item()
    se = draws.std().item() / math.sqrt(n)
    assert abs(draws.mean().item() - closed) < 4 * se
    assert closed < exact[0].item()  # the ELBO is a strict bound for a wrong q


def test_analytic_kl_loss_uses_the_closed_form_kl(setup):
    vae, x, _ = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.4)
    torch.manual_seed(5)
    loss = TraceMeanField_ELBO(max_plate_nesting=1).differentiable_loss(vae.model, vae.guide, x)
    torch.manual_seed(5)
    loc, scale = vae.encode(x)
    z = loc + scale * torch.randn_like(loc)
    recon = vae.observation(z).log_prob(x)
    var = scale**2
    kl = 0.5 * (var + loc**2 - 1 - var.log()).sum(-1)
    assert loss.item() == pytest.approx(-(recon - kl).sum().item(), rel=1e-5)


def test_iwae_bound_increases_with_k_towards_log_marginal(setup):
    vae, x, exact = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.5)
    torch.manual_seed(2)
    xs = x[:1].expand(4000, D).contiguous()
    bounds = [
        (torch.logsumexp(log_weights(vae.model, vae.guide, xs, k), 0) - math.log(k)).mean().item()
        for k in (1, 5, 50)
    ]
    assert bounds[0] < bounds[1] < bounds[2] < exact[0].item() + 1e-3
    assert exact[0].item() - bounds[2] < 0.5 * (exact[0].item() - bounds[0])


def test_iwae_is_per_example_not_per_batch(setup):
    """Pyro's RenyiELBO mixes examples (pyro #3104); ours must not: the bound of a
    batch is the sum of the bounds of its examples, sample for sample."""
    vae, x, _ = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.5)
    torch.manual_seed(9)
    batch = iwae_loss(vae.model, vae.guide, x, 6, 5)
    torch.manual_seed(9)
    log_w = log_weights(vae.model, vae.guide, x, 5)
    per_example = torch.logsumexp(log_w, 0) - math.log(5)
    assert batch.item() == pytest.approx(-per_example.sum().item(), rel=1e-6)
    mixed = torch.logsumexp(log_w.sum(1), 0) - math.log(5)
    assert abs(mixed.item() - per_example.sum().item()) > 1e-3


def test_analytic_kl_objective_is_unbiased_for_the_log_marginal_with_exact_guide(setup):
    """With analytic KL only the expectation is exact: recon - KL varies with z."""
    vae, x, exact = setup
    objective = make_objective("analytic_kl", 400)
    torch.manual_seed(0)
    losses = torch.stack([objective(vae.model, vae.guide, x, 6, 1.0) for _ in range(10)])
    se = losses.std().item() / math.sqrt(10)
    assert se > 0
    assert abs(losses.mean().item() + exact.sum().item()) < 4 * se


@pytest.mark.parametrize("name", ["elbo", "iwae", "iwae_dreg"])
@pytest.mark.parametrize("particles", [1, 3])
def test_make_objective_scales_to_the_full_data_set(setup, name, particles):
    vae, x, exact = setup
    objective = make_objective(name, particles)
    torch.manual_seed(0)
    with pyro.validation_enabled(True):
        loss = objective(vae.model, vae.guide, x, 60, 1.0)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(-exact.sum().item() * 10, rel=1e-4)


def _grads(vae: VAE, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened gradients of ``loss`` for the encoder and for the decoder."""
    enc, dec = list(vae.encoder.parameters()), list(vae.decoder.parameters())
    grads = torch.autograd.grad(loss, enc + dec, allow_unused=True)
    flat = [
        g.flatten() if g is not None else torch.zeros(p.numel())
        for g, p in zip(grads, enc + dec, strict=True)
    ]
    n_enc = sum(p.numel() for p in enc)
    whole = torch.cat(flat)
    return whole[:n_enc], whole[n_enc:]


def test_dreg_has_the_iwae_value_and_decoder_gradient(setup):
    vae, x, _ = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.5)
    torch.manual_seed(5)
    plain = iwae_loss(vae.model, vae.guide, x, 60, 5)
    torch.manual_seed(5)
    dreg = iwae_dreg_loss(vae.model, vae.guide, x, 60, 5)
    assert dreg.item() == pytest.approx(plain.item(), rel=1e-6)
    enc_plain, dec_plain = _grads(vae, plain)
    enc_dreg, dec_dreg = _grads(vae, dreg)
    assert torch.allclose(dec_dreg, dec_plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(enc_dreg, enc_plain, rtol=1e-2, atol=1e-3)


def test_dreg_encoder_gradient_is_zero_at_the_exact_posterior(setup):
    """With q = p(z|x), log w does not depend on z, so every DReG draw is exactly 0
    for the encoder; the IWAE encoder gradient is only zero on average."""
    vae, x, _ = setup
    torch.manual_seed(6)
    enc_dreg, _ = _grads(vae, iwae_dreg_loss(vae.model, vae.guide, x, 6, 5))
    enc_plain, _ = _grads(vae, iwae_loss(vae.model, vae.guide, x, 6, 5))
    assert enc_dreg.abs().max().item() < 1e-3
    assert enc_plain.abs().max().item() > 0.1


def test_dreg_encoder_gradient_is_unbiased_with_less_variance(setup):
    """Away from the posterior, the mean DReG and IWAE encoder gradients agree within
    Monte Carlo error (both estimate the gradient of the same bound), and DReG's
    draws vary less."""
    vae, x, _ = setup
    with torch.no_grad():
        vae.encoder[0].bias.add_(0.5)
        vae.encoder[0].weight.mul_(0.8)
    torch.manual_seed(7)
    draws = 400
    plain = torch.stack(
        [_grads(vae, iwae_loss(vae.model, vae.guide, x, 6, 5))[0] for _ in range(draws)]
    )
    dreg = torch.stack(
        [_grads(vae, iwae_dreg_loss(vae.model, vae.guide, x, 6, 5))[0] for _ in range(draws)]
    )
    diff = plain.mean(0) - dreg.mean(0)
    se = ((plain.var(0) + dreg.var(0)) / draws).sqrt()
    moving = se > 1e-6
    assert moving.sum() > 10
    z = diff[moving] / se[moving]
    assert z.abs().max().item() < 4.5
    assert (z**2).mean().item() < 2.0
    assert dreg.var(0).sum().item() < 0.5 * plain.var(0).sum().item()
