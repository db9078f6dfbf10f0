"""Interruption: a stop between steps resumes exactly, Ctrl-C and SIGTERM save a checkpoint
and exit 130/143, and kill -9 at any moment leaves a checkpoint that resumes bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, tiny_spec

from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.errors import Interrupted
from pyrovae.pipeline import build, train_model
from pyrovae.train import fit
from pyrovae.train.rundir import CHECKPOINT, load_checkpoint

OVERRIDES = ("train.epochs=40", "train.batch_size=16", "train.kl_warmup_epochs=3")
"""19 steps an epoch on the 300 tiny digits, so a stop lands inside an epoch."""


def _spec():
    return tiny_spec(*OVERRIDES)


def _same_run(a_state, b_state) -> None:
    assert [r[:-1] for r in a_state.history] == [r[:-1] for r in b_state.history]  # not seconds
    for key, value in a_state.model.items():
        assert torch.equal(value, b_state.model[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train_model(_spec(), tmp_path_factory.mktemp("full") / "run", progress=False)


def test_a_stop_inside_an_epoch_resumes_exactly(uninterrupted) -> None:
    spec = _spec()
    data = load_data(spec.data, spec.model.likelihood.name)
    asked = iter(range(10_000))
    stopped = fit(
        build(spec, data.dim),
        data,
        spec.train,
        progress=False,
        should_stop=lambda: next(asked) == 30,
    )
    assert stopped.stop_reason == "interrupted"
    assert (stopped.state.epoch, stopped.state.step) == (1, 12)  # step 31 = epoch 2, step 12
    state = type(stopped.state).from_checkpoint(stopped.state.to_checkpoint())
    resumed = fit(build(spec, data.dim), data, spec.train, progress=False, state=state)
    assert resumed.stop_reason == "epochs"
    _same_run(resumed.state, uninterrupted.fit.state)


def _interrupt_when_checkpointed(run_dir: Path, signum: int) -> threading.Thread:
    """Send ``signum`` to this process once the first checkpoint exists."""

    def send() -> None:
        deadline = time.monotonic() + 60
        while not (run_dir / CHECKPOINT).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_saves_a_checkpoint_and_exits_130(uninterrupted, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--out", str(run_dir), "--quiet", *(f"--set={o}" for o in OVERRIDES)]
    argv += ["--set=model.encoder.hidden=[32]", "--set=model.decoder.hidden=[32]"]
    argv += ["--set=data.limit=300"]
    sender = _interrupt_when_checkpointed(run_dir, signal.SIGINT)
    status = main(argv)
    sender.join()
    err = capsys.readouterr().err
    assert status == 130, err
    assert "stopped by SIGINT" in err and f"pyrovae train --out {run_dir} --resume" in err
    assert err.count("\n") == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert main([*argv, "--resume"]) == 0
    _same_run(load_checkpoint(run_dir).state, uninterrupted.fit.state)


def test_train_model_raises_interrupted_with_where_it_stopped(tmp_path) -> None:
    sender = _interrupt_when_checkpointed(tmp_path / "run", signal.SIGTERM)
    with pytest.raises(Interrupted) as info:
        train_model(_spec(), tmp_path / "run", progress=False)
    sender.join()
    assert info.value.exit_status == 143 and info.value.epoch >= 1
    state = load_checkpoint(tmp_path / "run").state
    assert (state.epoch, state.step) == (info.value.epoch, info.value.step)
    assert not (tmp_path / "run" / "metrics.json").exists()  # not a finished run


TRAIN = [
    sys.executable,
    "-m",
    "pyrovae.cli",
    "train",
    "--quiet",
    *(f"--set={o}" for o in OVERRIDES),
    "--set=model.encoder.hidden=[32]",
    "--set=model.decoder.hidden=[32]",
    "--set=data.limit=300",
    "--set=train.batch_size=16",
]


def _start(run_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [*TRAIN, "--out", str(run_dir)], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (run_dir / CHECKPOINT).exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return process


def test_sigterm_from_outside_exits_143_and_resumes_exactly(uninterrupted, tmp_path) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err
    train_model(_spec(), run_dir, resume=True, progress=False)
    _same_run(load_checkpoint(run_dir).state, uninterrupted.fit.state)


def test_kill_9_at_random_moments_leaves_a_checkpoint_that_resumes_exactly(
    uninterrupted, tmp_path
) -> None:
    rng = random.Random(0)
    for attempt in range(2):
        run_dir = tmp_path / f"run{attempt}"
        process = _start(run_dir)
        time.sleep(rng.uniform(0.0, 1.0))
        process.kill()
        process.communicate(timeout=60)
        checkpoint = load_checkpoint(run_dir)  # readable, whatever the moment
        if checkpoint.state.epoch < 40:
            train_model(_spec(), run_dir, resume=True, progress=False)
        _same_run(load_checkpoint(run_dir).state, uninterrupted.fit.state)
