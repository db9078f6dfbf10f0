"""Budgets and partial results of ``pyrovae compare``: time limits, Ctrl-C, exit status.

Two stand-in methods are registered for these tests only: ``quick`` returns exact
posterior draws at once, ``endless`` loops until a time limit stops it (it checks the
deadline as the real samplers and fits do, once per iteration), and ``interrupted``
raises KeyboardInterrupt as Ctrl-C would.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass

import numpy as np
import pytest

from pyrovae.cli import EXIT_PARTIAL, main
from pyrovae.errors import PyrovaeError
from pyrovae.posterior import diagnostics
from pyrovae.posterior.compare import MethodResult
from pyrovae.posterior.inference import deadline
from pyrovae.posterior.inference.deadline import TimeLimitReached, time_limit
from pyrovae.posterior.methods import METHODS
from pyrovae.posterior.run import compare_posterior
from pyrovae.posterior.targets.zoo import get_model, parameter_names


@dataclass(frozen=True)
class _Stand:
    name: str
    behaviour: str
    chains: int = 1
    family: str = "mcmc"

    def run(self, target, *, seed, budget, progress=False, predictive=False) -> MethodResult:
        if self.behaviour == "endless":
            while True:
                deadline.check()
                time.sleep(0.01)
        if self.behaviour == "interrupted":
            raise KeyboardInterrupt
        names = parameter_names(target.parameters)
        rng = np.random.default_rng(seed)
        exact = target.exact
        draws = rng.multivariate_normal(exact.mean.numpy(), exact.covariance.numpy(), 400)
        posterior = diagnostics.from_flat(draws, names, method=self.name, chains=1)
        return MethodResult(self.name, draws, seconds=0.0, posterior=posterior)


@pytest.fixture
def stand_ins(monkeypatch):
    for name in ("quick", "endless", "interrupted"):
        monkeypatch.setitem(METHODS, name, _Stand(name, name))


def test_time_limits_nest_and_the_earliest_wins() -> None:
    deadline.check()  # no limit: nothing happens
    assert deadline.remaining() == float("inf")
    with time_limit(None):
        deadline.check()
    with time_limit(60.0, "outer"), time_limit(0.0, "inner"):
        assert deadline.remaining() <= 0
        with pytest.raises(TimeLimitReached, match=r"stopped at inner \(0 s\)"):
            deadline.check()
    with time_limit(0.0, "outer"), time_limit(60.0, "inner"):
        with pytest.raises(TimeLimitReached, match="outer"):
            deadline.check()
    deadline.check()  # the limits are gone after their blocks


def test_a_method_over_its_limit_is_stopped_and_the_others_kept(stand_ins) -> None:
    model = get_model("normal_normal")
    comparison = compare_posterior(
        model, ["quick", "endless"], method_time_limit=0.3, time_limit=None
    )
    assert [m.method for m in comparison.methods] == ["quick"]
    assert comparison.stopped["endless"].startswith("stopped at the time limit per method (0.3 s)")
    assert not comparison.complete and not comparison.failed
    rows = {r["method"]: r for r in comparison._all_method_rows()}
    assert rows["endless"]["verdict"] == "stopped" and rows["quick"]["verdict"] == "ok"
    assert "### Stopped methods" in comparison.to_markdown()


def test_the_comparison_limit_stops_the_rest(stand_ins) -> None:
    model = get_model("normal_normal")
    comparison = compare_posterior(
        model, ["quick", "endless", "interrupted"], time_limit=0.5, method_time_limit=None
    )
    assert "the comparison's time limit (0.5 s)" in comparison.stopped["endless"]
    # after the whole comparison's limit nothing else starts
    assert comparison.stopped["interrupted"].startswith("not started")
    assert [m.method for m in comparison.methods] == ["quick"]


def test_ctrl_c_keeps_finished_methods_and_skips_the_rest(stand_ins) -> None:
    model = get_model("normal_normal")
    comparison = compare_posterior(model, ["quick", "interrupted", "endless"], time_limit=None)
    assert [m.method for m in comparison.methods] == ["quick"]
    assert comparison.stopped["interrupted"].startswith("interrupted (Ctrl-C)")
    assert comparison.stopped["endless"].startswith("not started")


def test_reference_over_the_limit_is_one_clear_error() -> None:
    model = get_model("logistic_regression")  # its reference is a long NUTS run
    with pytest.raises(PyrovaeError, match="nothing to compare with; raise --time-limit"):
        compare_posterior(model, ["auto_normal"], time_limit=0.5)


def test_cli_writes_the_finished_methods_and_exits_partial(stand_ins, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "normal_normal", "--methods", "quick,endless", "--out", str(out)]
    status = main([*args, "--method-time-limit", "0.3", "--quiet"])
    assert status == EXIT_PARTIAL == 3
    printed = capsys.readouterr().out
    assert "endless: stopped at the time limit per method (0.3 s)" in printed
    rows = {r["method"]: r for r in csv.DictReader((out / "methods.csv").open())}
    assert rows["endless"]["verdict"] == "stopped" and rows["quick"]["verdict"] == "ok"
    assert (out / "posteriors" / "quick.nc").is_file()
    assert not (out / "posteriors" / "endless.nc").exists()
    assert "### Stopped methods" in (out / "comparison.md").read_text()


def test_cli_rejects_a_negative_limit(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["compare", "normal_normal", "--time-limit", "-1"])
    assert stop.value.code == 2
    assert "expected seconds >= 0" in capsys.readouterr().err
