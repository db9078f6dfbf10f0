"""The discretized logistic of 8-bit pixels and bits per dimension: the pmf against
direct computation, sampling, the exact mean, training on 8-bit data, the density-to-
probability conversion against a closed form, and the data errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pyro
import pytest
import torch
from helpers import tiny_spec
from test_data import write_mnist
from torch.distributions import Normal

import pyrovae.evaluate.likelihood as ev
from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.errors import DataError
from pyrovae.models import VAE
from pyrovae.models.discretized import MIN_LOGISTIC_SCALE, DiscretizedLogistic
from pyrovae.models.likelihoods import Likelihood, inverse_positive
from pyrovae.pipeline import build, load_spec_data
from pyrovae.spec import DataSpec, LikelihoodSpec, ModelSpec, NetworkSpec
from pyrovae.stats import linear_gaussian
from pyrovae.train.loop import fit
from pyrovae.train.objectives import estimate_elbo

GRID = torch.arange(256, dtype=torch.float64) / 255
"""The 256 values k / 255."""

LOCS = [-1000.0, -3.0, -0.01, 0.0, 0.3, 0.5, 0.5 + 0.5 / 255, 1.0, 1.2, 40.0]
SCALES = [MIN_LOGISTIC_SCALE, 1e-6, 1e-3, 0.02, 0.3, 5.0, 1e4]


def _pmf(loc: float | torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """P(k) of the 256 values ``(..., 256)``, float64, parameters broadcast over k."""
    loc = torch.as_tensor(loc, dtype=torch.float64).unsqueeze(-1)
    scale = torch.as_tensor(scale, dtype=torch.float64).unsqueeze(-1)
    return DiscretizedLogistic(loc, scale).log_prob(GRID).exp()


def _direct_pmf(loc: float, scale: float) -> torch.Tensor:
    """CDF(x + h) - CDF(x - h), the edge bins open: the definition, float64."""
    cdf = torch.sigmoid((GRID[:-1] + 0.5 / 255 - loc) / scale)  # upper edges of bins 0..254
    upper = torch.cat([cdf, torch.ones(1, dtype=torch.float64)])
    lower = torch.cat([torch.zeros(1, dtype=torch.float64), cdf])
    return upper - lower


@pytest.fixture(autouse=True)
def _validation():
    with pyro.validation_enabled(True):
        yield


# ---------------------------------------------------------------- the distribution


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("loc", LOCS)
def test_pmf_sums_to_one(loc, scale):
    total = _pmf(loc, scale).sum().item()
    assert abs(total - 1) < 1e-10


def test_pmf_sums_to_one_for_random_parameters():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(500, generator=g, dtype=torch.float64) * 2 + 0.5
    scale = torch.exp(torch.empty(500, dtype=torch.float64).uniform_(-9, 3, generator=g))
    total = _pmf(loc, scale.clamp(min=MIN_LOGISTIC_SCALE)).sum(-1)
    assert (total - 1).abs().max().item() < 1e-10


@pytest.mark.parametrize(
    ("loc", "scale"), [(0.3, 0.02), (0.5, 0.3), (0.0, 0.05), (1.0, 0.01), (0.7, 5.0), (-0.2, 0.1)]
)
def test_pmf_equals_cdf_difference_where_that_is_stable(loc, scale):
    # the subtraction loses ~1e-16 absolutely, so small probabilities only agree to that
    ours, direct = _pmf(loc, scale), _direct_pmf(loc, scale)
    assert (direct > 1e-6).sum() > 10
    torch.testing.assert_close(ours, direct, rtol=1e-10, atol=1e-15)


def test_edge_bins_take_the_tails():
    # a location far beyond an edge puts all the mass on that edge's open bin
    assert _pmf(-50.0, 0.1)[0].item() == 1.0
    assert _pmf(50.0, 0.1)[-1].item() == 1.0
    # a location on the edge value: half the logistic lies beyond it, in the same bin
    p0 = _pmf(0.0, 0.01)[0].item()
    assert p0 == pytest.approx(1 / (1 + math.exp(-0.5 / 255 / 0.01)), rel=1e-12)


def test_log_prob_and_gradient_finite_at_the_floor():
    x = torch.tensor([0.0, 1 / 255, 128 / 255, 254 / 255, 1.0])
    for loc in (-50.0, 0.0, 0.5, 1.0, 50.0):
        mu = torch.full((5,), loc, requires_grad=True)
        raw = torch.full((5,), -200.0, requires_grad=True)  # softplus underflows: the floor
        likelihood = Likelihood(LikelihoodSpec("discretized_logistic"))
        log_p = likelihood(torch.cat([mu, raw])).log_prob(x)
        assert torch.isfinite(log_p)
        log_p.backward()
        assert torch.isfinite(mu.grad).all() and torch.isfinite(raw.grad).all()


def test_floor_caps_an_interior_bin_as_documented():
    centre = 128 / 255
    top = _pmf(centre, MIN_LOGISTIC_SCALE)[128].item()
    assert top == pytest.approx(math.tanh(1 / (4 * 255 * MIN_LOGISTIC_SCALE)), rel=1e-12)


def test_support_is_the_grid():
    d = DiscretizedLogistic(torch.tensor(0.5), torch.tensor(0.1), validate_args=True)
    assert d.support.check(GRID.float()).all()
    assert not d.support.check(torch.tensor([0.5, -1 / 255, 1 + 1 / 255])).any()
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor(0.5))


def test_samples_land_on_the_grid_and_follow_the_pmf():
    """Pearson's statistic over bins with 5 or more expected draws: chi-square with df =
    bins - 1 (mean df, sd sqrt(2 df)); df + 6 sd is about a 1e-6 tail, and a sampler that
    shifts the mass by half a bin exceeds it many times over."""
    n = 200_000
    for loc, scale in ((0.4, 0.05), (0.0, 0.02), (0.97, 0.03)):
        d = DiscretizedLogistic(torch.tensor(loc), torch.tensor(scale))
        x = d.sample((n,), generator=torch.Generator().manual_seed(1))
        k = x * 255
        assert x.dtype == torch.float32 and ((x >= 0) & (x <= 1)).all()
        assert torch.equal(k, k.round())
        counts = torch.bincount(k.round().long(), minlength=256).double()
        expected = n * _pmf(loc, scale)
        keep = expected >= 5
        stat = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
        df = int(keep.sum()) - 1
        assert stat < df + 6 * math.sqrt(2 * df), (loc, scale, stat, df)
        assert counts[~keep].sum() < 5 * max(1, int((~keep).sum()))


def test_mean_is_the_sum_over_the_256_values():
    g = torch.Generator().manual_seed(2)
    loc = torch.cat([torch.tensor(LOCS, dtype=torch.float64), torch.randn(50, generator=g)])
    scale = torch.cat(
        [
            torch.tensor(SCALES, dtype=torch.float64).repeat(2)[: len(LOCS)],
            torch.rand(50, generator=g, dtype=torch.float64) + MIN_LOGISTIC_SCALE,
        ]
    )
    direct = (_pmf(loc, scale) * GRID).sum(-1)
    torch.testing.assert_close(DiscretizedLogistic(loc, scale).mean, direct, rtol=0, atol=1e-12)


def test_mean_and_log_prob_have_the_gradients_of_their_formulas():
    """gradcheck (finite differences in float64) through the in-place blocks of the mean
    and through log_prob, in the tails and in the middle."""
    loc = torch.tensor([-0.3, 0.0, 0.37, 0.5, 1.0, 1.4], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.002, 0.05, 0.01, 0.3, 0.02, 0.1], dtype=torch.float64)
    scale.requires_grad_(True)
    x = torch.tensor([0.0, 0.0, 94 / 255, 0.5 + 0.5 / 255, 1.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, s: DiscretizedLogistic(m, s).mean, (loc, scale))
    assert torch.autograd.gradcheck(
        lambda m, s: DiscretizedLogistic(m, s).log_prob(x), (loc, scale)
    )


def test_likelihood_emits_two_numbers_per_pixel_and_its_mean():
    likelihood = Likelihood(LikelihoodSpec("discretized_logistic"))
    assert likelihood.outputs_per_pixel == 2
    out = torch.randn(3, 2 * 7)
    p = likelihood(out)
    assert p.batch_shape == (3,) and p.event_shape == (7,)
    loc, raw = out.chunk(2, -1)
    scale = torch.nn.functional.softplus(raw) + MIN_LOGISTIC_SCALE
    torch.testing.assert_close(likelihood.mean(out), DiscretizedLogistic(loc, scale).mean)


# ---------------------------------------------------------------- 8-bit data


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    """60 random 8-bit images (t10k files only): 8-bit data with levels 256."""
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist(folder, "t10k", 60, seed=0)
    return folder


def _mnist_spec(folder, *overrides):
    return tiny_spec(
        "data.name=mnist",
        f"data.path={folder}",
        "model.likelihood.name=discretized_logistic",
        "model.latent_dim=2",
        "train.batch_size=20",
        "train.lr=0.01",
        *overrides,
    )


def test_vae_trains_on_8_bit_data_and_reports_exact_bits(mnist_folder):
    spec = _mnist_spec(mnist_folder, "train.epochs=3")
    data = load_spec_data(spec)
    assert data.levels == 256 and not data.dynamic_binarization
    model = build(spec, data.dim)
    assert isinstance(model, VAE)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        before = estimate_elbo(model.model, model.guide, data.train).mean().item()
    fit(model, data, spec.train, progress=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        after = estimate_elbo(model.model, model.guide, data.train).mean().item()
    assert math.isfinite(before) and after > before + 0.05 * data.dim  # nats per example
    result = ev.evaluate(model.eval(), data.test, particles=20, levels=data.levels)
    assert result.bits_per_dim == pytest.approx(
        -result.log_likelihood / (data.dim * math.log(2)), rel=1e-12
    )
    assert result.to_metrics()["test_bits_per_dim"] == result.bits_per_dim
    # uniform pixels: nothing beats log2(256) = 8 bits by much, and a start at 9+ bits
    assert 7.5 < result.bits_per_dim < 8.6


def test_pyrovae_evaluate_writes_bits_to_metrics_report_and_summary(mnist_folder, tmp_path, capsys):
    out = str(tmp_path / "run")
    tiny = ["--set", "model.encoder.hidden=[16]", "--set", "model.decoder.hidden=[16]"]
    spec = [
        *("--set", "data.name=mnist", "--set", f"data.path={mnist_folder}"),
        *("--set", "model.likelihood.name=discretized_logistic", "--set", "train.epochs=1"),
    ]
    assert main(["train", "--out", out, *tiny, *spec, "--quiet"]) == 0
    assert main(["evaluate", out, "--particles", "5", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    bits = metrics["test_bits_per_dim"]
    assert bits == pytest.approx(-metrics["test_log_likelihood_nats"] / (784 * math.log(2)))
    assert f"{bits:.4f} bits/dim" in capsys.readouterr().out
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"**{bits:.4f} bits/dim**" in report
    assert "| `test_bits_per_dim` |" in report and "the bin width 1/255" in report


def _linear_gaussian_vae(d: int, noise: float) -> VAE:
    """p(x|z) = N(W z + 1/2, noise^2 I) with orthogonal columns of W, so the exact
    posterior is a diagonal Gaussian, which the linear encoder is set to: then every
    importance weight equals p(x) and the estimate of log p(x) is exact."""
    spec = ModelSpec(
        latent_dim=2,
        encoder=NetworkSpec(hidden=()),
        decoder=NetworkSpec(hidden=()),
        likelihood=LikelihoodSpec("gaussian", noise),
    )
    vae = VAE(spec, d)
    w = torch.zeros(d, 2)
    w[0, 0], w[1, 0], w[2, 1], w[3, 1] = 0.1, 0.2, 0.15, -0.1
    b = torch.full((d,), 0.5)
    variance = 1 / (1 + (w**2).sum(0) / noise**2)  # (2,): diagonal as W^T W is
    gain = variance[:, None] * w.T / noise**2  # E[z|x] = gain (x - b)
    encoder, decoder = vae.encoder[0], vae.decoder[0]
    with torch.no_grad():
        decoder.weight.copy_(w)
        decoder.bias.copy_(b)
        encoder.weight.zero_()
        encoder.weight[:2] = gain
        encoder.bias[:2] = -gain @ b
        encoder.bias[2:] = torch.tensor([inverse_positive(v.sqrt().item()) for v in variance])
    return vae.eval()


def test_density_bits_convert_by_the_bin_width_against_a_closed_form():
    """A linear-Gaussian decoder has a closed-form log p(x); on 8-bit data its bits/dim
    are -log2(p(x) / 255^D) / D."""
    d, noise = 6, 0.1
    vae = _linear_gaussian_vae(d, noise)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(200, d, generator=g) * 255).round() / 255
    result = ev.evaluate(vae, x, particles=10, levels=256)
    assert result.log_likelihood_se < 1e-4  # the encoder is the exact posterior
    exact = linear_gaussian.log_marginal(x, *vae.linear_gaussian()).mean().item()
    expected = (-exact + d * math.log(255)) / (d * math.log(2))
    assert result.bits_per_dim == pytest.approx(
        ev.bits_per_dim(result.log_likelihood, d, 1 / 255), rel=1e-12
    )
    assert result.bits_per_dim == pytest.approx(expected, abs=1e-4)
    assert ev.evaluate(vae, x, particles=5).bits_per_dim is None  # levels unknown
    assert ev.evaluate(vae, x, particles=5, levels=17).bits_per_dim is None


def test_bin_width_conversion_matches_the_bin_probability_of_a_broad_gaussian():
    """What the conversion approximates: for a density much wider than a bin,
    -log2 P(bin) = -log2 (p(x) / 255) to O((bin / sd)^2)."""
    mean, sd = 0.5, 0.2
    x = torch.arange(40, 216, dtype=torch.float64) / 255
    p = Normal(torch.tensor(mean, dtype=torch.float64), sd)
    bins = p.cdf(x + 0.5 / 255) - p.cdf(x - 0.5 / 255)
    exact_bits = -bins.log().sum().item() / (len(x) * math.log(2))
    converted = ev.bits_per_dim(p.log_prob(x).mean().item(), 1, 1 / 255)
    assert converted == pytest.approx(exact_bits, abs=1e-4)


def test_bits_per_dim_for_each_likelihood_and_data():
    small = NetworkSpec(hidden=(8,))
    x8 = (torch.rand(10, 5) * 255).round() / 255
    for name, levels, width in [
        ("discretized_logistic", 256, 1.0),
        ("gaussian", 256, 1 / 255),
        ("laplace", 256, 1 / 255),
        ("continuous_bernoulli", 256, 1 / 255),
        ("gaussian", None, None),
        ("continuous_bernoulli", 17, None),
    ]:
        vae = VAE(
            ModelSpec(latent_dim=2, encoder=small, decoder=small, likelihood=LikelihoodSpec(name)),
            5,
        )
        assert ev.bin_width(vae, x8, levels) == width, (name, levels)
    bernoulli = VAE(ModelSpec(latent_dim=2, encoder=small, decoder=small), 5)
    assert ev.bin_width(bernoulli, torch.bernoulli(torch.full((4, 5), 0.5)), None) == 1.0


# ---------------------------------------------------------------- errors


def test_data_that_are_not_8_bit_are_refused_in_one_line():
    with pytest.raises(DataError) as info:
        load_data(DataSpec(), "discretized_logistic")
    message = str(info.value)
    assert "\n" not in message
    assert "8-bit pixels (256 levels" in message and "digits data have 17 levels" in message
    synthetic = replace(DataSpec(), name="synthetic")
    with pytest.raises(DataError, match="synthetic data have continuous values"):
        load_data(synthetic, "discretized_logistic")


def test_mnist_binarize_auto_is_none_for_the_discretized_logistic(mnist_folder):
    spec = replace(DataSpec(), name="mnist", path=str(mnist_folder))
    data = load_data(spec, "discretized_logistic")
    assert data.levels == 256 and not data.dynamic_binarization
    assert torch.equal(data.test * 255, (data.test * 255).round())


def test_cli_refuses_17_level_digits_with_exit_2(tmp_path, capsys):
    args = ["train", "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*args, "--set", "model.likelihood.name=discretized_logistic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "digits data have 17 levels" in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_uint8_arrays_are_the_grid_in_float32():
    """MNIST's float32 k / 255 pass the support check (the tolerance covers rounding)."""
    x = torch.from_numpy(np.arange(256, dtype=np.uint8) / np.float32(255))
    assert DiscretizedLogistic(torch.zeros(256), torch.ones(256)).support.check(x).all()
