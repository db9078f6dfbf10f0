"""The seams where new kinds of parts plug in: networks, data sources, comparison methods,
and the training loop's placement, batches and process group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from helpers import tiny_spec

from pyrovae.cli import main
from pyrovae.data import SOURCES, load_data
from pyrovae.evaluate import latent_space
from pyrovae.nets import NETWORKS, build_decoder, build_encoder
from pyrovae.pipeline import build
from pyrovae.posterior import distances
from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.inference.mcmc import KERNELS
from pyrovae.posterior.inference.variational import GUIDES
from pyrovae.posterior.methods import METHODS, Budget, Method
from pyrovae.posterior.run import compare_posterior
from pyrovae.posterior.targets import zoo
from pyrovae.spec import DATA_SOURCES, NETWORK_KINDS, NetworkSpec
from pyrovae.stats import energy
from pyrovae.train import fit
from pyrovae.train.batches import ShuffledBatches
from pyrovae.train.placement import LocalPlacement
from pyrovae.train.process import SingleProcess

# --- registries -------------------------------------------------------------------------------


def test_network_registry_and_spec_list_the_same_kinds() -> None:
    assert set(NETWORKS) == set(NETWORK_KINDS)
    for builder in (build_encoder, build_decoder):
        net = builder(5, 3, NetworkSpec(kind="mlp", hidden=(4,)), None)
        assert net(torch.zeros(2, 7, 5)).shape == (2, 7, 3)
        with pytest.raises(ValueError, match="unknown network kind 'rnn'"):
            builder(5, 3, NetworkSpec(kind="rnn"), None)
    conv = NetworkSpec(kind="conv", channels=(4,), hidden=())
    assert build_encoder(2 * 6 * 6 + 3, 5, conv, (2, 6, 6))(torch.zeros(4, 75)).shape == (4, 5)
    assert build_decoder(5, 2 * 72, conv, (2, 6, 6))(torch.zeros(4, 5)).shape == (4, 144)


def test_data_sources_and_spec_list_the_same_names() -> None:
    assert set(SOURCES) == set(DATA_SOURCES)


def test_every_registered_method_follows_the_protocol() -> None:
    assert list(METHODS) == [*KERNELS, *GUIDES]
    for name, method in METHODS.items():
        assert isinstance(method, Method), name
        assert method.name == name
        assert method.family == ("mcmc" if name in KERNELS else "variational")
        assert method.chains == (4 if name in KERNELS else 1)


def test_compare_help_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--help"])
    assert stop.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"from the registry: {', '.join(METHODS)}" in shown


@dataclass(frozen=True)
class ExactDraws:
    """A method that samples the exact posterior: what a new method file holds."""

    name: str = "exact"
    family: str = "variational"
    chains: int = 1

    def run(self, target, *, seed, budget, progress=False, predictive=False) -> MethodResult:
        rng = np.random.default_rng(seed)
        exact = target.exact
        draws = rng.multivariate_normal(exact.mean.numpy(), exact.covariance.numpy(), budget.draws)
        return MethodResult(self.name, draws, seconds=0.0)


def test_a_new_method_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    method = ExactDraws()
    assert isinstance(method, Method)
    monkeypatch.setitem(METHODS, method.name, method)
    comparison = compare_posterior(zoo.get_model("blr_known_noise"), ["exact"], num_samples=2000)
    (row,) = comparison.method_rows
    assert row["method"] == "exact" and row["n_draws"] == 2000
    assert row["flagged"] == []  # exact draws sit within the reference's noise floor
    assert Budget().draws == 4000 and Budget().restarts == 3


# --- one energy distance ----------------------------------------------------------------------


def test_both_lines_use_the_one_energy_distance() -> None:
    assert latent_space.energy_distance is energy.energy_distance
    assert distances.stats_energy is energy.energy_distance
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.normal(1.0, 2.0, size=(400, 3))
    scale = y.std(axis=0, ddof=1)
    assert distances.energy_distance(x, y) == pytest.approx(
        energy.energy_distance(x / scale, y / scale), rel=1e-12
    )


def test_energy_distance_by_brute_force() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))

    def mean_pairwise(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)
        return d.sum() / (len(a) * (len(b) - 1)) if same else d.mean()

    brute = 2 * mean_pairwise(x, y, False) - mean_pairwise(x, x, True) - mean_pairwise(y, y, True)
    assert energy.energy_distance(torch.tensor(x), y) == pytest.approx(brute, rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 rows"):
        energy.energy_distance(x[:1], y)


# --- the training loop's seams ----------------------------------------------------------------


def _tiny():
    spec = tiny_spec("train.epochs=3")
    data = load_data(spec.data, spec.model.likelihood.name)
    return spec, data


def test_default_seams_are_the_explicit_ones() -> None:
    spec, data = _tiny()
    implicit = build(spec, data.dim)
    fit(implicit, data, spec.train, progress=False)
    explicit = build(spec, data.dim)
    fit(
        explicit,
        data,
        spec.train,
        progress=False,
        placement=LocalPlacement("cpu"),
        batches=ShuffledBatches(data.train.shape[0], spec.train.batch_size),
        process=SingleProcess(),
    )
    for key, value in implicit.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key


class CountingBatches(ShuffledBatches):
    """The shuffled plan, counting the epochs it was asked for."""

    epochs = 0

    def epoch(self, generator):
        self.epochs += 1
        yield from super().epoch(generator)


def test_fit_draws_its_batches_from_the_plan_and_scales_by_its_total() -> None:
    spec, data = _tiny()
    n = data.train.shape[0]
    plan = CountingBatches(n // 2, spec.train.batch_size)  # only the first half of the rows
    result = fit(build(spec, data.dim), data, spec.train, progress=False, batches=plan)
    assert plan.epochs == 3 and result.epochs == 3
    assert ShuffledBatches(10, 4).steps == 3
    rows = torch.cat(list(ShuffledBatches(10, 4).epoch(torch.Generator().manual_seed(0))))
    assert sorted(rows.tolist()) == list(range(10))


class Follower(SingleProcess):
    """A process that does not write, and whose peers always want to stop."""

    is_writer = False

    def any(self, flag: bool) -> bool:
        return True


class Reader(SingleProcess):
    is_writer = False


def test_only_the_writing_process_calls_on_epoch_end_and_stops_are_agreed() -> None:
    spec, data = _tiny()
    calls = []
    result = fit(
        build(spec, data.dim),
        data,
        spec.train,
        progress=False,
        on_epoch_end=calls.append,
        process=Reader(),
    )
    assert result.epochs == 3 and calls == []
    stopped = fit(build(spec, data.dim), data, spec.train, progress=False, process=Follower())
    assert stopped.epochs == 0 and stopped.stop_reason == "early_stopping"
