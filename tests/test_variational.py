"""Variational fits against exact Gaussian posteriors, the Laplace start and the convergence
tests; the draws of a fitted guide."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

import pyrovae.posterior.inference.variational as vi
from pyrovae.errors import PyrovaeError, UserError
from pyrovae.posterior.inference import draws as gd
from pyrovae.posterior.inference.laplace import laplace
from pyrovae.posterior.targets import zoo


def _exact(name: str):
    model = zoo.get_model(name)
    return model, model.exact.mean.numpy(), model.exact.covariance.numpy()


@pytest.mark.parametrize("name", ["normal_normal", "blr_known_noise", "regression_far"])
def test_full_covariance_guide_matches_exact_posterior_to_two_decimals(name):
    model, mean, cov = _exact(name)
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", seed=0)
    assert fit.converged
    assert fit.start == "laplace" and fit.stop == "plateau"
    assert fit.offset_sd < vi.OFFSET_TOLERANCE
    posterior = fit.guide.get_posterior()  # unconstrained = constrained for real parameters
    loc = posterior.loc.detach().double().numpy()
    q_cov = posterior.covariance_matrix.detach().double().numpy()
    sd = np.sqrt(np.diag(cov))  # in posterior sds: regression_far's differ 150-fold
    np.testing.assert_allclose((loc - mean) / sd, 0, atol=0.01)
    # Adam's last steps (lr 5e-4, 64 particles) leave the scale jittering by about 0.5%
    # around the optimum (it starts exact): allow 1.5% in sd, 3% in variance
    np.testing.assert_allclose(q_cov / np.outer(sd, sd), cov / np.outer(sd, sd), atol=0.03)
    # q is the exact posterior's family: the ELBO reaches log p(y)
    assert fit.elbo <= model.log_evidence + 0.01
    assert model.log_evidence - fit.elbo < 0.02


def test_mean_field_underestimates_correlated_posterior_sds():
    model, _mean, cov = _exact("blr_known_noise")
    fit = vi.fit_guide(model.model, model.data, "auto_normal", seed=0)
    samples = gd.guide_samples(model.model, fit.guide, model.data, ["beta"], 4000)
    draws = zoo.flatten(samples, model.parameters)
    assert draws.shape == (4000, 3)
    sd_ratio = draws.std(0) / np.sqrt(np.diag(cov))
    optimal = 1 / np.sqrt(np.diag(np.linalg.inv(cov))) / np.sqrt(np.diag(cov))
    np.testing.assert_allclose(sd_ratio, optimal, rtol=0.1)  # mean field's known optimum
    assert (sd_ratio < 0.7).all()
    assert fit.elbo < model.log_evidence - 0.5


def test_importance_log_ratios_estimate_the_evidence():
    model, _, _ = _exact("blr_known_noise")
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", seed=1)
    log_ratios = gd.importance_log_ratios(model.model, fit.guide, model.data, 4000)
    assert log_ratios.shape == (4000,) and log_ratios.dtype == np.float64
    top = log_ratios.max()
    evidence = top + np.log(np.mean(np.exp(log_ratios - top)))
    assert evidence == pytest.approx(model.log_evidence, abs=0.02)
    assert log_ratios.std() < 0.2  # q close to p: nearly constant weights


def test_guide_samples_include_deterministic_sites_with_event_shapes():
    model = zoo.get_model("eight_schools_noncentered")
    fit = vi.fit_guide(model.model, model.data, "auto_normal", max_steps=200)
    samples = gd.guide_samples(model.model, fit.guide, model.data, ["mu", "tau", "theta"], 50)
    flat = zoo.flatten(samples, model.parameters)
    assert flat.shape == (50, 10)
    assert (samples["tau"] > 0).all()


GUIDE_DRAWS = 2000
OPTIMISER_SD = 0.01
"""Seed-to-seed spread of a fitted guide's mean (in posterior sds) and of its sd ratio on
``normal_normal``: over seeds 0-4 of every guide (200,000 draws each) the mean was off by
at most 0.009 sd (rms 0.005) and the sd ratio by at most 0.006 (rms 0.004)."""


def _check_fitted_draws(draws: np.ndarray, mean: float, sd: float) -> None:
    """Mean and sd of ``draws`` of a fitted guide against the exact posterior N(mean, sd²),
    each within 4 standard errors: the Monte Carlo error of n draws (sd / sqrt(n) for the
    mean, 1 / sqrt(2 (n - 1)) for the sd ratio of Gaussian draws) and the optimiser's own
    :data:`OPTIMISER_SD`, added in quadrature."""
    n = draws.size
    se_mean = sd * np.sqrt(1 / n + OPTIMISER_SD**2)
    se_ratio = np.sqrt(1 / (2 * (n - 1)) + OPTIMISER_SD**2)
    error = draws.mean() - mean
    assert abs(error) < 4 * se_mean, (error, se_mean)
    ratio = draws.std(ddof=1) / sd
    assert abs(ratio - 1) < 4 * se_ratio, (ratio, se_ratio)


@pytest.mark.parametrize("guide", vi.GUIDES)
def test_every_guide_fits_and_reports(guide):
    model, mean, cov = _exact("normal_normal")
    fit = vi.fit_guide(model.model, model.data, guide, max_steps=3000)
    assert fit.losses.ndim == 1 and fit.seconds > 0
    draws = gd.guide_samples(model.model, fit.guide, model.data, ["mu"], GUIDE_DRAWS)["mu"]
    _check_fitted_draws(draws.double().numpy().ravel(), mean[0], np.sqrt(cov[0, 0]))
    assert fit.elbo < model.log_evidence + 0.01


@pytest.mark.parametrize(
    ("shift", "scale"),
    [(0.0, 0.01), (0.0, 0.7), (0.0, 1.3), (0.2, 1.0)],
    ids=["collapsed", "narrow", "wide", "shifted"],
)
def test_the_fitted_draws_check_catches_a_wrong_guide(shift, scale):
    """Draws of a collapsed, too narrow or too wide guide, or one shifted by 0.2 sd (0.045
    on normal_normal, which the old |mean error| < 0.05 let through), fail the check."""
    _model, mean, cov = _exact("normal_normal")
    sd = float(np.sqrt(cov[0, 0]))
    noise = np.random.default_rng(0).standard_normal(GUIDE_DRAWS)
    _check_fitted_draws(mean[0] + sd * noise, mean[0], sd)  # exact draws pass
    with pytest.raises(AssertionError):
        _check_fitted_draws(mean[0] + sd * (shift + scale * noise), mean[0], sd)


def test_unknown_guide_and_non_finite_loss():
    model, _, _ = _exact("normal_normal")
    with pytest.raises(UserError, match="unknown guide 'auto_foo'"):
        vi.make_guide("auto_foo", model.model, laplace(model.model, model.data))
    with pytest.raises(UserError, match="unknown guide 'auto_foo'"):
        vi.fit_guide(model.model, model.data, "auto_foo")

    def runaway(y):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.factor("pull", -((mu - 100.0) ** 2))  # drags mu far from its start at 0
        pyro.factor("cliff", torch.where(mu.abs() > 3, torch.tensor(float("nan")), 0.0))

    with pytest.raises(PyrovaeError, match=r"loss became nan at step \d+; try a smaller lr"):
        vi.fit_guide(runaway, {"y": None}, "auto_normal", particles=1)

    def broken_at_start(y):
        import pyro
        import pyro.distributions as dist

        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.factor("nan", mu * torch.tensor(float("nan")))

    with pytest.raises(UserError, match="the model fails on its data"):
        vi.fit_guide(broken_at_start, {"y": None}, "auto_normal")


def test_max_plate_nesting():
    model = zoo.get_model("normal_normal")
    assert gd.max_plate_nesting(model.model, model.data) == 1

    def no_plates():
        import pyro
        import pyro.distributions as dist

        pyro.sample("a", dist.Normal(0.0, 1.0))

    assert gd.max_plate_nesting(no_plates, {}) == 0


# --- the Laplace start, the offset and the ELBO gap --------------------------------------------


@pytest.mark.parametrize("name", ["blr_known_noise", "regression_far"])
def test_laplace_of_a_gaussian_posterior_is_the_posterior(name):
    model, mean, cov = _exact(name)
    start = laplace(model.model, model.data)
    assert start.ok and start.reason == ""
    assert start.newton_decrement < 1e-6
    assert start.sites == (("beta", 3),)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose((start.loc.numpy() - mean) / sd, 0, atol=1e-6)
    laplace_cov = (start.scale_tril @ start.scale_tril.T).numpy()
    np.testing.assert_allclose(laplace_cov / np.outer(sd, sd), cov / np.outer(sd, sd), atol=1e-6)
    # 1 / sqrt(H_ii): the sds of the best mean-field Gaussian
    conditional = 1 / np.sqrt(np.diag(np.linalg.inv(cov)))
    np.testing.assert_allclose(start.conditional_sd.numpy(), conditional, rtol=1e-6)


def test_laplace_says_why_there_is_no_mode():
    model = zoo.get_model("eight_schools_centered")  # the density grows without bound at tau -> 0
    start = laplace(model.model, model.data)
    assert not start.ok
    assert "not positive definite" in start.reason or "posterior sd from the mode" in start.reason
    assert (start.scale_tril == torch.eye(10, dtype=torch.float64)).all()
    fit = vi.fit_guide(model.model, model.data, "auto_normal", max_steps=400)
    assert fit.start.startswith("prior median: ") and start.reason in fit.start
    assert fit.judged.endswith(
        f"; started at the prior median, without a Laplace approximation: {start.reason}"
    )
    assert np.isnan(fit.offset_sd) and np.isnan(fit.elbo_gap)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_offset_is_the_distance_from_the_optimum_in_posterior_sds(shift):
    """On a Gaussian posterior the whitened gradient in the mean is the mean's error."""
    model, _mean, _cov = _exact("regression_far")
    start = laplace(model.model, model.data)
    pyro.set_rng_seed(0)
    with pyro.settings.context(module_local_params=True):
        guide = vi.make_guide("auto_mvn", model.model, start)
        guide(**model.data)
        direction = torch.tensor([2.0, -1.0, 2.0]) / 3
        with torch.no_grad():
            guide.loc.copy_(shift * direction)
        params = [p for p in guide.parameters() if p.requires_grad]
        gradient = vi._offset(model.model, guide, params, model.data, nesting=1)
    # 4000 draws: the noise-corrected norm is within ~0.02 of the truth
    assert gradient.offset_sd == pytest.approx(shift, abs=0.03)
    assert gradient.norm >= gradient.offset_sd - 0.03


