"""Rows for the label models: which labels M2 keeps, the mixed minibatches, the label
file of the arrays source, and the one-line errors of label specs on unsuitable data."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.data.dataset import binarize
from pyrovae.data.labelled import HIDDEN, hide_labels, label_rows, labelled_mask, split_rows
from pyrovae.errors import SpecError
from pyrovae.pipeline import load_spec_data
from pyrovae.spec import load_spec
from pyrovae.train.batches import MixedBatches, ShuffledBatches, batches_for


def test_labelled_mask_keeps_k_per_class_or_a_share_with_a_seed():
    labels = torch.arange(100) % 4
    mask = labelled_mask(labels, 3, seed=0)
    assert torch.bincount(labels[mask], minlength=4).tolist() == [3, 3, 3, 3]
    assert torch.equal(mask, labelled_mask(labels, 3, seed=0))
    assert not torch.equal(mask, labelled_mask(labels, 3, seed=1))
    assert int(labelled_mask(labels, 0.25, seed=0).sum()) == 25
    with pytest.raises(SpecError, match=r"data\.labelled.*class 0 has 25"):
        labelled_mask(labels, 26, seed=0)


def test_m2_rows_hide_the_unchosen_training_labels_and_the_validation_labels():
    spec = load_spec(None, ["model.kind=m2", "data.labelled=5"])
    data = load_spec_data(spec)
    x, y = split_rows(data.train)
    assert data.classes == 10 and data.dim == 64 and data.train.shape[1] == 65
    assert torch.bincount(y[y != HIDDEN], minlength=10).tolist() == [5] * 10
    assert bool((split_rows(data.validation)[1] == HIDDEN).all())
    assert bool((split_rows(data.test)[1] != HIDDEN).all())
    plain = load_spec_data(load_spec(None))
    torch.testing.assert_close(x, plain.train)
    cvae = load_spec_data(load_spec(None, ["model.kind=cvae"]))
    torch.testing.assert_close(split_rows(cvae.train)[1], plain.train_labels)
    assert torch.equal(split_rows(hide_labels(cvae.test))[1], torch.full((len(cvae.test),), -1))


def test_binarizing_rows_leaves_the_class_column():
    rows = torch.tensor([[0.3, 0.9, 7.0], [0.5, 0.1, HIDDEN]])
    out = binarize(rows, torch.Generator().manual_seed(0), columns=2)
    assert torch.equal(out[:, 2], rows[:, 2]) and set(out[:, :2].unique().tolist()) <= {0.0, 1.0}


def test_mixed_batches_hold_a_fixed_mix_and_cover_the_unlabelled_rows_once():
    labelled, unlabelled = torch.arange(0, 10), torch.arange(10, 110)
    plan = MixedBatches(labelled, unlabelled, 16, labelled_per_batch=4)
    assert plan.n_total == 110 and plan.steps == 9
    batches = list(plan.epoch(torch.Generator().manual_seed(0)))
    assert all(bool((b[:4] < 10).all()) and bool((b[4:] >= 10).all()) for b in batches)
    assert [len(b) for b in batches] == [16] * 8 + [4 + 4]
    assert sorted(torch.cat([b[4:] for b in batches]).tolist()) == list(range(10, 110))
    again = list(plan.epoch(torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    # the share of the data when not given: 10 of 110 in a batch of 22 -> 2
    assert MixedBatches(labelled, unlabelled, 22).labelled_per_batch == 2


def test_the_plan_follows_the_rows():
    rows = torch.zeros(6, 3)
    rows[:, -1] = torch.tensor([0, 1, HIDDEN, HIDDEN, HIDDEN, HIDDEN])
    assert isinstance(batches_for(rows, 2, 4, "cpu"), MixedBatches)
    assert isinstance(batches_for(rows[2:], 2, 4, "cpu"), ShuffledBatches)  # none labelled
    assert isinstance(batches_for(rows, None, 4, "cpu"), ShuffledBatches)  # plain data


def test_arrays_read_labels_from_a_file_of_their_own(tmp_path):
    x = np.random.default_rng(0).random((40, 5))
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.csv").write_text("label\n" + "\n".join(str(i % 3) for i in range(40)))
    spec = load_spec(
        None,
        [
            "data.name=arrays",
            f"data.path={str(tmp_path / 'x.npy')!r}",
            f"data.labels_path={str(tmp_path / 'y.csv')!r}",
            "model.kind=cvae",
            "model.likelihood.name=gaussian",
        ],
    )
    data = load_spec_data(spec)
    assert data.classes == 3 and data.train.shape[1] == 6


def _run(args, capsys):
    code = main(["train", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.kind=m2", "data.name=synthetic", "model.likelihood.name=gaussian"],
            "model.kind: 'm2' uses class labels, but data.name = 'synthetic' has none",
        ),
        (
            ["model.kind=m2", "data.labelled=200"],
            "data.labelled: 200 labels per class, but class 0 has",
        ),
        (["model.kind=vae", "data.labelled=10"], "data.labelled: only the semi-supervised"),
        (["model.kind=m2", "train.objective=iwae"], "train.objective: model.kind = 'm2' sums"),
        (["model.kind=cvae", "model.prior.name=vamp"], "model.prior.name: model.kind = 'cvae'"),
        (["data.labels_path=y.npy"], "data.labels_path: only the arrays source"),
        (["model.kind=m2", "train.labelled_per_batch=128"], "train.labelled_per_batch: leaves"),
    ],
)
def test_label_spec_errors_are_one_line(overrides, message, capsys, tmp_path):
    args = [f"--set={o}" for o in overrides]
    code, err = _run([*args, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _arrays(tmp_path, y: np.ndarray) -> list[str]:
    x = np.random.default_rng(0).random((len(y), 4))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return [
        "--set=data.name=arrays",
        f"--set=data.path={str(tmp_path / 'd.npz')!r}",
        "--set=model.kind=cvae",
        "--set=model.likelihood.name=gaussian",
        "--set=data.test_fraction=0.5",
    ]


def test_a_class_without_training_examples_is_refused(tmp_path, capsys):
    y = np.array([0, 2] * 20)  # class 1 is missing
    code, err = _run([*_arrays(tmp_path, y), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "class 1 has no training example" in err


def test_classes_that_differ_between_splits_are_refused():
    data = load_spec_data(load_spec(None))
    test_labels = data.test_labels.clone()
    test_labels[0] = 10  # digits has classes 0..9 in training
    with pytest.raises(SpecError, match="the test split has classes up to 10"):
        label_rows(replace(data, test_labels=test_labels), "cvae")


def test_label_rows_need_labels_in_every_split():
    data = load_spec_data(load_spec(None))
    with pytest.raises(SpecError, match="class indices >= 0"):
        label_rows(replace(data, test_labels=-data.test_labels - 1), "cvae")
