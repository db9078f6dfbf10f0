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
def conv_filter_patches(
    model: LatentModel, x: torch.Tensor, top: int = 6, chunk: int = 64
) -> FilterPatches:
    """The first convolution's filters and the ``top`` patches of ``x`` ``(N, D)`` that
    activate each most (the encoder must be a :class:`~pyrovae.nets.conv.ConvEncoder`).

    The images are scored ``chunk`` at a time with the convolution itself and only a
    running top ``top`` per filter is kept, so memory does not grow with N; only the
    winning patches are cut out.
    """
    encoder = model.encoder
    if not isinstance(encoder, ConvEncoder):
        raise TypeError("conv_filter_patches needs a conv encoder")
    conv = next(m for m in encoder.convs if isinstance(m, nn.Conv2d))
    c, h, w = encoder.image
    images = x[:, : c * h * w].reshape(-1, c, h, w).to(conv.weight)
    best = images.new_full((conv.out_channels, 0), -torch.inf)
    where = torch.zeros((conv.out_channels, 0), dtype=torch.long, device=images.device)
    for first in range(0, images.shape[0], chunk):
        scores = conv(images[first : first + chunk]).transpose(0, 1)  # (F, n, h', w')
        flat = scores.reshape(conv.out_channels, -1)
        offset = first * scores.shape[2] * scores.shape[3]  # positions before this chunk
        values, places = flat.topk(min(top, flat.shape[1]), dim=1)
        best, keep = torch.cat([best, values], 1).topk(min(top, best.shape[1] + values.shape[1]), 1)
        where = torch.cat([where, places + offset], 1).gather(1, keep)
    patches = _patches(images, where, conv, encoder.geometry.sizes[1])
    return FilterPatches(conv.weight.detach().clone(), patches, best)


def _patches(
    images: torch.Tensor, where: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]
) -> torch.Tensor:
    """The input windows ``(F, top, C, k, k)`` (zero padding included) at flat positions
    ``where`` ``(F, top)`` = image * h' * w' + row * w' + column of the output map."""
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    ph, pw = cast(tuple[int, int], conv.padding)  # numbers: a conv encoder's padding
    padded = F.pad(images, (pw, pw, ph, ph))
    per_image = size[0] * size[1]
    image, rest = where // per_image, where % per_image
    rows, cols = (rest // size[1]) * sh, (rest % size[1]) * sw
    out = [
        [padded[i, :, r : r + kh, q : q + kw] for i, r, q in zip(a, b, d, strict=True)]
        for a, b, d in zip(image.tolist(), rows.tolist(), cols.tolist(), strict=True)
    ]
    return torch.stack([torch.stack(row) for row in out])
