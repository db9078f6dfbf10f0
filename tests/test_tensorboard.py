"""TensorBoard logging (``train.tensorboard``): the event files read back with
TensorBoard's own reader hold what history.csv holds, and more; training is unchanged."""

from __future__ import annotations

import csv
import math
import sys

import pytest
import torch

from pyrovae.cli import main
from pyrovae.pipeline import train_model
from pyrovae.report.tensorboard import TENSORBOARD_DIR
from pyrovae.train.rundir import load_checkpoint
from tests.helpers import tiny_spec

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard package (pip install 'pyrovae[tensorboard]') is not installed",
)

HISTORY_TAGS = (
    "train_objective_nats",
    "validation_elbo_nats",
    "validation_bound_nats",
    "beta",
    "seconds",
)


def _events(run_dir):
    accumulator = event_accumulator.EventAccumulator(
        str(run_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0}
    )
    accumulator.Reload()
    return accumulator


def _history(run_dir) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


def _series(events, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _spec(*overrides: str):
    return tiny_spec("train.tensorboard=true", "train.kl_warmup_epochs=2", *overrides)


def test_logged_scalars_equal_history_csv(tmp_path):
    spec = _spec("train.epochs=3", "train.lr=0.002")
    train_model(spec, tmp_path, progress=False)
    events = _events(tmp_path)
    rows = _history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for tag in HISTORY_TAGS:
        logged = _series(events, f"history/{tag}")
        assert [step for step, _ in logged] == [1, 2, 3], tag
        for (_, value), row in zip(logged, rows, strict=True):
            # history.csv keeps 6 significant digits (off by up to half a unit in the 6th,
            # 5e-6 relative for a leading 1), the event file float32 (6e-8 relative)
            assert value == pytest.approx(float(row[tag]), rel=5.1e-6, abs=1e-12), tag
    assert [v for _, v in _series(events, "history/beta")] == pytest.approx([0.5, 1.0, 1.0])
    assert [v for _, v in _series(events, "train/lr")] == pytest.approx([0.002] * 3)


def test_elbo_parts_kl_per_dimension_and_images(tmp_path):
    spec = _spec("train.epochs=2", "model.latent_dim=3")
    train_model(spec, tmp_path, progress=False)
    events = _events(tmp_path)
    tags = events.Tags()
    assert sorted(t for t in tags["scalars"] if t.startswith("kl_per_dimension/")) == [
        "kl_per_dimension/z1",
        "kl_per_dimension/z2",
        "kl_per_dimension/z3",
    ]
    for step in (0, 1):
        per_dim = sum(events.Scalars(f"kl_per_dimension/z{d}")[step].value for d in (1, 2, 3))
        kl = events.Scalars("validation/kl_nats")[step].value
        assert per_dim == pytest.approx(kl, rel=1e-5)  # N(0, I): the KL factorises
        assert kl > 0
        recon = events.Scalars("validation/reconstruction_nats")[step].value
        # one draw of z each: the ELBO parts are near the validation ELBO, not equal to it
        elbo = events.Scalars("history/validation_elbo_nats")[step].value
        assert recon < 0 and abs(recon - kl - elbo) < 0.1 * abs(elbo)
    assert sorted(tags["images"]) == ["images/reconstructions", "images/samples"]
    picture = events.Images("images/samples")[-1]
    # two rows of eight 8x8 digits with one-pixel gutters
    assert (picture.height, picture.width) == (2 * 8 + 1, 8 * 8 + 7)


def test_training_is_the_same_with_and_without_tensorboard(tmp_path):
    spec = _spec("train.epochs=2")
    with_board = train_model(spec, tmp_path / "on", progress=False)
    off = tiny_spec("train.tensorboard=false", "train.kl_warmup_epochs=2", "train.epochs=2")
    without = train_model(off, tmp_path / "off", progress=False)
    assert not (tmp_path / "off" / TENSORBOARD_DIR).exists()
    a = load_checkpoint(tmp_path / "on").state
    b = load_checkpoint(tmp_path / "off").state
    for key, value in a.model.items():
        assert torch.equal(value, b.model[key]), key
    assert torch.equal(a.rng, b.rng)
    assert with_board.metrics["test_elbo_nats"] == without.metrics["test_elbo_nats"]


def test_resume_logs_every_epoch_once(tmp_path):
    train_model(_spec("train.epochs=2"), tmp_path, progress=False)
    train_model(_spec("train.epochs=4"), tmp_path, resume=True, progress=False)
    events = _events(tmp_path)
    logged = _series(events, "history/validation_elbo_nats")
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    rows = _history(tmp_path)
    for (_, value), row in zip(logged, rows, strict=True):
        assert value == pytest.approx(float(row["validation_elbo_nats"]), rel=2e-6)


def test_an_autoencoder_logs_its_history_and_images(tmp_path):
    spec = tiny_spec("train.tensorboard=true", "model.kind=ae")
    train_model(spec, tmp_path, progress=False)
    tags = _events(tmp_path).Tags()
    assert "history/train_objective_nats" in tags["scalars"]
    assert not any(t.startswith(("kl_per_dimension/", "validation/")) for t in tags["scalars"])
    assert "images/reconstructions" in tags["images"]


def test_cli_flag_and_missing_package(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    tiny = ["--set", "data.limit=200", "--set", "train.epochs=1", "--quiet"]
    assert main(["train", "--out", str(out), "--tensorboard", *tiny]) == 0
    assert any((out / TENSORBOARD_DIR).iterdir())
    assert "tensorboard = true" in (out / "spec.toml").read_text()
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    status = main(["train", "--out", str(tmp_path / "none"), "--tensorboard", *tiny])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.splitlines() == [
        "pyrovae train: error: train.tensorboard = true needs the tensorboard package: "
        'pip install "pyrovae[tensorboard]" (or pip install tensorboard)'
    ]
    assert not (tmp_path / "none" / "checkpoint.pt").exists()
    assert math.isfinite(float(_history(out)[0]["validation_elbo_nats"]))
