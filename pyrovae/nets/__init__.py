"""Networks by kind: the encoder and decoder a :class:`~pyrovae.spec.NetworkSpec` declares.

:data:`NETWORKS` maps each ``kind`` to its two builders, one for an encoder (data in) and
one for a decoder (data out); :func:`build_encoder` and :func:`build_decoder` pick them.
Every network maps flat rows ``(..., in_dim) -> (..., out_dim)``; a kind that needs the
images' shape (``conv``) gets it as ``image`` ``(C, H, W)``. A new kind of network is a
new module here with its builders, one line in :data:`NETWORKS`, and its name in
:data:`pyrovae.spec.NETWORK_KINDS` (a test checks that the two list the same kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from torch import nn

from pyrovae.nets.classes import with_class
from pyrovae.nets.conv import conv_decoder, conv_encoder
from pyrovae.nets.mlp import ACTIVATIONS, mlp
from pyrovae.spec import NetworkSpec

__all__ = [
    "ACTIVATIONS",
    "NETWORKS",
    "NetworkBuilder",
    "NetworkKind",
    "build_decoder",
    "build_encoder",
    "with_class",
]

NetworkBuilder = Callable[[int, int, NetworkSpec, Sequence[int] | None, str], nn.Module]
"""``(in_dim, out_dim, spec, image, field) -> module`` mapping ``(..., in_dim)`` to
``(..., out_dim)``; ``image`` is the data's ``(C, H, W)`` or None, ``field`` the spec path
that errors name (e.g. ``"model.encoder"``)."""


def _mlp(
    in_dim: int, out_dim: int, spec: NetworkSpec, image: Sequence[int] | None, field: str
) -> nn.Module:
    return mlp(in_dim, out_dim, spec)


class NetworkKind(NamedTuple):
    """The builders of one network kind."""

    encoder: NetworkBuilder
    """Data (an image, then any extra inputs) in."""
    decoder: NetworkBuilder
    """Data out: ``out_dim`` is a whole number of values per pixel."""


NETWORKS: dict[str, NetworkKind] = {
    "mlp": NetworkKind(_mlp, _mlp),
    "conv": NetworkKind(conv_encoder, conv_decoder),
}


def _kind(spec: NetworkSpec) -> NetworkKind:
    try:
        return NETWORKS[spec.kind]
    except KeyError:
        raise ValueError(
            f"unknown network kind {spec.kind!r}; choose from {', '.join(NETWORKS)}"
        ) from None


def build_encoder(
    in_dim: int,
    out_dim: int,
    spec: NetworkSpec,
    image: Sequence[int] | None = None,
    field: str = "model.encoder",
) -> nn.Module:
    """The encoder of ``spec.kind``: ``(..., in_dim) -> (..., out_dim)``, the first
    ``C * H * W`` inputs being the image ``image`` when it has one."""
    return _kind(spec).encoder(in_dim, out_dim, spec, image, field)


def build_decoder(
    in_dim: int,
    out_dim: int,
    spec: NetworkSpec,
    image: Sequence[int] | None = None,
    field: str = "model.decoder",
) -> nn.Module:
    """The decoder of ``spec.kind``: ``(..., in_dim) -> (..., out_dim)``, ``out_dim`` being
    a whole number of values per pixel of ``image``."""
    return _kind(spec).decoder(in_dim, out_dim, spec, image, field)
