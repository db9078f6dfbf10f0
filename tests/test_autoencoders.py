"""The autoencoder family as Pyro model/guide pairs: losses, tying, corruption, sparsity."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyrovae.data import load_data
from pyrovae.errors import SpecError
from pyrovae.models import VAE, Autoencoder, build_model
from pyrovae.models.autoencoders import TiedDecoder, corrupt, sparsity_penalty
from pyrovae.spec import AUTOENCODER_KINDS, AutoencoderSpec, spec_from_dict
from pyrovae.train.loop import fit
from pyrovae.train.objectives import estimate_elbo, make_objective


def _spec(kind: str, **model):
    return spec_from_dict({"model": {"kind": kind, **model}})


def _model(kind: str, data_dim: int = 12, **model) -> Autoencoder:
    torch.manual_seed(0)
    return build_model(_spec(kind, **model).model, data_dim)


def test_build_model_picks_the_class_of_the_kind():
    assert isinstance(_model("vae"), VAE)
    for kind in AUTOENCODER_KINDS:
        assert isinstance(_model(kind), Autoencoder)


def test_elbo_of_a_point_mass_guide_is_the_gaussian_reconstruction_log_likelihood():
    """With a flat prior and a Delta guide, Trace_ELBO = log N(x; g(f(x)), s^2 I) exactly:
    -||x - x_hat||^2 / (2 s^2) - D/2 log(2 pi s^2), the L2 loss up to constants."""
    s = 0.5
    model = _model("ae", likelihood={"name": "gaussian", "scale": s})
    x = torch.randn(7, 12)
    x_hat = model.reconstruct(x)
    exact = -((x - x_hat) ** 2).sum(-1) / (2 * s**2) - 12 / 2 * math.log(2 * math.pi * s**2)
    assert torch.allclose(estimate_elbo(model.model, model.guide, x), exact, atol=1e-4)
    loss = make_objective("elbo", 1)(model.model, model.guide, x, 70, 1.0)
    assert loss.item() == pytest.approx(-exact.sum().item() * 10, rel=1e-5)


def test_tied_weights_are_one_parameter_shared_by_encoder_and_decoder():
    tied = _model("tied_ae", encoder={"hidden": [6]}, decoder={"hidden": [6]})
    untied = _model("ae", encoder={"hidden": [6]}, decoder={"hidden": [6]})
    names = dict(tied.named_parameters())
    assert not any("weight" in n for n in names if n.startswith("decoder"))
    weights = sum(p.numel() for n, p in untied.named_parameters() if "weight" in n)
    tied_weights = sum(p.numel() for n, p in names.items() if "weight" in n)
    assert tied_weights * 2 == weights  # (12*6 + 6*2) once instead of twice
    assert isinstance(tied.decoder, TiedDecoder)
    # The decoder is the encoder transposed: a linear tied AE decodes with W^T.
    linear = _model("tied_ae", encoder={"hidden": []}, decoder={"hidden": []})
    z = torch.randn(3, 2)
    w = linear.encoder[0].weight
    assert torch.allclose(linear.decoder(z), z @ w + linear.decoder.biases[0])
    # One gradient step on the reconstruction moves the decoder through the encoder's W.
    x = torch.rand(5, 12).round()
    before = linear.decoder(z).detach().clone()
    loss = make_objective("elbo", 1)(linear.model, linear.guide, x, 5, 1.0)
    loss.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    with torch.no_grad():
        w -= 0.1 * w.grad
    assert not torch.allclose(linear.decoder(z), before)


def test_a_copy_of_a_tied_autoencoder_stays_tied():
    import copy

    tied = copy.deepcopy(_model("tied_ae", encoder={"hidden": []}, decoder={"hidden": []}))
    assert tied.decoder._encoder is tied.encoder


def test_corruption_reaches_the_encoder_only_and_only_in_training():
    model = _model("denoising_ae", autoencoder={"corruption_level": 0.5})
    x = torch.rand(200, 12) + 0.1  # no zeros, so every masked value shows
    model.train()
    pyro.set_rng_seed(1)
    guide = poutine.trace(model.guide).get_trace(x)
    replayed = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    assert torch.equal(replayed.nodes["x"]["value"], x)  # the model scores the clean x
    z = guide.nodes["z"]["value"]
    assert not torch.allclose(z, model.code(x))
    pyro.set_rng_seed(1)
    assert torch.allclose(z, model.code(corrupt(x, model.spec.autoencoder)))
    model.eval()
    z_eval = poutine.trace(model.guide).get_trace(x).nodes["z"]["value"]
    assert torch.allclose(z_eval, model.code(x))


def test_corrupt_masks_the_asked_share_or_adds_noise_of_the_asked_sd():
    x = torch.ones(400, 50)
    gen = torch.Generator().manual_seed(0)
    masked = corrupt(x, AutoencoderSpec(corruption="mask", corruption_level=0.3), gen)
    share = (masked == 0).double().mean().item()
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / x.numel())
    noisy = corrupt(x, AutoencoderSpec(corruption="gaussian", corruption_level=0.2), gen)
    assert abs((noisy - x).std().item() - 0.2) < 0.005


def test_sparsity_penalty_is_the_bernoulli_kl_and_zero_at_the_target():
    codes = torch.tensor([[0.1, 0.5], [0.3, 0.5]])  # means 0.2, 0.5
    rho = 0.05

    def kl(q):
        return rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))

    assert sparsity_penalty(codes, rho).item() == pytest.approx(kl(0.2) + kl(0.5), rel=1e-6)
    assert sparsity_penalty(torch.full((4, 3), rho), rho).item() == pytest.approx(0, abs=1e-6)


def test_the_sparsity_factor_enters_the_elbo_once_per_example():
    model = _model("sparse_ae", autoencoder={"sparsity_weight": 2.0})
    x = torch.rand(6, 12).round()
    codes = model.code(x)
    recon = model.observation(codes).log_prob(x)
    expected = recon - 2.0 * sparsity_penalty(codes, 0.05)
    assert torch.allclose(estimate_elbo(model.model, model.guide, x), expected, atol=1e-4)


@pytest.fixture(scope="module")
def digits():
    spec = spec_from_dict({"data": {"limit": 400}})
    return load_data(spec.data, spec.model.likelihood.name)


@pytest.mark.parametrize("kind", AUTOENCODER_KINDS)
def test_each_kind_trains_and_lowers_its_loss(digits, kind):
    spec = spec_from_dict(
        {"model": {"kind": kind, "latent_dim": 4}, "train": {"epochs": 15, "batch_size": 64}}
    )
    torch.manual_seed(0)
    model = build_model(spec.model, digits.dim)
    model.eval()
    before = estimate_elbo(model.model, model.guide, digits.validation).mean().item()
    result = fit(model, digits, spec.train, progress=False)
    after = result.history[-1].validation_elbo_nats
    assert after > before + 5, (before, after)
    assert not model.training  # fit returns the model in the mode it came in


def test_the_sparse_penalty_drives_mean_activation_towards_rho(digits):
    def mean_activation(weight: float) -> torch.Tensor:
        spec = spec_from_dict(
            {
                "model": {
                    "kind": "sparse_ae",
                    "latent_dim": 8,
                    "autoencoder": {"sparsity_weight": weight, "sparsity_target": 0.05},
                },
                "train": {"epochs": 40, "batch_size": 64},
            }
        )
        torch.manual_seed(0)
        model = build_model(spec.model, digits.dim)
        fit(model, digits, spec.train, progress=False)
        with torch.no_grad():
            return model.code(digits.test).mean(0)

    free, sparse = mean_activation(0.0), mean_activation(3.0)
    assert (sparse - 0.05).abs().max() < 0.02, sparse
    assert (free - 0.05).abs().mean() > 5 * (sparse - 0.05).abs().mean(), (free, sparse)


def test_bad_kinds_and_settings_give_one_line_errors():
    cases = {
        "model.kind": {"model": {"kind": "rbm"}},
        "train.objective": {"model": {"kind": "ae"}, "train": {"objective": "iwae_dreg"}},
        "train.particles": {"model": {"kind": "ae"}, "train": {"particles": 4}},
        "train.beta": {"model": {"kind": "sparse_ae"}, "train": {"beta": 0.5}},
        "model.decoder.hidden": {"model": {"kind": "tied_ae", "decoder": {"hidden": [64]}}},
        "model.likelihood.scale": {
            "model": {"kind": "tied_ae", "likelihood": {"name": "gaussian", "scale": "decoder"}}
        },
        "model.autoencoder.corruption_level": {
            "model": {"kind": "denoising_ae", "autoencoder": {"corruption_level": 1.0}}
        },
    }
    for path, raw in cases.items():
        with pytest.raises(SpecError) as info:
            spec_from_dict(raw)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