def test_mean_field_member_at_laplace_has_the_closed_form_elbo():
    """For a Gaussian posterior N(m, S) with precision H, the mean-field optimum is
    N(m, diag(1 / H_ii)), at KL 0.5 (log det S + sum log H_ii) below log p(y)."""
    model, _mean, cov = _exact("regression_far")
    fit = vi.fit_guide(model.model, model.data, "auto_normal", seed=0)
    kl = 0.5 * (np.linalg.slogdet(cov)[1] + np.log(np.diag(np.linalg.inv(cov))).sum())
    assert kl > 5  # a strongly correlated posterior: mean field pays dearly
    assert fit.elbo_laplace == pytest.approx(model.log_evidence - kl, abs=4 * fit.elbo_laplace_se)
    assert fit.elbo == pytest.approx(model.log_evidence - kl, abs=4 * fit.elbo_se)
    assert fit.converged and not fit.below_laplace
    assert fit.judged.startswith("converged (plateau and offset) in ")


def test_low_rank_family_starts_at_its_best_member_in_three_dimensions():
    """Rank 2 plus a diagonal holds any 3x3 covariance: the start is exact."""
    model, _, _ = _exact("regression_far")
    fit = vi.fit_guide(model.model, model.data, "auto_lowrank_mvn", seed=0)
    assert fit.elbo_laplace == pytest.approx(model.log_evidence, abs=0.01)
    assert fit.elbo == pytest.approx(model.log_evidence, abs=0.01)
    assert fit.converged


