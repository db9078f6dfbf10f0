"""Networks by kind: the encoder and decoder a :class:`~pyrovae.spec.NetworkSpec` declares.

:data:`NETWORKS` maps each ``kind`` to a builder ``(in_dim, out_dim, spec) ->
nn.Module``; :func:`build_network` picks one. A new kind of network (say a
convolutional one) is a new module here with its builder, one line in
:data:`NETWORKS`, and its name in :data:`pyrovae.spec.NETWORK_KINDS` (a test
checks that the two list the same kinds).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pyrovae.nets.mlp import ACTIVATIONS, mlp
from pyrovae.spec import NetworkSpec

__all__ = ["ACTIVATIONS", "NETWORKS", "NetworkBuilder", "build_network"]

NetworkBuilder = Callable[[int, int, NetworkSpec], nn.Module]
"""``(in_dim, out_dim, spec) -> module`` mapping ``(..., in_dim)`` to ``(..., out_dim)``."""

NETWORKS: dict[str, NetworkBuilder] = {
    "mlp": mlp,
}


def build_network(in_dim: int, out_dim: int, spec: NetworkSpec) -> nn.Module:
    """The network of ``spec.kind`` from ``(..., in_dim)`` to ``(..., out_dim)``."""
    try:
        builder = NETWORKS[spec.kind]
    except KeyError:
        raise ValueError(
            f"unknown network kind {spec.kind!r}; choose from {', '.join(NETWORKS)}"
        ) from None
    return builder(in_dim, out_dim, spec)
