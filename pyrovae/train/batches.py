"""How an epoch's minibatches are drawn: the batching seam of the loop.

A :class:`Batches` plan yields, for each step of an epoch, the indices of the
examples in that step's minibatch, from a generator the loop owns (and saves in
every checkpoint, so a resumed run draws the same batches). :class:`ShuffledBatches`
is one seeded permutation per epoch cut into consecutive batches; :class:`MixedBatches`
gives a semi-supervised model the same share of labelled examples in every batch
(:func:`batches_for` picks the plan for a data set); a distributed run
gives each rank its share of the same permutation through another plan, with
:attr:`Batches.n_total` still the whole data set so the ELBO's plate scales alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import torch

from pyrovae.data.disk import Rows

__all__ = ["Batches", "MixedBatches", "ShuffledBatches", "batches_for"]


class Batches(Protocol):
    """The minibatches of one epoch."""

    @property
    def n_total(self) -> int:
        """Examples the objective's data plate stands for (the whole training split)."""

    @property
    def steps(self) -> int:
        """Optimisation steps per epoch."""

    def epoch(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Index tensors ``(B,)`` into the training data, one per step."""


class ShuffledBatches:
    """A fresh permutation of ``n`` examples per epoch, cut into batches of ``batch_size``
    (the last one smaller when ``batch_size`` does not divide ``n``)."""

    def __init__(self, n: int, batch_size: int, device: torch.device | str = "cpu") -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got {n} and {batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.device = torch.device(device)

    @property
    def n_total(self) -> int:
        return self.n

    @property
    def steps(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        perm = torch.randperm(self.n, generator=generator, device=self.device)
        for step in range(self.steps):
            yield perm[step * self.batch_size : (step + 1) * self.batch_size]


class MixedBatches:
    """Batches with a fixed mix: ``b_l`` labelled and ``batch_size - b_l`` unlabelled rows.

    ``b_l`` is ``labelled_per_batch`` when given, else ``round(batch_size * N_l / N)``
    (at least 1, and at most ``batch_size - 1``), the labelled share of the data set. An
    epoch is one pass over the unlabelled rows in a fresh permutation; the labelled rows
    are drawn from permutations of their own, one after another (so each is seen many
    times an epoch when they are few). Each batch lists its labelled rows first.

    Parameters
    ----------
    labelled, unlabelled : Tensor
        ``(N_l,)`` and ``(N_u,)`` row indices into the training data, both non-empty.
    batch_size : int
        At least 2.
    labelled_per_batch : int
        ``b_l``; 0 for the labelled share.
    """

    def __init__(
        self,
        labelled: torch.Tensor,
        unlabelled: torch.Tensor,
        batch_size: int,
        device: torch.device | str = "cpu",
        labelled_per_batch: int = 0,
    ) -> None:
        n_l, n_u = labelled.shape[0], unlabelled.shape[0]
        if n_l < 1 or n_u < 1 or batch_size < 2:
            raise ValueError(
                f"need labelled and unlabelled rows and batch_size >= 2, got {n_l}, {n_u} "
                f"and {batch_size}"
            )
        self.device = torch.device(device)
        self.labelled = labelled.to(self.device)
        self.unlabelled = unlabelled.to(self.device)
        share = labelled_per_batch or round(batch_size * n_l / (n_l + n_u))
        self.labelled_per_batch = min(max(1, share), batch_size - 1)
        self.unlabelled_per_batch = batch_size - self.labelled_per_batch

    @property
    def n_total(self) -> int:
        return self.labelled.shape[0] + self.unlabelled.shape[0]

    @property
    def steps(self) -> int:
        return math.ceil(self.unlabelled.shape[0] / self.unlabelled_per_batch)

    def epoch(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        n_l, b_l, b_u = self.labelled.shape[0], self.labelled_per_batch, self.unlabelled_per_batch
        order_u = self.unlabelled[
            torch.randperm(self.unlabelled.shape[0], generator=generator, device=self.device)
        ]
        passes = math.ceil(self.steps * b_l / n_l)
        order_l = torch.cat(
            [
                self.labelled[torch.randperm(n_l, generator=generator, device=self.device)]
                for _ in range(passes)
            ]
        )
        for step in range(self.steps):
            labelled = order_l[step * b_l : (step + 1) * b_l]
            yield torch.cat([labelled, order_u[step * b_u : (step + 1) * b_u]])


def batches_for(
    x_train: Rows,
    classes: int | None,
    batch_size: int,
    device: torch.device | str,
    labelled_per_batch: int = 0,
) -> Batches:
    """The plan for training rows ``(N, D)`` or, with ``classes``, a label model's rows
    ``(N, D + 1)``: :class:`MixedBatches` when some labels are hidden and some given (and
    a batch can hold both), else :class:`ShuffledBatches` (always for a row store, which
    holds no label column)."""
    if classes is not None and batch_size >= 2 and isinstance(x_train, torch.Tensor):
        hidden = x_train[:, -1] < 0
        if bool(hidden.any()) and not bool(hidden.all()):
            known = (~hidden).nonzero().squeeze(-1)
            unknown = hidden.nonzero().squeeze(-1)
            return MixedBatches(known, unknown, batch_size, device, labelled_per_batch)
    return ShuffledBatches(x_train.shape[0], batch_size, device)