def test_an_unfinished_fit_is_not_converged_and_says_why():
    model, _, _ = _exact("blr_known_noise")
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", max_steps=50, window=100)
    assert not fit.converged and fit.stop == "budget" and fit.steps == 50
    assert fit.judged.startswith("not converged: step budget (50 steps) reached before a plateau")
    assert fit.offset_sd < vi.OFFSET_TOLERANCE  # started at the optimum: the draws are fine


def test_a_fit_that_ends_below_its_laplace_member_is_not_converged():
    """Adam at lr 1 throws the fit far from its (optimal) start within 100 steps."""
    model, _, _ = _exact("regression_far")
    fit = vi.fit_guide(model.model, model.data, "auto_mvn", lr=1.0, max_steps=100, seed=0)
    assert fit.below_laplace and not fit.converged
    assert fit.elbo_gap < -vi.GAP_TOLERANCE
    assert fit.offset_sd > vi.OFFSET_TOLERANCE
    assert "not converged" in fit.judged


def test_convergence_of_several_fits():
    model, _, _ = _exact("normal_normal")
    fits = [
        vi.fit_guide(model.model, model.data, "auto_normal", seed=0),
        vi.fit_guide(model.model, model.data, "auto_normal", seed=1, max_steps=30),
    ]
    summary = vi.convergence(fits)
    assert summary.converged and summary.judged == fits[0].judged
    assert (summary.fits_converged, summary.fits) == (1, 2)
    assert summary.steps == fits[0].steps and summary.elbo_gap == fits[0].elbo_gap
