"""pyrovae.posterior.targets.zoo: shapes of every model, flattening, exact posteriors,
references."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from helpers import SHARED_DATA
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.infer.mcmc.util import initialize_model

from pyrovae.errors import UserError
from pyrovae.posterior.targets import posteriordb, zoo

DB = SHARED_DATA / "posteriordb"
HAVE_DB = (DB / "posteriors").is_dir()
needs_posteriordb = pytest.mark.skipif(
    not HAVE_DB,
    reason="needs the posteriordb subset in ../shared/data/posteriordb (absent in this checkout)",
)
NEEDS_DB = {"blr", "kidscore_momiq"}


def _model_params() -> list:
    return [
        pytest.param(name, marks=needs_posteriordb) if name in NEEDS_DB else name
        for name in zoo.MODELS
    ]


@pytest.fixture(autouse=True)
def _clean_pyro():
    pyro.clear_param_store()
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def _get(name: str) -> zoo.ZooModel:
    return zoo.get_model(name, root=DB if name in NEEDS_DB else None)


# ---------------------------------------------------------------------------
# Every model


def test_list_models() -> None:
    assert zoo.list_models() == list(zoo.MODELS)
    assert len(set(zoo.MODELS)) == len(zoo.MODELS) == 9


@pytest.mark.parametrize("name", _model_params())
def test_model_trace_has_declared_shapes(name: str) -> None:
    m = _get(name)
    assert m.name == name
    assert all(v.dtype == torch.float32 for v in m.data.values())
    trace = poutine.trace(m.model).get_trace(**m.data)
    for site, shape in m.parameters.items():
        node = trace.nodes[site]
        assert node["type"] == "sample"
        assert tuple(node["value"].shape) == shape, site
        assert not node["is_observed"] or node["infer"].get("_deterministic"), site
    assert torch.isfinite(trace.log_prob_sum())


@pytest.mark.parametrize("name", _model_params())
def test_model_vectorizes_and_flattens(name: str) -> None:
    m = _get(name)
    predictive = Predictive(m.model, num_samples=4, parallel=True, return_sites=list(m.parameters))
    flat = zoo.flatten(predictive(**m.data), m.parameters)
    assert flat.shape == (4, len(zoo.parameter_names(m.parameters)))
    assert flat.dtype == np.float64


@pytest.mark.parametrize("name", _model_params())
def test_model_initializes_for_nuts_and_autoguides(name: str) -> None:
    m = _get(name)
    initialize_model(m.model, model_kwargs=m.data)
    guide = AutoNormal(m.model)
    svi = SVI(m.model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    assert np.isfinite(svi.step(**m.data))


@pytest.mark.parametrize("name", ["normal_normal", "blr_known_noise", "logistic_regression"])
def test_synthetic_data_are_seeded(name: str) -> None:
    a, b = zoo.get_model(name), zoo.get_model(name)
    for key in a.data:
        torch.testing.assert_close(a.data[key], b.data[key], rtol=0, atol=0)


# ---------------------------------------------------------------------------
# parameter_names and flatten


def test_parameter_names() -> None:
    assert zoo.parameter_names({"mu": ()}) == ["mu"]
    assert zoo.parameter_names({"theta": (3,), "tau": ()}) == [
        "theta[1]",
        "theta[2]",
        "theta[3]",
        "tau",
    ]
    assert zoo.parameter_names({"a": (2, 3)}) == [
        "a[1,1]",
        "a[1,2]",
        "a[1,3]",
        "a[2,1]",
        "a[2,2]",
        "a[2,3]",
    ]
    assert zoo.parameter_names({}) == []


PARAMS = {"theta": (2,), "mu": (), "a": (2, 2)}


def _samples(batch: tuple[int, ...]) -> dict[str, torch.Tensor]:
    n = int(np.prod(batch))
    base = torch.arange(n, dtype=torch.float32).reshape(*batch, 1)
    return {
        "theta": base * 10 + torch.tensor([1.0, 2.0]),
        "mu": base.squeeze(-1) + 0.5,
        "a": (base * 100).unsqueeze(-1) + torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "unreported": torch.zeros(*batch, 7),
    }


def test_flatten_orders_columns_like_parameter_names() -> None:
    flat = zoo.flatten(_samples((3,)), PARAMS)
    assert flat.shape == (3, 7)
    assert flat.dtype == np.float64
    np.testing.assert_array_equal(flat[2], [21.0, 22.0, 2.5, 201.0, 202.0, 203.0, 204.0])


def test_flatten_accepts_padded_scalars_and_numpy() -> None:
    samples = _samples((3,))
    padded = {
        "theta": samples["theta"].unsqueeze(1).numpy(),  # (S, 1, 2)
        "mu": samples["mu"].unsqueeze(-1),  # (S, 1), as Predictive gives
        "a": samples["a"],
    }
    np.testing.assert_array_equal(zoo.flatten(padded, PARAMS), zoo.flatten(samples, PARAMS))


def test_flatten_with_two_batch_dims() -> None:
    flat = zoo.flatten(_samples((2, 3)), PARAMS, batch_ndim=2)
    assert flat.shape == (2, 3, 7)
    np.testing.assert_array_equal(flat.reshape(6, 7), zoo.flatten(_samples((6,)), PARAMS))


def test_flatten_errors() -> None:
    samples = _samples((3,))
    with pytest.raises(UserError, match=r"lack site\(s\) \['mu'\]"):
        zoo.flatten({k: v for k, v in samples.items() if k != "mu"}, PARAMS)
    with pytest.raises(UserError, match="samples of 'theta' have shape"):
        zoo.flatten({**samples, "theta": torch.zeros(3, 4)}, PARAMS)
    with pytest.raises(UserError, match="different batch shapes"):
        zoo.flatten({**samples, "mu": torch.zeros(5)}, PARAMS)


# ---------------------------------------------------------------------------
# Exact posteriors


def _unflatten(flat: torch.Tensor, parameters: dict[str, tuple[int, ...]]) -> dict:
    out, start = {}, 0
    for name, shape in parameters.items():
        size = int(np.prod(shape))
        out[name] = flat[start : start + size].reshape(shape)
        start += size
    return out


@pytest.mark.parametrize("name", ["normal_normal", "blr_known_noise", "regression_far"])
def test_exact_posterior_matches_joint_density(name: str) -> None:
    """log p(theta, y) - log N(theta; exact) is the same constant, log p(y), at every theta."""
    m = zoo.get_model(name)
    assert m.exact is not None and m.log_evidence is not None
    p = len(zoo.parameter_names(m.parameters))
    assert m.exact.mean.shape == (p,) and m.exact.covariance.shape == (p, p)
    assert m.exact.mean.dtype == m.exact.covariance.dtype == torch.float64
    data = {k: v.double() for k, v in m.data.items()}
    posterior = torch.distributions.MultivariateNormal(m.exact.mean, m.exact.covariance)
    g = torch.Generator().manual_seed(0)
    offsets = torch.randn(6, p, generator=g, dtype=torch.float64) * 3
    thetas = [
        m.exact.mean,
        *(m.exact.mean + o * m.exact.covariance.diagonal().sqrt() for o in offsets),
    ]
    for theta in thetas:
        conditioned = poutine.condition(m.model, data=_unflatten(theta, m.parameters))
        log_joint = poutine.trace(conditioned).get_trace(**data).log_prob_sum()
        gap = float(log_joint - posterior.log_prob(theta))
        assert gap == pytest.approx(m.log_evidence, abs=1e-4)


def test_blr_known_noise_posterior_is_correlated() -> None:
    m = zoo.get_model("blr_known_noise")
    assert m.data["X"].shape == (50, 3)
    cov = m.exact.covariance
    corr = cov / torch.outer(cov.diagonal().sqrt(), cov.diagonal().sqrt())
    assert corr.triu(1).abs().max() > 0.5


def test_regression_far_is_badly_scaled() -> None:
    """Predictors far from zero: posterior sds 150-fold apart, condition number near 1e7."""
    m = zoo.get_model("regression_far")
    x = m.data["X"]
    assert x.shape == (50, 3) and (x[:, 0] == 1).all()
    assert 95 < float(x[:, 1].mean()) < 105 and -45 < float(x[:, 2].mean()) < -35
    sd = m.exact.covariance.diagonal().sqrt()
    assert float(sd.max() / sd.min()) > 100
    assert float(torch.linalg.cond(m.exact.covariance)) > 1e6


def test_normal_normal_data() -> None:
    m = zoo.get_model("normal_normal")
    assert m.data["y"].shape == (20,)
    assert abs(float(m.data["y"].mean()) - 1.5) < 1.0
    assert abs(float(m.exact.mean[0]) - float(m.data["y"].mean())) < 0.01


# ---------------------------------------------------------------------------
# Eight schools


def test_noncentered_theta_is_deterministic() -> None:
    m = zoo.get_model("eight_schools_noncentered")
    trace = poutine.trace(m.model).get_trace(**m.data)
    mu, tau = trace.nodes["mu"]["value"], trace.nodes["tau"]["value"]
    theta_trans = trace.nodes["theta_trans"]["value"]
    assert trace.nodes["theta"]["infer"].get("_deterministic")
    torch.testing.assert_close(trace.nodes["theta"]["value"], mu + tau * theta_trans)


def test_centered_theta_is_latent() -> None:
    m = zoo.get_model("eight_schools_centered")
    trace = poutine.trace(m.model).get_trace(**m.data)
    assert not trace.nodes["theta"]["is_observed"]
    assert "theta_trans" not in trace.nodes


def test_eight_schools_embedded_data() -> None:
    m = zoo.get_model("eight_schools_centered")
    assert m.data["y"].tolist() == [28, 8, -3, 7, -1, 1, 18, 12]
    assert m.data["sigma"].tolist() == [15, 10, 16, 11, 9, 11, 10, 18]
    assert m.reference == "eight_schools-eight_schools_noncentered"


@needs_posteriordb
def test_eight_schools_data_match_posteriordb() -> None:
    raw = posteriordb.load_data("eight_schools", DB)
    assert zoo.EIGHT_SCHOOLS == {k: [float(v) for v in raw[k]] for k in ("y", "sigma")}


# ---------------------------------------------------------------------------
# posteriordb references


@needs_posteriordb
@pytest.mark.parametrize(
    "name", [n for n in zoo.MODELS if n in NEEDS_DB or n.startswith("eight_schools")]
)
def test_reference_names_match_parameters(name: str) -> None:
    m = _get(name)
    assert m.reference is not None
    names, draws = posteriordb.load_reference_draws(m.reference, DB)
    assert names == zoo.parameter_names(m.parameters)
    # the model's density is finite at reference draws
    for flat in draws[0, :3]:
        values = _unflatten(torch.as_tensor(flat, dtype=torch.float32), m.parameters)
        if name == "eight_schools_noncentered":
            values = {"theta_trans": (values["theta"] - values["mu"]) / values["tau"], **values}
            del values["theta"]
        trace = poutine.trace(poutine.condition(m.model, data=values)).get_trace(**m.data)
        assert torch.isfinite(trace.log_prob_sum())


# ---------------------------------------------------------------------------
# Errors


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(UserError, match="did you mean 'eight_schools_centered'") as info:
        zoo.get_model("eight_school_centered")
    assert "\n" not in str(info.value)


def test_posteriordb_model_without_posteriordb(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="model 'blr' needs posteriordb's 'sblrc' data"):
        zoo.get_model("blr", root=tmp_path / "absent")


def test_zoo_model_is_frozen() -> None:
    m = zoo.get_model("normal_normal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.name = "other"  # type: ignore[misc]
