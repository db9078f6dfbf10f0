"""What differs between the processes of one training run, and how a checkpoint keeps it.

Every process of a data-parallel run holds the same weights, optimizer state and
minibatch plan (one seeded permutation per epoch, drawn by every process from the same
generator). Three things are its own:

- its *share* of every minibatch: the step's indices cut into ``world_size``
  contiguous pieces, piece ``rank`` (:func:`shard_rows`, :class:`ShardedBatches`, which
  wraps any :class:`~pyrovae.train.batches.Batches` plan);
- its *sampling stream* (torch's global random state, which draws the latents and the
  denoising corruption), seeded with :func:`rank_seed`: ``train.seed`` itself for rank
  0, a hash of the seed and the rank for the others;
- its running sum of the epoch's losses.

A checkpoint of a run of several processes keeps the three for every rank
(:attr:`~pyrovae.train.state.TrainState.ranks`, filled by :func:`with_ranks`).
:func:`for_rank` hands each process its own on resuming: at the same world size exactly
those, so the resumed run repeats the uninterrupted one bit for bit; at another world
size the epoch's remaining minibatches are put back together from the shares and cut
anew, and each process starts a fresh sampling stream (seeded from the seed, its rank,
the world size and where the run stopped), so the run continues correctly but does not
repeat the draws it would have made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from pyrovae.train.batches import Batches
from pyrovae.train.state import TrainState

__all__ = ["ShardedBatches", "for_rank", "own_part", "rank_seed", "shard_rows", "with_ranks"]


def rank_seed(seed: int, rank: int, *context: int) -> int:
    """The seed of process ``rank``'s sampling stream: ``seed`` for rank 0 without
    ``context`` (so a one-process group samples as a single process), else 63 bits of
    SHA-256 of the seed, the rank and the ``context`` numbers."""
    if rank == 0 and not context:
        return seed
    text = ":".join(str(v) for v in ("pyrovae", seed, rank, *context))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def shard_rows(rows: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Piece ``rank`` of ``rows`` ``(B,)`` cut into ``world_size`` contiguous pieces whose
    sizes differ by at most one (the first ``B % world_size`` one larger): ``(B_rank,)``."""
    return rows.tensor_split(world_size)[rank]


class ShardedBatches:
    """Process ``rank``'s share of every minibatch of ``plan``.

    Every process draws ``plan``'s epoch from the same generator (so all consume it
    alike and agree on the next epoch's permutation) and keeps its piece of each step.
    :attr:`n_total` stays ``plan``'s, the whole data set, so the objective's plate
    scales each share to the full data like a single process scales its minibatch.
    """

    def __init__(self, plan: Batches, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.plan = plan
        self.rank = rank
        self.world_size = world_size

    @property
    def n_total(self) -> int:
        return self.plan.n_total

    @property
    def steps(self) -> int:
        return self.plan.steps

    def epoch(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        for rows in self.plan.epoch(generator):
            yield shard_rows(rows, self.rank, self.world_size)


def own_part(state: TrainState) -> dict[str, Any]:
    """What of ``state`` is this process's own: its random state, its shares of the
    epoch's minibatches and its running loss sum."""
    return {
        "rng": state.rng,
        "epoch_batches": tuple(state.epoch_batches),
        "epoch_total": state.epoch_total,
    }


def with_ranks(state: TrainState, parts: list[dict[str, Any]]) -> TrainState:
    """``state`` carrying every process's :func:`own_part`, in rank order (for a
    checkpoint that each process resumes from)."""
    return replace(state, ranks=tuple(parts))


def for_rank(state: TrainState, rank: int, world_size: int, seed: int) -> TrainState:
    """The state process ``rank`` of ``world_size`` resumes from.

    Parameters
    ----------
    state : TrainState
        As saved: by one process (``ranks`` empty) or by a group (``ranks`` full).
    rank, world_size : int
        The resuming process.
    seed : int
        ``train.seed``; seeds the fresh sampling streams at another world size.

    Returns
    -------
    TrainState
        With this process's ``rng``, ``epoch_batches`` and ``epoch_total`` and no
        ``ranks``. At the saved world size these are the saved ones; at another, the
        mid-epoch minibatches re-cut, the mean running sum, and a fresh stream.
    """
    parts = list(state.ranks) or [own_part(state)]
    if len(parts) == world_size:
        part = parts[rank]
    else:
        steps = zip(*(p["epoch_batches"] for p in parts), strict=True)
        whole = [torch.cat(shares) for shares in steps]
        fresh = rank_seed(seed, rank, world_size, state.epoch, state.step)
        part = {
            "rng": torch.Generator().manual_seed(fresh).get_state(),
            "epoch_batches": tuple(shard_rows(b, rank, world_size) for b in whole),
            "epoch_total": sum(float(p["epoch_total"]) for p in parts) / len(parts),
        }
    return replace(
        state,
        rng=part["rng"],
        epoch_batches=tuple(part["epoch_batches"]),
        epoch_total=float(part["epoch_total"]),
        ranks=(),
    )
