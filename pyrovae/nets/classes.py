"""A network whose last inputs are a one-hot class, run without building the one-hot.

A label model's networks read ``cat(inputs, one_hot(y))``: q(z | x, y) reads the image
and the class, p(x | z, y) the code and the class. Under enumeration every row is scored
under all C classes, so ``net(cat(...))`` would run the image part of the encoder C times
on the same image (a 784-500 layer ten times, or a whole convolution stack ten times).
:func:`with_class` computes the same function, weights unchanged, in the order the
arithmetic allows: whatever reads only ``inputs`` runs once at ``inputs``'s own shape,
and the class enters the first linear layer that reads it as a looked-up column of its
weight (``W [inputs, one_hot(y)] + b = W_in inputs + b + W_class[:, y]``), broadcast
against the classes' shape.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import embedding, linear, one_hot

from pyrovae.nets.conv import ConvDecoder, ConvEncoder

__all__ = ["with_class"]


def _first_linear(layer: nn.Linear, inputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``layer(cat(inputs, one_hot(y)))``: inputs ``(..., K)``, classes broadcastable against
    ``inputs.shape[:-1]`` -> ``(broadcast, H)``."""
    k = inputs.shape[-1]
    return linear(inputs, layer.weight[:, :k], layer.bias) + embedding(y, layer.weight[:, k:].T)


def _reads_class(net: nn.Module, width: int) -> bool:
    """Whether ``net`` is an MLP whose first linear layer reads ``width`` inputs."""
    return (
        isinstance(net, nn.Sequential)
        and len(net) > 0
        and isinstance(net[0], nn.Linear)
        and net[0].in_features == width
    )


def _mlp(net: nn.Module, inputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    assert isinstance(net, nn.Sequential)
    first = net[0]
    assert isinstance(first, nn.Linear)
    return net[1:](_first_linear(first, inputs, y))


def with_class(net: nn.Module, inputs: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    """``net(cat(inputs, one_hot(y, classes)))``, the class-free work done once.

    Parameters
    ----------
    net : nn.Module
        A network built for ``K + C`` inputs: an MLP (``nn.Sequential`` from a linear
        layer), a :class:`~pyrovae.nets.conv.ConvEncoder` whose extra inputs are the
        class, or a :class:`~pyrovae.nets.conv.ConvDecoder`. Any other network is run on
        the concatenation.
    inputs : Tensor
        ``(..., B, K)``.
    y : Tensor
        ``(..., B)`` class indices in ``[0, C)``, broadcastable against
        ``inputs.shape[:-1]`` (e.g. ``(C, B)`` or ``(C, 1)`` for every class of ``B``
        rows).
    classes : int
        C.

    Returns
    -------
    Tensor
        ``(broadcast, out)``, equal to the network on the concatenated inputs.
    """
    width = inputs.shape[-1] + classes
    if _reads_class(net, width):
        return _mlp(net, inputs, y)
    if isinstance(net, ConvEncoder) and _reads_class(net.head, net.features + classes):
        return _mlp(net.head, net.image_features(inputs), y)
    if isinstance(net, ConvDecoder) and _reads_class(net.head[0], width):
        return net.from_head(net.head[1:](_mlp(net.head[0], inputs, y)))
    batch = torch.broadcast_shapes(y.shape, inputs.shape[:-1])
    inputs = inputs.expand(*batch, inputs.shape[-1])
    return net(torch.cat([inputs, one_hot(y.expand(batch), classes).to(inputs.dtype)], dim=-1))
