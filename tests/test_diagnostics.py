"""pyrovae.posterior.diagnostics: every posterior as InferenceData, NetCDF files,
diagnostics, overlays."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from PIL import Image

from pyrovae.errors import UserError
from pyrovae.local.posteriors import latent_names
from pyrovae.posterior import diagnostics
from pyrovae.posterior.inference.mcmc import McmcResult, run_mcmc
from pyrovae.posterior.targets.zoo import parameter_names

PARAMETERS = {"mu": (), "tau": (), "theta": (8,)}
CHAINS, DRAWS = 4, 50


@pytest.fixture(autouse=True)
def _no_open_figures():
    yield
    assert plt.get_fignums() == []


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _samples(gen: torch.Generator, chains: int = CHAINS, draws: int = DRAWS) -> dict:
    return {
        "mu": torch.randn(chains, draws, generator=gen, dtype=torch.float64) + 4.0,
        "tau": torch.rand(chains, draws, generator=gen, dtype=torch.float64) * 3.0,
        "theta": torch.randn(chains, draws, 8, generator=gen, dtype=torch.float64),
    }


def _nuts_result(divergences=(0, 0, 0, 0), diverging=None) -> McmcResult:
    gen = _gen(1)
    return McmcResult(
        diverging=diverging,
        kernel="nuts",
        samples=_samples(gen),
        acceptance_rate=torch.tensor([0.8, 0.85, 0.9, 0.75], dtype=torch.float64),
        step_size=torch.tensor([0.3, 0.25, 0.2, 0.35], dtype=torch.float64),
        divergences=torch.tensor(divergences, dtype=torch.int64),
        num_steps=torch.randint(1, 16, (CHAINS, DRAWS), generator=gen),
        seconds=1.5,
        ess={},
        r_hat={},
    )


def _metropolis_result() -> McmcResult:
    return McmcResult(
        kernel="metropolis",
        samples=_samples(_gen(2)),
        acceptance_rate=torch.full((CHAINS,), 0.23, dtype=torch.float64),
        step_size=torch.full((CHAINS,), 0.5, dtype=torch.float64),
        divergences=None,
        num_steps=None,
        seconds=0.5,
        ess={},
        r_hat={},
    )


def _padded_guide_draws(total: int = CHAINS * DRAWS) -> dict:
    """Predictive-style draws: (S, 1) scalars, (S, 1, 8) global vector, an observed site."""
    gen = _gen(3)
    return {
        "mu": torch.randn(total, 1, generator=gen),
        "tau": torch.rand(total, 1, generator=gen),
        "theta": torch.randn(total, 1, 8, generator=gen),
        "obs": torch.randn(total, 8, generator=gen),
    }


def _flat_draws(chains: int = CHAINS, draws: int = DRAWS) -> tuple[list[str], np.ndarray]:
    names = parameter_names(PARAMETERS)
    values = np.random.default_rng(4).normal(size=(chains, draws, len(names)))
    return names, values


def _check_png(path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"


# --- converters -------------------------------------------------------------------------------


def test_from_mcmc_nuts_posterior_and_sample_stats():
    result = _nuts_result()
    idata = diagnostics.from_mcmc(result, method="nuts")
    post = idata.posterior
    assert list(post.data_vars) == ["mu", "tau", "theta"]
    assert post["theta"].dims == ("chain", "draw", "theta_dim_0")
    assert post["theta"].shape == (CHAINS, DRAWS, 8)
    np.testing.assert_array_equal(post["theta_dim_0"].values, np.arange(1, 9))  # Stan's theta[1]
    np.testing.assert_allclose(post["mu"].values, result.samples["mu"].numpy())
    stats = idata.sample_stats
    assert stats["acceptance_rate"].shape == (CHAINS, DRAWS)
    np.testing.assert_allclose(stats["acceptance_rate"].values[:, 7], [0.8, 0.85, 0.9, 0.75])
    np.testing.assert_allclose(stats["step_size"].values[2], 0.2)
    np.testing.assert_array_equal(stats["tree_size"].values, result.num_steps.numpy())
    assert stats["diverging"].dtype == bool and not stats["diverging"].values.any()
    assert idata.attrs == {
        "method": "nuts",
        "kernel": "nuts",
        "seconds": 1.5,
        "divergences": [0] * 4,
        "mass": "diag",  # McmcResult's default; no start or tree depth given here
    }
    assert not [w for w in diagnostics.warnings(idata) if "divergent" in w]


def _diverging_flags() -> torch.Tensor:
    flags = torch.zeros(CHAINS, DRAWS, dtype=torch.bool)
    flags[0, 7] = True
    return flags


def test_from_mcmc_keeps_which_draws_diverged():
    idata = diagnostics.from_mcmc(_nuts_result((1, 0, 0, 0), _diverging_flags()), method="nuts")
    diverging = idata.sample_stats["diverging"]
    assert diverging.dtype == bool and diverging.shape == (CHAINS, DRAWS)
    assert diverging.values.sum() == 1 and bool(diverging.values[0, 7])
    assert [w for w in diagnostics.warnings(idata) if w.startswith("1 divergent")]
    with pytest.raises(UserError, match="diverging has shape"):
        diagnostics.from_mcmc(_nuts_result((1, 0, 0, 0), _diverging_flags()[:, :3]), method="n")


def test_from_mcmc_divergence_counts_without_positions():
    idata = diagnostics.from_mcmc(_nuts_result((0, 2, 0, 1)), method="nuts")
    assert "diverging" not in idata.sample_stats
    assert idata.attrs["divergences"] == [0, 2, 0, 1]
    lines = [w for w in diagnostics.warnings(idata) if "divergent" in w]
    assert len(lines) == 1 and lines[0].startswith("3 divergent")


def test_from_mcmc_metropolis_fake_result():
    idata = diagnostics.from_mcmc(_metropolis_result(), method="metropolis")
    assert set(idata.sample_stats.data_vars) == {"acceptance_rate", "step_size"}
    assert "divergences" not in idata.attrs
    assert idata.attrs["kernel"] == "metropolis"
    assert idata.posterior["theta"].shape == (CHAINS, DRAWS, 8)


def test_from_mcmc_real_metropolis_run(tmp_path):
    """arviz.from_pyro fails with KeyError 'divergences' on Pyro's random walk; this does not."""

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("obs", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y = torch.tensor([1.0, 2.0, 0.5])
    result = run_mcmc(
        model, {"y": y}, kernel="metropolis", num_samples=30, warmup_steps=30, num_chains=2
    )
    idata = diagnostics.from_mcmc(
        result, method="metropolis", observed_data={"y": y}, log_likelihood=None
    )
    assert idata.posterior["mu"].shape == (2, 30)
    assert idata.observed_data["y"].dims == ("y_dim_0",)
    back = diagnostics.load(diagnostics.save(idata, tmp_path / "m.nc"))
    assert back.attrs["kernel"] == "metropolis"
    assert set(back.sample_stats.data_vars) == {"acceptance_rate", "step_size"}
    np.testing.assert_allclose(
        back.sample_stats["acceptance_rate"].values[:, 0], result.acceptance_rate.numpy()
    )


def test_from_mcmc_groups_dims_and_coords():
    schools = [f"s{i}" for i in range(8)]
    loglik = np.random.default_rng(0).normal(size=(CHAINS, DRAWS, 8))
    idata = diagnostics.from_mcmc(
        _nuts_result(),
        method="nuts",
        parameters={"theta": (8,), "mu": ()},
        dims={"theta": ["school"], "y": ["school"]},
        coords={"school": schools},
        log_likelihood={"y": loglik},
        observed_data={"y": np.arange(8.0)},
        posterior_predictive={"y": loglik + 1.0},
    )
    assert list(idata.posterior.data_vars) == ["theta", "mu"]
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert list(idata.posterior["school"].values) == schools
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    assert idata.observed_data["y"].dims == ("school",)
    assert idata.posterior_predictive["y"].shape == (CHAINS, DRAWS, 8)
    with pytest.raises(UserError, match="coords"):
        diagnostics.from_mcmc(
            _nuts_result(), method="nuts", dims={"theta": ["school"]}, coords={"school": [1, 2]}
        )
    with pytest.raises(UserError, match="lacks site"):
        diagnostics.from_mcmc(_nuts_result(), method="nuts", parameters={"sigma": ()})


def test_from_samples_squeezes_padding_and_splits_chains():
    draws = _padded_guide_draws()
    idata = diagnostics.from_samples(
        draws,
        method="auto_normal",
        parameters=PARAMETERS,
        chains=CHAINS,
        khat=0.4,
        khats=(0.1, 0.7),
        elbo=-31.5,
        log_likelihood={"y": draws["obs"]},
    )
    post = idata.posterior
    assert list(post.data_vars) == ["mu", "tau", "theta"]  # "obs" is not a parameter
    assert post["mu"].shape == (CHAINS, DRAWS)
    assert post["theta"].shape == (CHAINS, DRAWS, 8)
    # chain c holds draws c * DRAWS .. (c + 1) * DRAWS - 1
    np.testing.assert_allclose(post["theta"].values[1, 0], draws["theta"][DRAWS, 0].numpy())
    assert idata.log_likelihood["y"].shape == (CHAINS, DRAWS, 8)
    assert idata.attrs == {"method": "auto_normal", "khat": 0.4, "khats": [0.1, 0.7], "elbo": -31.5}
    with pytest.raises(UserError, match="equal chains"):
        diagnostics.from_samples(draws, method="x", parameters=PARAMETERS, chains=3)
    with pytest.raises(UserError, match="event shape"):
        diagnostics.from_samples(draws, method="x", parameters={"theta": (7,)})


def test_from_flat_parses_stan_names_in_any_order():
    rng = np.random.default_rng(5)
    names = ["sigma", "z[2,3]", "z[1,1]", "z[1,2]", "z[1,3]", "z[2,1]", "z[2,2]", "w[1]"]
    flat = rng.normal(size=(60, len(names)))
    idata = diagnostics.from_flat(flat, names, method="exact", chains=2)
    post = idata.posterior
    assert list(post.data_vars) == ["sigma", "z", "w"]
    assert post["sigma"].dims == ("chain", "draw")
    assert post["z"].dims == ("chain", "draw", "z_dim_0", "z_dim_1")
    assert post["z"].shape == (2, 30, 2, 3)
    assert post["w"].shape == (2, 30, 1)
    np.testing.assert_allclose(post["z"].values[:, :, 1, 2].reshape(-1), flat[:, 1])
    np.testing.assert_allclose(post["z"].values[:, :, 0, 1].reshape(-1), flat[:, 3])
    # parameters restrict and order the variables
    only = diagnostics.from_flat(flat, names, method="exact", parameters={"z": (2, 3)})
    assert list(only.posterior.data_vars) == ["z"]


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["theta[0]"], "start at 1"),
        (["theta[1", "mu"], "cannot parse"),
        (["theta[1]", "theta[3]"], "every element"),
        (["mu", "mu"], "twice"),
        (["z[1]", "z[1,2]"], "different numbers"),
    ],
)
def test_from_flat_rejects_bad_names(names, match):
    with pytest.raises(UserError, match=match):
        diagnostics.from_flat(np.zeros((4, len(names))), names, method="x")


