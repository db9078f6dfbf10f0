"""Simulation-based calibration: the rank test, model SBC, amortized SBC and the CLI.

Known answers first (the chi-square against scipy's, exactly uniform ranks, the test's
size under the null), then posteriors whose calibration is known by construction: exact
posterior draws pass, half the posterior sd fails U-shaped, a shifted mean fails as
biased, for a model (fake methods registered only here) and for a VAE whose encoder is
the exact posterior of its linear-Gaussian decoder.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import SHARED_DATA, tiny_spec
from pyro import poutine
from scipy.stats import chisquare

from pyrovae.cli import main
from pyrovae.errors import UserError
from pyrovae.evaluate.sbc import amortized_sbc
from pyrovae.models.likelihoods import inverse_positive
from pyrovae.models.vae import VAE
from pyrovae.pipeline import train_model
from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.methods import METHODS
from pyrovae.posterior.sbc import check_proper_prior, model_sbc, simulate, thin_evenly
from pyrovae.posterior.targets.zoo import ZooModel, get_model
from pyrovae.spec import load_spec
from pyrovae.stats.ranks import (
    ALPHA,
    MIN_REPLICATIONS,
    TESTS_PER_PARAMETER,
    bin_count,
    fractional_ranks,
    rank_of,
    rank_tests,
    uniformity_test,
)

# --- the rank test: known answers ---------------------------------------------------------


def test_exactly_uniform_ranks_give_statistic_zero_and_no_hint():
    draws = 9
    ranks = np.repeat(np.arange(draws + 1), 10)  # every rank value 10 times, N = 100
    test = uniformity_test(ranks, draws)
    assert test.bins == 10 and test.statistic == 0.0 and test.p_value == pytest.approx(1.0)
    assert test.passed and test.bias_z == pytest.approx(0.0) and test.hint == ""
    assert test.dispersion_z == pytest.approx(0.0)


@pytest.mark.parametrize("draws", [9, 10, 99, 100])
def test_chi_square_matches_scipy_with_exact_bin_probabilities(draws):
    ranks = np.random.default_rng(draws).integers(0, draws + 1, size=150)
    test = uniformity_test(ranks, draws)
    values = np.arange(draws + 1)
    bins = bin_count(150, draws)
    expected = 150 * np.bincount(values * bins // (draws + 1), minlength=bins) / (draws + 1)
    observed = np.bincount(ranks * bins // (draws + 1), minlength=bins)
    reference = chisquare(observed, expected)
    assert test.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert test.chi2_p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_bin_count_keeps_ten_expected_per_bin_between_two_and_twenty():
    assert bin_count(20, 99) == 2 and bin_count(100, 99) == 10 and bin_count(5000, 99) == 20
    assert bin_count(1000, 4) == 5  # no more bins than rank values


def test_the_tests_keep_their_size_on_uniform_ranks():
    rng = np.random.default_rng(0)
    trials = 1000
    tests = [uniformity_test(rng.integers(0, 100, size=100), 99) for _ in range(trials)]
    sd = math.sqrt(ALPHA * (1 - ALPHA) / trials)
    chi2_rate = np.mean([t.chi2_p_value < ALPHA for t in tests])
    assert abs(chi2_rate - ALPHA) < 4 * sd  # the chi-square alone: its nominal size
    rate = np.mean([not t.passed for t in tests])
    assert ALPHA / TESTS_PER_PARAMETER - 4 * sd < rate < ALPHA + 4 * sd  # Bonferroni of three


def test_a_u_shape_fails_even_where_two_bins_cannot_see_it():
    ranks = np.array([0, 1, 48, 49] * 5)  # N = 20: 2 bins, each exactly half full
    test = uniformity_test(ranks, 49)
    assert test.bins == 2 and test.chi2_p_value == pytest.approx(1.0)
    assert not test.passed and "U-shaped" in test.hint


def _ranks_of_normal_posterior(loc: float, scale: float, n: int = 300, draws: int = 100):
    """Truth from N(0, 1) (the 'posterior'), ranked among draws of N(loc, scale^2)."""
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((n, 1))
    sample = loc + scale * rng.standard_normal((draws, n, 1))
    return rank_of(truth, sample)


def test_calibrated_ranks_pass():
    (test,) = rank_tests(_ranks_of_normal_posterior(0.0, 1.0), 100, ["theta"])
    assert test.passed and test.hint == ""


@pytest.mark.parametrize(
    ("loc", "scale", "words"),
    [
        (0.0, 0.5, "U-shaped: q too narrow"),
        (0.0, 2.0, "inverted-U: q too wide"),
        (0.5, 1.0, "q biased high"),
        (-0.5, 1.0, "q biased low"),
    ],
)
def test_miscalibrated_ranks_fail_with_their_shape(loc, scale, words):
    (test,) = rank_tests(_ranks_of_normal_posterior(loc, scale), 100, ["theta"])
    assert not test.passed and test.p_value < 1e-4
    assert words in test.hint


def test_bonferroni_holds_each_parameter_to_alpha_over_p():
    ranks = np.random.default_rng(2).integers(0, 51, size=(100, 4))
    tests = rank_tests(ranks, 50, ["a", "b", "c", "d"])
    assert all(t.threshold == ALPHA / 4 for t in tests)
    assert [t.passed for t in tests] == [t.p_value >= ALPHA / 4 for t in tests]


def test_ties_are_broken_at_random_and_fractional_ranks_fill_the_unit_interval():
    rng = np.random.default_rng(3)
    ranks = rank_of(np.zeros((2000, 1)), np.zeros((10, 2000, 1)), rng)[:, 0]
    assert uniformity_test(ranks, 10).passed and ranks.min() == 0 and ranks.max() == 10
    assert rank_of(np.zeros(1), np.zeros((10, 1)))[0] == 0  # without rng a tie is not below
    u = fractional_ranks(np.array([0, 10]), 10, rng)
    assert 0 < u[0] < 1 / 11 and 10 / 11 < u[1] < 1


def test_too_few_replications_are_refused():
    with pytest.raises(ValueError, match="N >= 20"):
        uniformity_test(np.zeros(MIN_REPLICATIONS - 1, dtype=int), 10)


# --- model SBC ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _NormalNormalExact:
    """Draws of normal_normal's exact posterior given the simulated y, with its sd scaled
    by ``sd_factor`` and its mean moved by ``shift`` posterior sds."""

    name: str
    sd_factor: float = 1.0
    shift: float = 0.0
    chains: int = 1
    family: str = "variational"

    def run(self, target, *, seed, budget, progress=False, predictive=False):
        y = poutine.trace(target.model).get_trace(**target.data).nodes["y"]["value"].double()
        precision = 1 / 10.0**2 + y.numel()
        mean, sd = float(y.sum()) / precision, precision**-0.5
        z = np.random.default_rng(seed).standard_normal((budget.draws, 1))
        return MethodResult(self.name, mean + sd * (self.shift + self.sd_factor * z))


@pytest.fixture
def fake_methods(monkeypatch):
    for method in (
        _NormalNormalExact("exact"),
        _NormalNormalExact("half_sd", sd_factor=0.5),
        _NormalNormalExact("shifted", shift=0.5),
    ):
        monkeypatch.setitem(METHODS, method.name, method)


def test_exact_posterior_draws_pass_and_wrong_ones_fail(fake_methods):
    result = model_sbc(
        get_model("normal_normal"), ["exact", "half_sd", "shifted"], replications=200, draws=50
    )
    tests = {r.method: r.tests()[0] for r in result.ranks}
    assert tests["exact"].passed and tests["exact"].hint == ""
    assert not tests["half_sd"].passed and "q too narrow" in tests["half_sd"].hint
    assert not tests["shifted"].passed and "q biased high" in tests["shifted"].hint
    assert all(r.ranks.shape == (200, 1) for r in result.ranks)


@pytest.mark.parametrize(
    ("replications", "draws"),
    [(30, 10), pytest.param(100, 50, marks=pytest.mark.slow)],
)
def test_nuts_is_calibrated_on_normal_normal(replications, draws):
    result = model_sbc(
        get_model("normal_normal"),
        ["nuts"],
        replications=replications,
        draws=draws,
        warmup=100,
        seed=1,
    )
    (ranks,) = result.ranks
    assert ranks.ranks.shape == (replications, 1) and result.failed == {"nuts": ()}
    (test,) = ranks.tests()
    assert test.passed, test
    assert np.all(result.min_ess["nuts"] > 0)


def test_simulation_conditions_the_data_and_takes_deterministic_truths_from_the_trace():
    target = get_model("eight_schools_noncentered")
    sim = simulate(target, seed=4)
    pyro.set_rng_seed(4)  # the same draws again, read by hand
    made = poutine.trace(poutine.uncondition(target.model)).get_trace(**target.data).nodes
    mu, tau = made["mu"]["value"], made["tau"]["value"]
    theta = mu + tau * made["theta_trans"]["value"]
    np.testing.assert_allclose(sim.truth[:8], theta.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sim.truth[8:], [float(mu), float(tau)], rtol=1e-6)
    fitted = poutine.trace(sim.target.model).get_trace(**sim.target.data).nodes["y"]
    assert fitted["is_observed"] and torch.equal(fitted["value"], made["y"]["value"])
    assert not torch.equal(fitted["value"], target.data["y"])
    assert sim.target.exact is None and sim.target.reference is None


def test_thinning_keeps_evenly_spaced_draws():
    draws = np.arange(12.0)[:, None]
    assert thin_evenly(draws, 4)[:, 0].tolist() == [0.0, 4.0, 7.0, 11.0]


class _Flat(dist.ImproperUniform):
    """An improper flat prior that can be traced (as Stan's implicit priors are written)."""

    def sample(self, sample_shape=torch.Size()):  # noqa: B008
        return torch.zeros(self._extended_shape(sample_shape))


def _improper_model(y):
    mu = pyro.sample("mu", _Flat(dist.constraints.real, (), ()))
    with pyro.plate("obs", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _raw_improper_model(y):
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    beta = pyro.sample("beta", dist.ImproperUniform(dist.constraints.real, (), (2,)))
    pyro.sample("y", dist.Normal(beta.sum() * sigma, 1.0), obs=y)


@pytest.mark.parametrize(("fn", "site"), [(_improper_model, "mu"), (_raw_improper_model, "beta")])
def test_an_improper_prior_is_refused_naming_the_site(fn, site):
    target = ZooModel("flat", fn, {"y": torch.zeros(3)}, {site: ()}, "")
    with pytest.raises(UserError, match=f"SBC needs a proper prior.*site '{site}'") as err:
        check_proper_prior(target)
    assert "\n" not in str(err.value)


# --- amortized SBC ------------------------------------------------------------------------

_W = 0.5 * torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
_NOISE = 0.5


def _linear_gaussian_vae(sd_factor: float = 1.0, shift: float = 0.0) -> VAE:
    """A linear-Gaussian VAE whose encoder is its exact posterior (W's columns are
    orthogonal, so the posterior covariance is diagonal), with the sd scaled by
    ``sd_factor`` and the mean moved by ``shift`` posterior sds."""
    spec = load_spec(
        None,
        [
            "model.encoder.hidden=[]",
            "model.decoder.hidden=[]",
            "model.likelihood.name=gaussian",
            f"model.likelihood.scale={_NOISE}",
        ],
    )
    vae = VAE(spec.model, 4).eval()
    precision = torch.eye(2) + _W.T @ _W / _NOISE**2
    cov = torch.linalg.inv(precision)
    sd = cov.diagonal().sqrt()
    gain = cov @ _W.T / _NOISE**2
    with torch.no_grad():
        vae.decoder[0].weight.copy_(_W)
        vae.decoder[0].bias.fill_(0.3)
        enc = vae.encoder[0]
        enc.weight.zero_()
        enc.weight[:2] = gain
        enc.bias[:2] = -gain @ vae.decoder[0].bias + shift * sd
        enc.bias[2:] = torch.tensor([inverse_positive(float(s * sd_factor)) for s in sd])
    return vae


def test_the_exact_encoder_passes_and_wrong_ones_fail_per_dimension():
    exact = amortized_sbc(_linear_gaussian_vae(), replications=4000, draws=99)
    assert exact.ranks.parameters == ("z[1]", "z[2]")
    assert all(t.passed and t.hint == "" for t in exact.ranks.tests())
    narrow = amortized_sbc(_linear_gaussian_vae(sd_factor=0.5), replications=4000, draws=99)
    assert all("overconfident" in t.hint and not t.passed for t in narrow.ranks.tests())
    shifted = amortized_sbc(_linear_gaussian_vae(shift=0.3), replications=4000, draws=99)
    assert all("q biased high" in t.hint and not t.passed for t in shifted.ranks.tests())


def test_amortized_sbc_samples_a_vamp_prior_and_binary_images():
    spec = tiny_spec("model.prior.name=vamp", "model.prior.components=5")
    vae = VAE(spec.model, 64).eval()
    result = amortized_sbc(vae, replications=100, draws=10, seed=5)
    again = amortized_sbc(vae, replications=100, draws=10, seed=5)
    assert result.prior == "vamp" and result.ranks.ranks.shape == (100, 2)
    assert result.ranks.ranks.min() >= 0 and result.ranks.ranks.max() <= 10
    np.testing.assert_array_equal(result.ranks.ranks, again.ranks.ranks)  # seeded


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbc") / "run"
    train_model(tiny_spec(), out, progress=False)
    return out


def test_cli_sbc_of_a_run_writes_the_tables_ranks_and_figure(tiny_run, capsys):
    out = tiny_run.parent / "sbc-out"
    args = ["sbc", str(tiny_run), "--replications", "500", "--samples", "50", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "encoder:" in printed and str(out) in printed
    for name in ("sbc.md", "sbc.csv", "ranks.csv", "figures/ecdf_encoder.png"):
        assert (out / name).stat().st_size > 100, name
    rows = list(csv.DictReader((out / "sbc.csv").open()))
    assert [row["parameter"] for row in rows] == ["z[1]", "z[2]"]
    assert all(0.0 <= float(row["p_value"]) <= 1.0 for row in rows)
    assert all(row["passed"] == str(float(row["p_value"]) >= 0.025).lower() for row in rows)
    assert len((out / "ranks.csv").read_text().splitlines()) == 501
    assert "Bonferroni" in (out / "sbc.md").read_text()


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_cli_sbc_of_an_autoencoder_run_is_one_line(tmp_path, capsys):
    run = tmp_path / "ae"
    train_model(tiny_spec("model.kind=ae", "train.epochs=1"), run, progress=False)
    assert main(["sbc", str(run), "--quiet"]) == 2
    _one_line_error(capsys, "no prior p(z)", "model.kind = 'vae'")


def test_cli_sbc_model_options_do_not_apply_to_a_run(tiny_run, capsys):
    assert main(["sbc", str(tiny_run), "--methods", "nuts"]) == 2
    _one_line_error(capsys, "apply to models")


def test_cli_sbc_unknown_model_and_method_are_one_line(tmp_path, capsys):
    assert main(["sbc", "normal_nromal", "--out", str(tmp_path / "a")]) == 2
    _one_line_error(capsys, "did you mean 'normal_normal'?")
    assert main(["sbc", "normal_normal", "--methods", "nutz", "--out", str(tmp_path / "b")]) == 2
    _one_line_error(capsys, "unknown method 'nutz'")
    assert not (tmp_path / "b").exists()  # checked before the folder is made


def test_cli_sbc_of_a_user_model_with_a_flat_prior_is_one_line(tmp_path, capsys):
    model = tmp_path / "flat.py"
    model.write_text(
        "import pyro, torch, pyro.distributions as dist\n"
        "class Flat(dist.ImproperUniform):\n"
        "    def sample(self, sample_shape=torch.Size()):\n"
        "        return torch.zeros(self._extended_shape(sample_shape))\n"
        "def model(y):\n"
        "    mu = pyro.sample('mu', Flat(dist.constraints.real, (), ()))\n"
        "    with pyro.plate('obs', y.shape[0]):\n"
        "        pyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n"
    )
    data = tmp_path / "data.json"
    data.write_text('{"y": [0.5, 1.0, 1.5]}')
    args = ["sbc", f"{model}:model", "--data", str(data), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(args) == 2
    _one_line_error(capsys, "SBC needs a proper prior", "site 'mu'")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(
    not (SHARED_DATA / "posteriordb").is_dir(),
    reason="needs posteriordb in ../shared/data/posteriordb (absent in this checkout)",
)
def test_cli_sbc_of_kidscore_momiq_names_its_flat_prior(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSTERIORDB", str(SHARED_DATA / "posteriordb"))
    assert main(["sbc", "kidscore_momiq", "--out", str(tmp_path / "k"), "--quiet"]) == 2
    _one_line_error(capsys, "SBC needs a proper prior", "site 'beta'")
