"""Torch's CPU threads: chosen from the cores a process may use and those already busy,
capped by PYROVAE_MAX_THREADS, set for training and restored afterwards."""

from __future__ import annotations

import io
import os

import pytest
import torch
from helpers import tiny_spec

from pyrovae.data import load_data
from pyrovae.errors import SpecError, UserError
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit
from pyrovae.train import threads as threads_module
from pyrovae.train.threads import (
    MAX_THREADS_ENV,
    available_cores,
    busy_cores,
    resolve_threads,
    torch_threads,
)


def _loadavg(monkeypatch: pytest.MonkeyPatch, running: list[int]) -> None:
    """Make /proc/loadavg report these running counts, one per read."""
    counts = iter(running)
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            return io.StringIO(f"0.50 0.40 0.30 {next(counts)}/321 4242\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: None)


def test_available_cores_follow_the_affinity_mask() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cores() == expected


def test_busy_cores_are_the_median_running_count_less_this_process(monkeypatch) -> None:
    # one read caught a burst (9 running); the median ignores it; this process is 1 of them
    _loadavg(monkeypatch, [3, 3, 9, 2, 3])
    assert busy_cores() == 2


def test_busy_cores_is_zero_where_the_system_does_not_say(monkeypatch) -> None:
    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr("builtins.open", no_proc)
    assert busy_cores() == 0


def test_auto_takes_the_free_cores_and_at_least_one(monkeypatch) -> None:
    monkeypatch.delenv(MAX_THREADS_ENV, raising=False)
    monkeypatch.setattr(threads_module, "available_cores", lambda: 8)
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 3)
    assert resolve_threads(0) == 5
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 20)
    assert resolve_threads(0) == 1


def test_an_explicit_count_is_kept_and_the_cap_bounds_auto(monkeypatch) -> None:
    monkeypatch.setattr(threads_module, "available_cores", lambda: 8)
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 0)
    monkeypatch.setenv(MAX_THREADS_ENV, "2")
    assert resolve_threads(0) == 2
    assert resolve_threads(6) == 6  # asked for by name: the user's choice wins


@pytest.mark.parametrize("cap", ["0", "-1", "two", "1.5"])
def test_a_bad_cap_is_one_user_error_naming_the_variable(monkeypatch, cap: str) -> None:
    monkeypatch.setenv(MAX_THREADS_ENV, cap)
    with pytest.raises(UserError, match=MAX_THREADS_ENV):
        resolve_threads(0)


def test_torch_threads_restores_the_previous_count_even_on_error() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError), torch_threads(other):
        assert torch.get_num_threads() == other
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_a_negative_thread_count_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"train\.threads"):
        load_spec(None, ["train.threads=-1"])


def test_fit_trains_with_the_declared_threads_and_restores_them(monkeypatch) -> None:
    spec = tiny_spec("train.epochs=1", "train.threads=1")
    data = load_data(spec.data, spec.model.likelihood.name)
    model = build(spec, data.dim)
    seen: list[int] = []
    real_step = torch.optim.Adam.step

    def spying_step(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spying_step)
    before = torch.get_num_threads()
    with torch_threads(2):
        fit(model, data, spec.train, progress=False)
        after = torch.get_num_threads()
    assert seen and set(seen) == {1}
    assert after == 2
    assert torch.get_num_threads() == before