def test_from_local_dims_and_coords():
    draws = np.random.default_rng(6).normal(size=(20, 5, 2))
    idata = diagnostics.from_local(draws, method="per_point", chains=2)
    z = idata.posterior["z"]
    assert z.dims == ("chain", "draw", "point", "latent")
    assert z.shape == (2, 10, 5, 2)
    np.testing.assert_array_equal(z["point"].values, np.arange(1, 6))
    np.testing.assert_array_equal(z["latent"].values, np.arange(1, 3))
    np.testing.assert_allclose(z.values[1, 0], draws[10])


def test_sources_give_identical_variables_dims_and_coords():
    names, flat = _flat_draws()
    idatas = [
        diagnostics.from_mcmc(_nuts_result(), method="nuts", parameters=PARAMETERS),
        diagnostics.from_mcmc(_nuts_result(), method="nuts"),
        diagnostics.from_samples(
            _padded_guide_draws(), method="auto_normal", parameters=PARAMETERS, chains=CHAINS
        ),
        diagnostics.from_flat(flat, names, method="reference", parameters=PARAMETERS),
        diagnostics.from_flat(flat.reshape(-1, flat.shape[-1]), names, method="r", chains=CHAINS),
    ]
    first = idatas[0].posterior
    for idata in idatas[1:]:
        post = idata.posterior
        assert list(post.data_vars) == list(first.data_vars)
        for name in first.data_vars:
            assert post[name].dims == first[name].dims
            assert post[name].shape == first[name].shape
            assert post[name].dtype == np.float64
        assert set(post.coords) == set(first.coords)
        for coord in first.coords:
            np.testing.assert_array_equal(post[coord].values, first[coord].values)


