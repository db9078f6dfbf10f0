"""Test-session settings: one torch thread per pytest-xdist worker.

The default run (``-n 2`` in pyproject.toml) has two workers on a 2-core machine;
each pins torch, and the CLI processes it starts, to one thread so that the workers
do not oversubscribe the cores.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PYROVAE_MAX_THREADS", "1")

import pytest  # after the thread settings, which must precede torch
from matplotlib.figure import Figure


@pytest.fixture
def saved(monkeypatch) -> list[Figure]:
    """Each Figure as it is saved: ``Figure.savefig`` records it, then saves as usual
    (figure tests read the plotted data back from it)."""
    recorded: list[Figure] = []
    savefig = Figure.savefig

    def record(self, *args, **kwargs):
        recorded.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return recorded
