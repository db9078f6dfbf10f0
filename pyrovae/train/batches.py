"""How an epoch's minibatches are drawn: the batching seam of the loop.

A :class:`Batches` plan yields, for each step of an epoch, the indices of the
examples in that step's minibatch, from a generator the loop owns (and saves in
every checkpoint, so a resumed run draws the same batches). :class:`ShuffledBatches`
is one seeded permutation per epoch cut into consecutive batches; a distributed run
gives each rank its share of the same permutation through another plan, with
:attr:`Batches.n_total` still the whole data set so the ELBO's plate scales alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import torch

__all__ = ["Batches", "ShuffledBatches"]


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