# --- files ------------------------------------------------------------------------------------


def _sources() -> dict:
    names, flat = _flat_draws()
    return {
        "mcmc": lambda: diagnostics.from_mcmc(_nuts_result(), method="nuts"),
        "divergent": lambda: diagnostics.from_mcmc(_nuts_result((1, 0, 0, 0)), method="nuts"),
        "diverging": lambda: diagnostics.from_mcmc(
            _nuts_result((1, 0, 0, 0), _diverging_flags()), method="nuts"
        ),
        "metropolis": lambda: diagnostics.from_mcmc(_metropolis_result(), method="metropolis"),
        "samples": lambda: diagnostics.from_samples(
            _padded_guide_draws(),
            method="auto_mvn",
            parameters=PARAMETERS,
            chains=2,
            khat=0.71,
            khats=[0.2, math.nan],
            elbo=-12.0,
            log_likelihood={"y": _padded_guide_draws()["obs"]},
            posterior_predictive={"y": _padded_guide_draws()["obs"] + 1.0},
            observed_data={"y": np.arange(8.0)},
            sample_stats={"lp": np.arange(200.0), "log_q": np.zeros(200)},
        ),
        "flat": lambda: diagnostics.from_flat(
            flat,
            names,
            method="reference",
            dims={"theta": ["school"]},
            coords={"school": [f"school {i}" for i in range(8)]},
        ),
        "local": lambda: diagnostics.from_local(
            np.ones((12, 3, 2)),
            method="amortized",
            chains=3,
            log_likelihood=-np.ones((12, 3)),
            observed=np.zeros((3, 5)),
        ),
    }


