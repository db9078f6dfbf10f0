"""Training, evaluation and checkpoints over two processes (torch.distributed, gloo, CPU).

One spawned group of two processes (one thread each) runs every check of
``tests/ddp_checks.py`` once per module; each test compares what the processes saved with
one process's computation. The subprocess tests at the end start ``python -m pyrovae``
processes themselves: a killed process, and a user error in one of them.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ddp_checks as checks
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.evaluate.likelihood import evaluate
from pyrovae.pipeline import build, train_model
from pyrovae.train.batches import ShuffledBatches
from pyrovae.train.process import SingleProcess
from pyrovae.train.ranks import ShardedBatches, for_rank, rank_seed, shard_rows, with_ranks
from pyrovae.train.state import TrainState

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    checks.spawn(out)
    return out


def found(group: Path, check: str, rank: int):
    return torch.load(group / f"{check}-rank{rank}.pt", weights_only=False)


# --- pure pieces, no processes ------------------------------------------------------------


def test_shares_cover_each_minibatch_once_and_keep_the_total() -> None:
    inner = ShuffledBatches(10, 7)
    shares = [
        list(ShardedBatches(inner, r, 3).epoch(torch.Generator().manual_seed(0))) for r in range(3)
    ]
    whole = list(inner.epoch(torch.Generator().manual_seed(0)))
    for step, rows in enumerate(whole):
        assert torch.equal(torch.cat([s[step] for s in shares]), rows)
    assert [len(s[0]) for s in shares] == [3, 2, 2]
    assert ShardedBatches(inner, 1, 3).n_total == 10 and ShardedBatches(inner, 1, 3).steps == 2
    assert rank_seed(5, 0) == 5 and rank_seed(5, 1) != rank_seed(5, 2)
    assert shard_rows(torch.arange(3), 1, 4).numel() == 1
    with pytest.raises(ValueError):
        ShardedBatches(inner, 3, 3)


def _two_rank_state() -> TrainState:
    shares = [
        (torch.tensor([0, 1, 2]), torch.tensor([6, 7])),
        (torch.tensor([3, 4]), torch.tensor([8])),
    ]
    parts = [
        {"rng": torch.Generator().manual_seed(r).get_state(), "epoch_batches": b, "epoch_total": t}
        for r, (b, t) in enumerate(zip(shares, (10.0, 20.0), strict=True))
    ]
    base = TrainState(
        1,
        {},
        {},
        parts[0]["rng"],
        torch.Generator().get_state(),
        (),
        0,
        None,
        step=1,
        epoch_batches=shares[0],
        epoch_total=10.0,
    )
    return with_ranks(base, parts)


def test_each_rank_resumes_its_own_part_or_a_recut_one_at_another_world_size() -> None:
    state = _two_rank_state()
    own = for_rank(state, 1, 2, seed=0)
    assert torch.equal(own.rng, state.ranks[1]["rng"]) and own.epoch_total == 20.0
    assert [b.tolist() for b in own.epoch_batches] == [[3, 4], [8]] and own.ranks == ()
    alone = for_rank(state, 0, 1, seed=0)
    assert [b.tolist() for b in alone.epoch_batches] == [[0, 1, 2, 3, 4], [6, 7, 8]]
    assert alone.epoch_total == 15.0  # the mean, so the agreed objective stays the same
    assert not torch.equal(alone.rng, state.ranks[0]["rng"])  # a fresh stream
    thirds = [for_rank(state, r, 3, seed=0) for r in range(3)]
    assert [[b.tolist() for b in t.epoch_batches] for t in thirds] == [
        [[0, 1], [6]],
        [[2, 3], [7]],
        [[4], [8]],
    ]
    assert len({bytes(t.rng.numpy()) for t in thirds}) == 3
    restored = TrainState.from_checkpoint(state.to_checkpoint())
    assert [b.tolist() for b in restored.ranks[1]["epoch_batches"]] == [[3, 4], [8]]


# --- the spawned group ----------------------------------------------------------------------


@pytest.mark.parametrize("case", list(checks.GRADIENT_CASES))
def test_every_rank_has_the_gradient_of_the_whole_minibatch(group: Path, case: str) -> None:
    reference = checks.case_gradients(case, SingleProcess())
    for rank in (0, 1):
        grads = found(group, "gradients", rank)[case]
        assert grads.keys() == reference.keys()
        for name, expected in reference.items():
            got = grads[name]
            if expected is None:  # unused in the step: no gradient in any process
                assert got is None, name
                continue
            assert got is not None, name
            # float32 sums in another order: agreement to 1e-6 of the tensor's largest value
            scale = float(expected.abs().max())
            assert float((got - expected).abs().max()) <= 1e-6 * scale, name
    if case == "vamp_beta0":
        assert reference["pseudo_inputs"] is None


def test_autoencoder_on_two_half_batches_follows_one_process(group: Path) -> None:
    model, result = checks.fit_result(checks.spec_for(*checks.AE_SPEC), SingleProcess())
    for rank in (0, 1):
        got = found(group, "autoencoder", rank)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(got["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
        expected = [tuple(r)[:3] for r in result.history]
        for (e, objective, val), (e2, objective2, val2) in zip(
            got["history"], expected, strict=True
        ):
            assert e == e2
            assert objective == pytest.approx(objective2, rel=1e-5)
            assert val == pytest.approx(val2, rel=1e-5)


def test_every_model_kind_trains_with_the_same_weights_in_every_rank(group: Path) -> None:
    rank0, rank1 = (
        found(group, "autoencoder", 0)["others"],
        found(group, "autoencoder", 1)["others"],
    )
    assert set(rank0) == set(checks.OTHER_KINDS)
    for kind, (weights, objective) in rank0.items():
        assert math.isfinite(objective), kind
        assert objective == rank1[kind][1], kind  # the agreed figure
        for name, value in weights.items():
            assert torch.equal(value, rank1[kind][0][name]), (kind, name)


def test_a_memory_mapped_file_trains_in_two_processes_as_in_memory(group: Path) -> None:
    rank0, rank1 = found(group, "memory_map", 0), found(group, "memory_map", 1)
    for got in (rank0, rank1):
        (mapped, mapped_history), (loaded, loaded_history) = got["memory_mapped"], got["in_memory"]
        assert mapped_history == loaded_history
        for name, value in loaded.items():
            assert torch.equal(mapped[name], value), name
            assert torch.equal(rank0["memory_mapped"][0][name], value), name  # every rank


def test_every_rank_stops_at_the_same_step(group: Path) -> None:
    rank0, rank1 = found(group, "stops", 0), found(group, "stops", 1)
    assert rank0 == rank1
    assert rank0["nan"] == {"error": "NonFiniteLossError", "epoch": 1, "step": 1}
    assert rank0["time_limit"]["reason"] == "time_limit" and rank0["time_limit"]["epochs"] == 1
    stopped = rank0["early_stopping"]
    assert stopped["reason"] == "early_stopping" and stopped["epochs"] < 6
    assert rank0["signal"]["reason"] == "interrupted"
    assert (rank0["signal"]["epochs"], rank0["signal"]["step"]) == (0, 3)


def test_resume_at_the_same_world_size_repeats_the_run_exactly(group: Path) -> None:
    for rank in (0, 1):
        got = found(group, "resume", rank)
        assert got["stopped_at"] == ("interrupted", 1, 1, 2)
        for key in ("whole", "run_full"):
            other = "resumed" if key == "whole" else "run_resumed"
            for name, value in got[key].items():
                assert torch.equal(value, got[other][name]), (key, name)
    rank0, rank1 = found(group, "resume", 0), found(group, "resume", 1)
    for name, value in rank0["whole"].items():
        assert torch.equal(value, rank1["whole"][name]), name
    assert "checkpoint.pt" in rank0["written"] and rank0["metrics"]["epochs"] == 3
    assert rank1["metrics"] == {}


def test_a_two_process_run_continues_in_one_process(group: Path) -> None:
    spec = checks.spec_for(*checks.RESUME_SPEC[:-1], "train.epochs=5")
    outcome = train_model(spec, group / "resume" / "full", resume=True, progress=False)
    assert outcome.fit.epochs == 5 and len(outcome.fit.history) == 5
    assert all(math.isfinite(r.train_objective_nats) for r in outcome.fit.history)


def test_sharded_evaluation_equals_one_process(group: Path) -> None:
    spec = checks.spec_for()
    data = load_data(spec.data, spec.model.likelihood.name)
    model = build(spec, data.dim).eval()
    single = evaluate(model, data.test[:70], particles=400, seed=3)
    for rank in (0, 1):
        got = found(group, "evaluation", rank)
        assert got["log_likelihood"] == pytest.approx(single.log_likelihood, abs=1e-6)
        assert got["se"] == pytest.approx(single.log_likelihood_se, abs=1e-9)
        assert got["elbo"] == pytest.approx(single.elbo, abs=1e-6)


def test_a_user_error_in_one_process_stops_every_process(group: Path) -> None:
    assert found(group, "refusal", 1)["error"] == "no data here"
    assert found(group, "refusal", 0)["error"] == "process 1 of 2 stopped: no data here"


# --- processes of the command line ----------------------------------------------------------


def _start_pair(out: Path, timeout: float) -> list[subprocess.Popen]:
    port = checks.free_port()
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYROVAE_DIST_TIMEOUT": str(timeout),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [sys.executable, "-m", "pyrovae", "train", "--out", str(out), "--quiet"]
        for s in (
            "train.epochs=100000",
            "data.limit=300",
            "train.threads=1",
            "train.batch_size=32",
            "model.encoder.hidden=[16]",
            "model.decoder.hidden=[16]",
        ):
            argv += ["--set", s]
        procs.append(
            subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


def _lose_process_1(tmp_path: Path, how: signal.Signals, timeout: float) -> tuple[int, str]:
    """Start two training processes, take process 1 away with ``how`` once the first
    checkpoint is written, and return process 0's exit status and stderr (a process 0
    that has not exited well after the timeout fails the test instead of hanging it)."""
    out = tmp_path / "run"
    procs = _start_pair(out, timeout)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None, "no checkpoint"
            time.sleep(0.05)
        procs[1].send_signal(how)
        _, err = procs[0].communicate(timeout=timeout + 60)
        return procs[0].returncode, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("pyrovae train:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_killed_process_makes_the_other_exit_with_an_error(tmp_path: Path) -> None:
    status, stderr = _lose_process_1(tmp_path, signal.SIGKILL, timeout=30)
    assert status == 1
    line = _error_line(stderr)
    assert "process 0 of 2: the process group failed" in line


@pytest.mark.slow
def test_a_hung_process_makes_the_other_exit_after_the_timeout(tmp_path: Path) -> None:
    status, stderr = _lose_process_1(tmp_path, signal.SIGSTOP, timeout=5)
    assert status == 1
    assert "did not answer within 5 s" in _error_line(stderr)  # the timeout ended it
