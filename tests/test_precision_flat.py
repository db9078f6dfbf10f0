"""float64 by default, integer data kept integer, and Stan's implicit flat priors.

A user model translated from Stan, with ``dist.ImproperUniform`` for the parameters
that have no prior statement, must run as written through NUTS, an autoguide and the
comparison; its posterior here is known exactly (``regression_year``'s data, whose
exact draws the zoo provides), so the answers are checked, not only run.
"""

from __future__ import annotations

import json

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

import pyrovae
from pyrovae.errors import UserError
from pyrovae.posterior.compare import compare
from pyrovae.posterior.run import run_method
from pyrovae.posterior.targets.flat import Flat, flat, flat_priors
from pyrovae.posterior.targets.precision import cast_data, default_dtype, with_dtype
from pyrovae.posterior.targets.user import load_user_model
from pyrovae.posterior.targets.zoo import get_model, parameter_names

STAN_TRANSLATION = """
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints


def model(x, y):
    # real alpha; real beta; real<lower=0> sigma;  (no prior statements)
    alpha = pyro.sample("alpha", dist.ImproperUniform(constraints.real, (), ()))
    beta = pyro.sample("beta", dist.ImproperUniform(constraints.real, (), ()))
    sigma = pyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with pyro.plate("obs", len(x)):
        pyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


class NoSample(dist.ImproperUniform):
    pass


def broken(y):
    mu = pyro.sample("mu", NoSample(constraints.real, (), ()))
    pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def counts(group, y):
    with pyro.plate("groups", 3):
        rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
    with pyro.plate("obs", len(y)):
        pyro.sample("y", dist.Poisson(rate[group]), obs=y)
"""


def test_flat_is_a_flat_density_with_a_fixed_feasible_point() -> None:
    sigma = pyrovae.flat(constraints.positive)
    assert isinstance(sigma, Flat) and float(sigma.sample()) == 1.0
    assert float(sigma.log_prob(torch.tensor(3.7))) == 0.0
    beta = flat(event_shape=(2,))
    assert beta.sample((4,)).shape == (4, 2) and beta.event_shape == (2,)
    assert float(flat(constraints.interval(2.0, 4.0)).sample()) == 3.0

    def model() -> None:
        with pyro.plate("p", 3):
            pyro.sample("b", flat(constraints.positive))

    trace = pyro.poutine.trace(model).get_trace()
    assert trace.nodes["b"]["value"].tolist() == [1.0, 1.0, 1.0]


def test_flat_priors_replaces_only_the_bare_improper_uniform() -> None:
    def model() -> None:
        pyro.sample("a", dist.ImproperUniform(constraints.positive, (), ()))
        pyro.sample("b", dist.Normal(0.0, 1.0))

    trace = pyro.poutine.trace(flat_priors(model)).get_trace()
    assert type(trace.nodes["a"]["fn"]) is Flat and float(trace.nodes["a"]["value"]) == 1.0
    assert type(trace.nodes["b"]["fn"]) is dist.Normal
    with pytest.raises(NotImplementedError):
        pyro.poutine.trace(model).get_trace()  # Pyro's own cannot be traced


@pytest.fixture
def stan_model(tmp_path):
    year = get_model("regression_year")
    (tmp_path / "stan.py").write_text(STAN_TRANSLATION)
    data = {k: v.tolist() for k, v in year.data.items()}
    (tmp_path / "data.json").write_text(json.dumps(data))
    return load_user_model(f"{tmp_path / 'stan.py'}:model", tmp_path / "data.json"), year


def test_a_stan_translation_with_improper_uniform_runs_nuts_and_autoguides(stan_model) -> None:
    model, year = stan_model
    assert model.parameters == {"alpha": (), "beta": (), "sigma": ()}
    assert all(v.dtype == torch.float64 for v in model.data.values())  # JSON floats
    exact = year.exact_draws(np.random.default_rng(0), 20_000)
    names = tuple(parameter_names(model.parameters))
    with default_dtype("float64"):
        nuts = run_method(model, "nuts", num_samples=800, seed=0)
        normal = run_method(model, "auto_normal", num_samples=2000, seeds=1, seed=0)
    comparison = compare(exact, names, [nuts, normal], reference_name="exact")
    rows = {r["method"]: r for r in comparison.method_rows}
    assert rows["nuts"]["verdict"] == "ok", rows["nuts"]["flagged"]
    assert rows["nuts"]["mass"] == "dense" and rows["nuts"]["treedepth_hits"] == 0.0
    # mean-field cannot hold a -0.99999 correlation: far too narrow on alpha and beta
    assert rows["auto_normal"]["min_sd_ratio"] < 0.05
    assert rows["auto_normal"]["verdict"] == "family limit"


def test_improper_prior_without_sample_fails_in_one_line(tmp_path) -> None:
    (tmp_path / "stan.py").write_text(STAN_TRANSLATION)
    (tmp_path / "y.json").write_text(json.dumps({"y": [1.0, 2.0]}))
    with pytest.raises(UserError, match=r"pyrovae\.flat\(support\)") as err:
        load_user_model(f"{tmp_path / 'stan.py'}:broken", tmp_path / "y.json")
    assert "\n" not in str(err.value)


def test_json_integers_stay_integer_and_index(tmp_path) -> None:
    (tmp_path / "stan.py").write_text(STAN_TRANSLATION)
    data = {"group": [0, 1, 2, 1], "y": [3, 0, 5, 2]}
    (tmp_path / "d.json").write_text(json.dumps(data))
    model = load_user_model(f"{tmp_path / 'stan.py'}:counts", tmp_path / "d.json")
    assert model.data["group"].dtype == torch.int64 and model.data["y"].dtype == torch.int64
    from pyrovae.posterior.targets.user import _tensor

    assert _tensor("y", [1, 2.5]).dtype == torch.float64
    assert _tensor("flag", [True, False]).dtype == torch.bool
    with pytest.raises(UserError, match="not a rectangular array"):
        _tensor("ragged", [[1, 2], [3]])


def test_with_dtype_casts_floats_only_and_default_dtype_restores() -> None:
    data = {"x": torch.ones(2), "i": torch.arange(3), "n": 4}
    cast = cast_data(data, torch.float64)
    assert cast["x"].dtype == torch.float64 and cast["i"].dtype == torch.int64 and cast["n"] == 4
    model = with_dtype(get_model("regression_year"), "float64")
    assert model.data["x"].dtype == torch.float64
    before = torch.get_default_dtype()
    with pytest.raises(RuntimeError), default_dtype("float64"):
        assert torch.tensor(1.0).dtype == torch.float64
        raise RuntimeError("restored even on error")
    assert torch.get_default_dtype() == before
    with pytest.raises(UserError, match="--dtype: expected one of float64, float32"):
        with_dtype(model, "float16")
