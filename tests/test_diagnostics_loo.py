"""pyrovae.posterior.diagnostics.loo: PSIS-LOO against the closed-form elpd of a conjugate
model, the importance correction of a guide's draws, the MCSE against the spread over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyrovae.errors import UserError
from pyrovae.posterior import diagnostics

# normal_normal: y_i ~ N(mu, 1), mu ~ N(0, 10^2); the LOO predictive of y_i is
# N(m_-i, 1 + v_-i), so the exact elpd_loo is known in closed form.
_Y = np.random.default_rng(11).normal(1.5, 1.0, size=20)


def _exact_posterior(y: np.ndarray) -> tuple[float, float]:
    variance = 1.0 / (1.0 / 100.0 + len(y))
    return variance * y.sum(), variance


def _exact_elpd_loo(y: np.ndarray) -> float:
    total = 0.0
    for i in range(len(y)):
        mean, variance = _exact_posterior(np.delete(y, i))
        scale = 1.0 + variance
        total += -0.5 * math.log(2 * math.pi * scale) - 0.5 * (y[i] - mean) ** 2 / scale
    return total


def _normal_idata(mu: np.ndarray, log_q: np.ndarray | None = None, chains: int = 1):
    """InferenceData of draws of mu with the pointwise log-likelihood of _Y."""
    log_lik = -0.5 * math.log(2 * math.pi) - 0.5 * (_Y[None, :] - mu[:, None]) ** 2
    stats = None
    if log_q is not None:
        mean, variance = _exact_posterior(_Y)
        stats = {"lp": -0.5 * (mu - mean) ** 2 / variance, "log_q": log_q}  # lp up to a constant
    return diagnostics.from_samples(
        {"mu": mu},
        method="t",
        parameters={"mu": ()},
        chains=chains,
        log_likelihood={"y": log_lik},
        sample_stats=stats,
    )


def test_loo_of_exact_draws_matches_the_closed_form_within_its_mcse():
    mean, variance = _exact_posterior(_Y)
    mu = np.random.default_rng(12).normal(mean, math.sqrt(variance), size=4000)
    idata = _normal_idata(mu)
    elpd = diagnostics.loo(idata)
    mcse = diagnostics.loo_mcse(idata)
    assert 0.005 < mcse < 0.1
    assert abs(float(elpd["elpd_loo"]) - _exact_elpd_loo(_Y)) < 4 * mcse
    assert float(elpd["pareto_k"].max()) < 0.5
    assert elpd["loo_i"].dims == ("y_dim_0",)


def test_loo_mcse_matches_the_spread_over_seeds():
    """The delta-method MCSE against the sd of 30 independent estimates (whose own relative
    error is about 1 / sqrt(2 * 29) = 0.13, so a ratio within 0.6..1.4 is > 3 of those)."""
    mean, variance = _exact_posterior(_Y)
    estimates, mcses = [], []
    for seed in range(30):
        mu = np.random.default_rng(100 + seed).normal(mean, math.sqrt(variance), size=1000)
        idata = _normal_idata(mu)
        estimates.append(float(diagnostics.loo(idata)["elpd_loo"]))
        mcses.append(diagnostics.loo_mcse(idata))
    ratio = np.std(estimates, ddof=1) / np.mean(mcses)
    assert 0.6 < ratio < 1.4


def test_corrected_loo_of_a_wrong_q_is_right_and_the_naive_one_is_not():
    """Draws of q = N(m + 0.5 sd, (1.5 sd)^2) with their lp and log_q estimate the exact elpd;
    treating them as posterior draws is off by more than a nat."""
    mean, variance = _exact_posterior(_Y)
    sd = math.sqrt(variance)
    q_mean, q_sd = mean + 0.5 * sd, 1.5 * sd
    mu = np.random.default_rng(13).normal(q_mean, q_sd, size=4000)
    log_q = -0.5 * ((mu - q_mean) / q_sd) ** 2 - math.log(q_sd)
    corrected = _normal_idata(mu, log_q)
    exact = _exact_elpd_loo(_Y)
    elpd = float(diagnostics.loo(corrected)["elpd_loo"])
    assert abs(elpd - exact) < 4 * diagnostics.loo_mcse(corrected)
    naive = float(diagnostics.loo(_normal_idata(mu))["elpd_loo"])
    assert abs(naive - exact) > 1.0


def test_corrected_loo_equals_arviz_when_q_is_the_posterior():
    """With log p - log q constant the correction cancels: arviz.loo's numbers exactly."""
    mu = np.random.default_rng(14).normal(1.5, 0.2, size=2000)
    plain = diagnostics.loo(_normal_idata(mu))
    corrected = diagnostics.loo(
        diagnostics.from_samples(
            {"mu": mu},
            method="t",
            parameters={"mu": ()},
            log_likelihood={"y": _normal_idata(mu).log_likelihood["y"].values[0]},
            sample_stats={"lp": np.full(2000, 3.0), "log_q": np.zeros(2000)},
        )
    )
    for key in ("elpd_loo", "se", "p_loo"):
        assert float(corrected[key]) == pytest.approx(float(plain[key]), rel=1e-10)
    np.testing.assert_allclose(corrected["pareto_k"].values, plain["pareto_k"].values)


def test_loo_table_compares_methods_and_skips_what_has_no_loo():
    mean, variance = _exact_posterior(_Y)
    rng = np.random.default_rng(15)
    idatas = {
        "reference": _normal_idata(rng.normal(mean, math.sqrt(variance), size=2000)),
        "shifted": _normal_idata(rng.normal(mean + 3 * math.sqrt(variance), 0.2, size=2000)),
        "no_log_lik": diagnostics.from_samples(
            {"mu": rng.normal(size=100)}, method="t", parameters={"mu": ()}
        ),
        "local": diagnostics.from_local(
            rng.normal(size=(100, 2, 1)), method="amortized", log_likelihood=-np.ones((100, 2))
        ),
    }
    rows = diagnostics.loo_table(idatas)
    assert [r["method"] for r in rows] == ["reference", "shifted"]
    assert all(set(r) == set(diagnostics.LOO_COLUMNS) for r in rows)
    reference, shifted = rows
    assert reference["rank"] == 0 and reference["elpd_diff"] == 0.0
    # a posterior 3 sd off predicts worse: about n (3 sd)^2 / 2 = 4.5 nats
    assert shifted["rank"] == 1 and 3.0 < shifted["elpd_diff"] < 6.0
    assert reference["n_data"] == 20 and reference["n_draws"] == 2000
    assert not reference["q_corrected"] and reference["khat_bad"] == 0
    with pytest.raises(UserError, match="no log_likelihood"):
        diagnostics.loo(idatas["no_log_lik"])
    with pytest.raises(UserError, match="harmonic-mean") as err:
        diagnostics.loo(idatas["local"])
    assert "\n" not in str(err.value)
