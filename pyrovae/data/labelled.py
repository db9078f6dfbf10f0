"""Rows for the models that use labels: the data with their class as a last column.

A label model (``model.kind = "cvae"`` or ``"m2"``) trains, validates and is evaluated
on rows ``(n, D + 1)``: the D data values, then the class index as a float (exact for
any realistic number of classes), or :data:`HIDDEN` where the label is not given to
the model (M2's unlabelled examples). One tensor per split keeps every part that moves
rows around (minibatches, devices, processes, checkpoints, importance sampling) the
same for every model; the models split the rows again (:func:`split_rows`).

:func:`label_rows` builds them from a :class:`~pyrovae.data.dataset.Dataset` and checks
what a label model needs of the data; :func:`labelled_mask` chooses, with a seed, which
training examples keep their label (``data.labelled``).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from pyrovae.data.dataset import Dataset
from pyrovae.errors import SpecError
from pyrovae.spec import keeps_every_label

__all__ = ["HIDDEN", "hide_labels", "label_rows", "labelled_mask", "split_rows", "with_labels"]

HIDDEN = -1
"""The class column's value for an example whose label the model does not see."""


def with_labels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rows ``(n, D + 1)`` from data ``(n, D)`` and class indices ``(n,)`` (or HIDDEN)."""
    return torch.cat([x, y.to(x.dtype).unsqueeze(-1)], dim=-1)


def split_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data ``(..., D)`` and class indices ``(...)`` (int64, HIDDEN where hidden) of rows
    ``(..., D + 1)``."""
    return rows[..., :-1], rows[..., -1].round().long()


def hide_labels(rows: torch.Tensor) -> torch.Tensor:
    """The same rows with every label hidden: ``(n, D + 1) -> (n, D + 1)``."""
    return with_labels(rows[..., :-1], torch.full(rows.shape[:-1], HIDDEN, device=rows.device))


def labelled_mask(labels: torch.Tensor, labelled: int | float, seed: int) -> torch.Tensor:
    """Which training examples keep their label, chosen by a permutation seeded with ``seed``.

    Parameters
    ----------
    labels : Tensor
        ``(N,)`` class indices of the training split.
    labelled : int or float
        An integer k: the first k examples of each class in the permutation (every class
        must have k); a float in (0, 1]: that share of the split, ``round(share * N)``
        examples (1.0: all).
    seed : int

    Returns
    -------
    Tensor
        ``(N,)`` bool.

    Raises
    ------
    SpecError
        ``data.labelled``: a count that some class (named) cannot fill.
    """
    n = labels.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(n, dtype=torch.bool)
    if isinstance(labelled, float):
        mask[order[: max(1, round(labelled * n))]] = True
        return mask
    shuffled = labels[order]
    for c in range(int(labels.max()) + 1):
        members = order[shuffled == c]
        if members.shape[0] < labelled:
            raise SpecError(
                "data.labelled",
                f"{labelled} labels per class, but class {c} has {members.shape[0]} training "
                "examples; use at most that many, or a share",
            )
        mask[members[:labelled]] = True
    return mask


def _classes(data: Dataset, kind: str) -> int:
    """The number of classes C of the splits' labels, checked to agree."""
    splits = {
        "train": data.train_labels,
        "validation": data.validation_labels,
        "test": data.test_labels,
    }
    if data.train_labels is None:
        raise SpecError(
            "model.kind",
            f"'{kind}' uses class labels, but data.name = '{data.name}' has none; use "
            "digits, mnist, fashion_mnist, kmnist, cifar10, an image_folder of class folders, "
            "or arrays with labels (a .npz with 'y', or data.labels_path)",
        )
    counts = {}
    for name, y in splits.items():
        if y is not None and y.shape[0]:
            if int(y.min()) < 0:
                raise SpecError(
                    "model.kind",
                    f"'{kind}' needs class indices >= 0; the {name} split has {int(y.min())}",
                )
            counts[name] = int(y.max()) + 1
    classes = counts["train"]
    present = torch.bincount(data.train_labels, minlength=classes)
    if bool((present == 0).any()):
        missing = int((present == 0).nonzero()[0])
        raise SpecError(
            "model.kind",
            f"'{kind}' learns one class per label, but class {missing} has no training "
            "example; relabel the classes 0..C-1 without gaps",
        )
    for name, count in counts.items():
        if count > classes:
            raise SpecError(
                "model.kind",
                f"the {name} split has classes up to {count - 1}, the training split up to "
                f"{classes - 1}; '{kind}' needs the same classes in every split",
            )
    return classes


def label_rows(data: Dataset, kind: str, labelled: int | float = 1.0, seed: int = 0) -> Dataset:
    """The dataset as a label model's rows: every split ``(n, D + 1)``.

    Parameters
    ----------
    data : Dataset
        Plain data with labels in every split.
    kind : str
        The model kind (named in errors).
    labelled : int or float
        Which training labels the model sees (:func:`labelled_mask`); the others are
        HIDDEN. Test rows keep their labels; so do validation rows, except for M2,
        whose validation ELBO is U(x), the bound on log p(x) with the class hidden.
    seed : int
        Seed of the choice (``data.seed``).

    Raises
    ------
    SpecError
        Data without labels, classes without training examples or that differ between
        splits, or a per-class count larger than a class.
    """
    classes = _classes(data, kind)
    assert data.train_labels is not None  # _classes refuses data without labels
    if not isinstance(data.train, torch.Tensor):
        raise SpecError("data.memory_map", f"model.kind = '{kind}' needs its rows in memory")
    train_labels = data.train_labels.clone()
    if not keeps_every_label(labelled):
        train_labels[~labelled_mask(train_labels, labelled, seed)] = HIDDEN

    def rows(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return with_labels(x, y if y is not None else torch.full((x.shape[0],), HIDDEN))

    validation = rows(data.validation, data.validation_labels)
    return replace(
        data,
        train=rows(data.train, train_labels),
        validation=hide_labels(validation) if kind == "m2" else validation,
        test=rows(data.test, data.test_labels),
        classes=classes,
    )
