"""What the encoder's first-layer units detect: their maximally activating inputs.

For a unit with pre-activation a_i = sum_j W_ij x_j + b_i, the input of norm
at most 1 that maximises a_i (and so any increasing activation of it) is
x_j = W_ij / sqrt(sum_j W_ij^2), by Cauchy-Schwarz. Drawn as images, these
are the "features" of the classic autoencoder literature. For an encoder with
hidden layers the units are those of the first hidden layer; for a one-layer
(linear) encoder they are the code units themselves (for a VAE, the units of
the posterior mean mu_phi(x), not of its scale).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from pyrovae.models import LatentModel

__all__ = ["first_layer_units", "max_activation_inputs"]


def first_layer_units(model: LatentModel) -> torch.Tensor:
    """The weight rows of the encoder's first layer that belong to its units: ``(U, D)``."""
    encoder = cast(nn.Sequential, model.encoder)  # an mlp: the only kind of network
    first = next(m for m in encoder if isinstance(m, nn.Linear))
    weight = first.weight
    has_hidden = any(not isinstance(m, nn.Linear) for m in encoder)
    if not has_hidden and first.out_features == 2 * model.latent_dim:  # a VAE: loc and scale
        weight = weight[: model.latent_dim]
    return weight.detach()


def max_activation_inputs(model: LatentModel) -> torch.Tensor:
    """The input of norm <= 1 that maximally activates each first-layer unit: ``(U, D)``.

    Row i is W_i / ||W_i||; a unit whose weights are all zero gives a zero row.
    """
    weight = first_layer_units(model).double()
    norms = weight.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, weight / norms.clamp_min(1e-300), 0.0).float()
