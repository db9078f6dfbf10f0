"""Where a model and its data live during training: the placement seam of the loop.

:func:`~pyrovae.train.loop.fit` asks a :class:`Placement` for its device and to move
the model and the data there. :class:`LocalPlacement` is one device of this process
(``train.device``); a distributed run puts each rank on its own device through
another placement, without touching the loop.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, cast

import torch
from torch import nn

from pyrovae.data.disk import Rows
from pyrovae.errors import SpecError

__all__ = ["LocalPlacement", "Placement", "resolve_device"]

_Rows = TypeVar("_Rows", bound=Rows)
"""Rows in memory or a row store: placed, each stays what it was."""


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "train.device", "'cuda' was asked for but this torch has no usable GPU; use 'cpu'"
        )
    return torch.device(name)


class Placement(Protocol):
    """Where training runs."""

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters, the data and the batch generator."""

    def place_model(self, model: nn.Module) -> None:
        """Move ``model`` (in place) to :attr:`device`."""

    def place_data(self, x: _Rows) -> _Rows:
        """``x`` ``(N, D)`` on :attr:`device` (a row store puts the rows it reads there)."""


class LocalPlacement:
    """Everything on one device of this process: ``"cpu"``, ``"cuda"`` or ``"auto"``."""

    def __init__(self, device: str = "cpu") -> None:
        self._device = resolve_device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    def place_model(self, model: nn.Module) -> None:
        model.to(self._device)

    def place_data(self, x: _Rows) -> _Rows:
        return cast(_Rows, x.to(self._device))
