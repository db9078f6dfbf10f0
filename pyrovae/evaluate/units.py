"""What the encoder's first-layer units detect: their maximally activating inputs.

For a unit with pre-activation a_i = sum_j W_ij x_j + b_i, the input of norm
at most 1 that maximises a_i (and so any increasing activation of it) is
x_j = W_ij / sqrt(sum_j W_ij^2), by Cauchy-Schwarz. Drawn as images, these
are the "features" of the classic autoencoder literature. For an encoder with
hidden layers the units are those of the first hidden layer; for a one-layer
(linear) encoder they are the code units themselves (for a VAE, the units of
the posterior mean mu_phi(x), not of its scale).

A conv encoder's first-layer units are its filters, the same kernel at every position:
:func:`conv_filter_patches` returns them with the patches of the data that excite each
most (the maximally activating input of norm 1 is again the kernel itself, scaled).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F

from pyrovae.models import LatentModel
from pyrovae.nets.conv import ConvEncoder

__all__ = ["FilterPatches", "conv_filter_patches", "first_layer_units", "max_activation_inputs"]


def first_layer_units(model: LatentModel) -> torch.Tensor:
    """The weight rows of the encoder's first layer that belong to its units: ``(U, D)``."""
    if isinstance(model.encoder, ConvEncoder):
        raise TypeError("a conv encoder's first layer is its filters: see conv_filter_patches")
    encoder = cast(nn.Sequential, model.encoder)
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


class FilterPatches(NamedTuple):
    """A conv encoder's first-layer filters and the data patches that excite them most.

    Attributes
    ----------
    filters : Tensor, shape (F, C, k, k)
        The kernels.
    patches : Tensor, shape (F, top, C, k, k)
        For each filter, the ``top`` patches of the inputs (zero padding included, as
        the convolution sees them) with the largest pre-activation w . patch + b, largest
        first; different positions of one image may both appear.
    activations : Tensor, shape (F, top)
        Those pre-activations.
    """

    filters: torch.Tensor
    patches: torch.Tensor
    activations: torch.Tensor


@torch.no_grad()
def conv_filter_patches(model: LatentModel, x: torch.Tensor, top: int = 6) -> FilterPatches:
    """The first convolution's filters and the ``top`` patches of ``x`` ``(N, D)`` that
    activate each most (the encoder must be a :class:`~pyrovae.nets.conv.ConvEncoder`)."""
    encoder = model.encoder
    if not isinstance(encoder, ConvEncoder):
        raise TypeError("conv_filter_patches needs a conv encoder")
    conv = next(m for m in encoder.convs if isinstance(m, nn.Conv2d))
    c, h, w = encoder.image
    k, g = conv.kernel_size, encoder.geometry
    images = x[:, : c * h * w].reshape(-1, c, h, w).to(conv.weight)
    cols = F.unfold(images, k, padding=g.padding, stride=g.stride)  # (N, C*k*k, L)
    weight = conv.weight.reshape(conv.out_channels, -1)
    scores = torch.einsum("fp,npl->fnl", weight, cols)
    if conv.bias is not None:
        scores = scores + conv.bias[:, None, None]
    flat = scores.reshape(conv.out_channels, -1)
    best, where = flat.topk(min(top, flat.shape[1]), dim=1)
    image, place = where // cols.shape[2], where % cols.shape[2]
    patches = cols[image, :, place].reshape(*where.shape, c, *k)
    return FilterPatches(conv.weight.detach().clone(), patches, best)