@pytest.mark.parametrize("source", list(_sources()))
def test_netcdf_round_trip(tmp_path, source):
    idata = _sources()[source]()
    attrs_before = dict(idata.attrs)
    path = diagnostics.save(idata, tmp_path / "sub" / f"{source}.nc")
    assert path.is_file()
    assert idata.attrs == attrs_before  # save does not change its input
    back = diagnostics.load(path)
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        original, loaded = getattr(idata, group), getattr(back, group)
        assert list(loaded.data_vars) == list(original.data_vars)
        for name in original.data_vars:
            assert loaded[name].dims == original[name].dims
            assert loaded[name].dtype == original[name].dtype
            np.testing.assert_array_equal(loaded[name].values, original[name].values)
        for coord in original.coords:
            np.testing.assert_array_equal(loaded[coord].values, original[coord].values)
        assert loaded.attrs == original.attrs
    assert _same(back.attrs, idata.attrs)


def _same(a: dict, b: dict) -> bool:
    """Dict equality that treats NaN as equal to NaN."""
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=True)
        if not isinstance(a[k], str)
        else a[k] == b[k]
        for k in a
    )


def test_round_trip_keeps_khat_and_lists(tmp_path):
    idata = _sources()["samples"]()
    back = diagnostics.load(diagnostics.save(idata, tmp_path / "s.nc"))
    assert back.attrs["khat"] == 0.71
    assert back.attrs["khats"][0] == 0.2 and math.isnan(back.attrs["khats"][1])
    assert back.attrs["elbo"] == -12.0 and back.attrs["method"] == "auto_mvn"


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file") as missing:
        diagnostics.load(tmp_path / "absent.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netcdf file\nat all\n")
    with pytest.raises(UserError, match="cannot read") as unreadable:
        diagnostics.load(bad)
    for err in (missing, unreadable):
        assert "\n" not in str(err.value)


# --- diagnostics ------------------------------------------------------------------------------


def _idata(values: np.ndarray, name: str = "x"):
    """InferenceData of one scalar variable from ``(chains, draws)`` values."""
    chains = values.shape[0]
    return diagnostics.from_samples(
        {name: values.reshape(-1)}, method="test", parameters={name: ()}, chains=chains
    )


def test_summary_of_known_normal_within_monte_carlo_error():
    values = np.random.default_rng(7).normal(3.0, 2.0, size=(4, 1000))
    table = diagnostics.summary(_idata(values))
    row = table.loc["x"]
    for column in ("mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd"):
        assert column in table.columns
    for column in ("ess_bulk", "ess_tail", "r_hat"):
        assert column in table.columns
    assert abs(row["mean"] - 3.0) < 4 * row["mcse_mean"]
    assert abs(row["sd"] - 2.0) < 4 * row["mcse_sd"]
    assert row["r_hat"] < diagnostics.RHAT_MAX
    assert diagnostics.warnings(_idata(values)) == []


