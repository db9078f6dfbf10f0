"""The run directory: atomic files, safe checkpoints, history and metrics."""

from __future__ import annotations

import json

import pytest
import torch

from pyrovae.errors import UserError
from pyrovae.spec import Spec
from pyrovae.train.rundir import (
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    update_metrics,
    write_atomic,
    write_history,
)
from pyrovae.train.state import EpochRecord, TrainState


def _state() -> TrainState:
    record = EpochRecord(1, -30.5, float("nan"), float("nan"), 1.0, 0.25)
    return TrainState(
        epoch=1,
        model={"w": torch.arange(3.0)},
        optimizer={"state": {}, "param_groups": [{"lr": 0.001, "params": [0]}]},
        rng=torch.get_rng_state(),
        batch_rng=torch.Generator().get_state(),
        history=(record,),
        best_epoch=0,
        best_model=None,
    )


def test_write_atomic_replaces_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    spec = Spec()
    save_checkpoint(tmp_path, spec, 64, _state())
    loaded = load_checkpoint(tmp_path)
    assert loaded.spec == spec and loaded.data_dim == 64
    assert torch.equal(loaded.state.model["w"], torch.arange(3.0))
    assert loaded.state.history[0].epoch == 1
    assert loaded.state.history[0].train_objective_nats == -30.5
    # the file loads with the safe unpickler alone
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path, capsys):
    torch.save({"format": 1, "payload": _Evil()}, tmp_path / "checkpoint.pt", pickle_protocol=2)
    with pytest.raises(UserError, match="cannot be read as a checkpoint"):
        load_checkpoint(tmp_path)
    assert "unpickled" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no checkpoint"), (b"garbage", "cannot be read"), ({"format": 99}, "not a pyrovae")],
)
def test_bad_checkpoints_give_user_errors(tmp_path, content, message):
    if isinstance(content, bytes):
        (tmp_path / "checkpoint.pt").write_bytes(content)
    elif content is not None:
        torch.save(content, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match=message):
        load_checkpoint(tmp_path)


def test_history_csv(tmp_path):
    write_history(tmp_path, _state().history)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == (
        "epoch,train_objective_nats,validation_elbo_nats,validation_bound_nats,beta,seconds"
    )
    assert lines[1] == "1,-30.5,nan,nan,1,0.25"


def test_metrics_merge_and_non_finite_become_null(tmp_path):
    assert read_metrics(tmp_path) == {}
    update_metrics(tmp_path, {"a": 1.5, "b": float("inf")})
    merged = update_metrics(tmp_path, {"c": 2})
    assert merged == {"a": 1.5, "b": None, "c": 2}
    assert json.loads((tmp_path / "metrics.json").read_text()) == merged
