"""The multilayer perceptron, network kind ``mlp``."""

from __future__ import annotations

import itertools

from torch import nn

from pyrovae.spec import NetworkSpec

__all__ = ["ACTIVATIONS", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


def mlp(in_dim: int, out_dim: int, spec: NetworkSpec) -> nn.Sequential:
    """A multilayer perceptron ``in_dim -> spec.hidden... -> out_dim``.

    With ``spec.hidden == ()`` this is a single linear map. The last layer has
    no activation.

    Parameters
    ----------
    in_dim, out_dim : int
        Sizes of the input and output, acting on the last axis: ``(..., in_dim)
        -> (..., out_dim)``.
    spec : NetworkSpec
        Hidden sizes and activation name.
    """
    sizes = [in_dim, *spec.hidden]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), ACTIVATIONS[spec.activation]()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)