def test_warnings_rhat_on_chains_that_have_not_mixed():
    rng = np.random.default_rng(8)
    stuck = rng.normal(size=(4, 500)) * 0.1 + np.arange(4)[:, None]
    lines = diagnostics.warnings(_idata(stuck))
    r_hat = [line for line in lines if line.startswith("r_hat")]
    assert len(r_hat) == 1 and "x (" in r_hat[0]
    assert not [line for line in diagnostics.warnings(_idata(rng.normal(size=(4, 500))))]
    # a vector: the line names the worst element
    v = np.stack([rng.normal(size=(4, 500)), stuck], axis=-1).reshape(2000, 2)
    vector = diagnostics.from_samples({"v": v}, method="t", parameters={"v": (2,)}, chains=4)
    assert "v[2] (" in diagnostics.warnings(vector)[0]  # the second element, 1-based
    # one chain: no R-hat warning (R-hat needs several chains), even with a jump inside it
    jump = np.concatenate([np.zeros(500), np.full(500, 5.0)]) + rng.normal(size=1000) * 0.1
    assert not [w for w in diagnostics.warnings(_idata(jump[None, :])) if w.startswith("r_hat")]


def test_warnings_ess_on_autocorrelated_chains():
    rng = np.random.default_rng(9)
    rho, draws = 0.99, 1000
    x = np.zeros((4, draws))
    x[:, 0] = rng.normal(size=4)
    noise = rng.normal(size=(4, draws)) * math.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    lines = diagnostics.warnings(_idata(x))
    assert any(line.startswith("ess_bulk < 400") for line in lines)
    assert any(line.startswith("ess_tail < 400") for line in lines)


# --- overlays ---------------------------------------------------------------------------------


def test_plot_overlays_writes_pngs_and_closes_figures(tmp_path):
    names, flat = _flat_draws()
    before = plt.get_fignums()
    idatas = {
        "nuts": diagnostics.from_mcmc(_nuts_result(), method="nuts", parameters=PARAMETERS),
        "auto_normal": diagnostics.from_samples(
            _padded_guide_draws(), method="auto_normal", parameters=PARAMETERS, chains=CHAINS
        ),
        "reference": diagnostics.from_flat(flat, names, method="reference"),
    }
    paths = diagnostics.plot_overlays(idatas, tmp_path / "figs")
    assert set(paths) == {"density", "forest", "pair"}
    assert [p.name for p in paths.values()] == ["density.png", "forest.png", "pair.png"]
    for path in paths.values():
        _check_png(path)
    assert plt.get_fignums() == before


def test_plot_overlays_single_scalar_and_var_names(tmp_path):
    one = diagnostics.plot_overlays(
        {"nuts": _idata(np.random.default_rng(1).normal(size=(2, 50)))}, tmp_path
    )
    assert set(one) == {"density", "forest"}  # a pair plot needs two elements
    two = diagnostics.plot_overlays(
        {"metropolis": diagnostics.from_mcmc(_metropolis_result(), method="metropolis")},
        tmp_path / "two",
        var_names=["mu", "tau"],
    )
    _check_png(two["pair"])
    with pytest.raises(UserError, match="no variable"):
        diagnostics.plot_overlays({"a": _idata(np.zeros((1, 10)))}, tmp_path, var_names=["y"])


# --- 1-based names ----------------------------------------------------------------------------


def test_labels_are_stan_names_in_every_table():
    """ArviZ's labels, the warnings and the comparison tables all say theta[1] .. theta[8]."""
    names, flat = _flat_draws()
    sources = [
        diagnostics.from_mcmc(_nuts_result(), method="nuts", parameters=PARAMETERS),
        diagnostics.from_samples(
            _padded_guide_draws(), method="q", parameters=PARAMETERS, chains=CHAINS
        ),
        diagnostics.from_flat(flat, names, method="reference", parameters=PARAMETERS),
    ]
    for idata in sources:
        assert list(diagnostics.summary(idata).index) == names  # parameter_names order
    local = diagnostics.from_local(np.random.default_rng(0).normal(size=(8, 2, 3)), method="a")
    assert list(diagnostics.summary(local).index) == latent_names(2, 3)  # "z[1,1]", no space
    stuck = np.repeat(np.arange(4.0), 50)[:, None] * np.eye(1, 3, 2)  # only z[.,3] is stuck
    stuck = stuck + np.random.default_rng(0).normal(size=(200, 3)) * 0.01
    vector = diagnostics.from_samples({"w": stuck}, method="t", parameters={"w": (3,)}, chains=4)
    assert "w[3] (" in diagnostics.warnings(vector)[0]
