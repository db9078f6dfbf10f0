"""Convolutional networks, network kind ``conv``.

An encoder is a stack of strided convolutions on the image ``(C, H, W)`` followed by an
MLP head to its outputs; a decoder mirrors it: an MLP head from its inputs to a small
feature map, then transposed convolutions back to the image's shape. Both act on flat
rows like the MLP, so the rest of the package (likelihoods, plates, label columns) sees
``(..., D)`` either way:

- the encoder reads ``(..., C * H * W + E)``: the image, channel-major, then E extra
  inputs (a label model's one-hot class), which join the features before the head;
- the decoder writes ``(..., k * C * H * W)``: k channel groups per pixel (the
  likelihood's parameters, e.g. location and scale), each group channel-major, so that
  ``out.chunk(k, -1)`` splits them as it does for an MLP.

The decoder's layer sizes are the ones its own kernel, stride and padding reach going
down from ``(H, W)``; each transposed convolution's output padding is chosen so that the
way back lands on exactly those sizes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pyrovae.errors import SpecError
from pyrovae.nets.mlp import ACTIVATIONS, mlp
from pyrovae.spec import NetworkSpec

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ConvGeometry",
    "TiedConvDecoder",
    "conv_decoder",
    "conv_encoder",
    "conv_geometry",
    "padding_of",
]


@dataclass(frozen=True)
class ConvGeometry:
    """The sizes a stack of convolutions goes through.

    Attributes
    ----------
    image : (C, H, W)
        The input image.
    sizes : list of (h, w)
        Spatial size before each layer and after the last: ``len(channels) + 1`` entries,
        ``sizes[0] == (H, W)``.
    kernel, stride, padding : int
    """

    image: tuple[int, int, int]
    sizes: list[tuple[int, int]]
    kernel: int
    stride: int
    padding: int

    @property
    def output_padding(self) -> list[tuple[int, int]]:
        """Per layer, what a transposed convolution back from ``sizes[i + 1]`` must add to
        land on ``sizes[i]``: each entry is below the stride."""
        k, s, p = self.kernel, self.stride, self.padding
        return [((h + 2 * p - k) % s, (w + 2 * p - k) % s) for h, w in self.sizes[:-1]]


def padding_of(spec: NetworkSpec) -> int:
    """The padding ``spec`` declares, ``"auto"`` being ``(kernel - 1) // 2``."""
    return (spec.kernel - 1) // 2 if spec.padding == "auto" else int(spec.padding)


def conv_geometry(image: Sequence[int], spec: NetworkSpec, field: str) -> ConvGeometry:
    """The sizes ``spec``'s convolutions take an image ``(C, H, W)`` through.

    Raises
    ------
    SpecError
        Naming ``field`` (e.g. ``"model.encoder"``) when a layer would leave no pixels.
    """
    c, h, w = (int(v) for v in image)
    k, s, p = spec.kernel, spec.stride, padding_of(spec)
    sizes = [(h, w)]
    for i in range(len(spec.channels)):
        ph, pw = sizes[-1]
        nh, nw = (ph + 2 * p - k) // s + 1, (pw + 2 * p - k) // s + 1
        if nh < 1 or nw < 1:
            raise SpecError(
                f"{field}.channels",
                f"convolution {i + 1} (kernel {k}, stride {s}, padding {p}) cannot take a "
                f"{ph}x{pw} feature map of images {c}x{h}x{w} anywhere; use fewer layers, a "
                "smaller kernel or stride, or larger images",
            )
        sizes.append((nh, nw))
    return ConvGeometry((c, h, w), sizes, k, s, p)


def _norm(kind: str, channels: int) -> list[nn.Module]:
    """Group norm with up to 8 groups that divide ``channels``, or nothing."""
    return [nn.GroupNorm(math.gcd(channels, 8), channels)] if kind == "group" else []


class ConvEncoder(nn.Module):
    """Convolutions, then an MLP head: ``(..., C*H*W + E) -> (..., out_dim)``.

    Parameters
    ----------
    image : (C, H, W)
    extra : int
        E, inputs after the image that join the features before the head.
    out_dim : int
    spec : NetworkSpec
        ``channels``, ``kernel``, ``stride``, ``padding``, ``norm``, ``activation``; the
        head's hidden sizes are ``hidden``.
    field : str
        The spec path named in errors.
    """

    def __init__(
        self, image: Sequence[int], extra: int, out_dim: int, spec: NetworkSpec, field: str
    ) -> None:
        super().__init__()
        self.geometry = conv_geometry(image, spec, field)
        c, h, w = self.geometry.image
        self.image = (c, h, w)
        self.pixels = c * h * w
        self.extra = extra
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        sizes = [c, *spec.channels]
        g = self.geometry
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Conv2d(a, b, g.kernel, g.stride, g.padding)]
            layers += [*_norm(spec.norm, b), ACTIVATIONS[spec.activation]()]
        self.convs = nn.Sequential(*layers)
        fh, fw = g.sizes[-1]
        self.features = sizes[-1] * fh * fw
        self.head = mlp(self.features + extra, out_dim, spec)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions' output, flattened: ``(..., C*H*W [+ E]) -> (..., features)``;
        inputs after the image are ignored."""
        batch = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])[:, : self.pixels]
        return self.convs(flat.reshape(-1, *self.image)).reshape(*batch, self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C*H*W + E) -> (..., out_dim)``."""
        h = self.image_features(x)
        if self.extra:
            h = torch.cat([h, x[..., self.pixels :]], dim=-1)
        return self.head(h)


class ConvDecoder(nn.Module):
    """An MLP head to a feature map, then transposed convolutions to the image:
    ``(..., in_dim) -> (..., groups * C*H*W)``.

    Parameters
    ----------
    in_dim : int
        Latent size plus extra inputs.
    image : (C, H, W)
    groups : int
        k, channel groups per pixel (the likelihood's outputs per pixel).
    spec : NetworkSpec
        ``channels`` from the feature map towards the image (e.g. ``[64, 32]``),
        ``kernel``, ``stride``, ``padding``, ``norm``, ``activation``; the head's hidden
        sizes are ``hidden``.
    field : str
        The spec path named in errors.
    """

    def __init__(
        self, in_dim: int, image: Sequence[int], groups: int, spec: NetworkSpec, field: str
    ) -> None:
        super().__init__()
        g = conv_geometry(image, spec, field)
        self.geometry = g
        c, _, _ = g.image
        self.groups = groups
        self.out_dim = groups * c * g.sizes[0][0] * g.sizes[0][1]
        self.start = (spec.channels[0], *g.sizes[-1])
        act = ACTIVATIONS[spec.activation]
        self.head = nn.Sequential(mlp(in_dim, math.prod(self.start), spec), act())
        sizes = [*spec.channels, groups * c]
        pads = g.output_padding[::-1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(
                nn.ConvTranspose2d(a, b, g.kernel, g.stride, g.padding, output_padding=pads[i])
            )
            if i < len(sizes) - 2:
                layers += [*_norm(spec.norm, b), act()]
        self.deconvs = nn.Sequential(*layers)

    def from_head(self, h: torch.Tensor) -> torch.Tensor:
        """The transposed convolutions on the head's output: ``(..., prod(start)) ->
        (..., groups * C*H*W)``."""
        batch = h.shape[:-1]
        return self.deconvs(h.reshape(-1, *self.start)).reshape(*batch, self.out_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., in_dim) -> (..., groups * C*H*W)``."""
        return self.from_head(self.head(z))


class TiedConvDecoder(nn.Module):
    """The decoder of a tied conv autoencoder: its encoder run backwards.

    The head's linear maps are applied transposed, then each convolution's kernel is
    used by a transposed convolution (``conv_transpose2d`` with the same weight tensor,
    output padding as in :class:`ConvGeometry`), last layer first. The decoder owns only
    its biases; it holds the encoder by reference, not as a submodule, so each weight
    appears once in ``parameters()`` and ``state_dict()``.

    Parameters
    ----------
    encoder : ConvEncoder
        Without extra inputs and without normalisation layers.
    activation : str
    """

    _encoder: ConvEncoder

    def __init__(self, encoder: ConvEncoder, activation: str) -> None:
        super().__init__()
        self.__dict__["_encoder"] = encoder  # a reference; registering it would duplicate it
        linears = self._linears()
        convs = self._convs()
        self.head_biases = nn.ParameterList(
            nn.Parameter(torch.zeros(m.in_features)) for m in linears
        )
        self.conv_biases = nn.ParameterList(nn.Parameter(torch.zeros(m.in_channels)) for m in convs)
        self.activation = ACTIVATIONS[activation]()
        g = encoder.geometry
        self.out_dim = encoder.pixels
        self.start = (convs[-1].out_channels, *g.sizes[-1])

    def _linears(self) -> list[nn.Linear]:
        return [m for m in self._encoder.head if isinstance(m, nn.Linear)]

    def _convs(self) -> list[nn.Conv2d]:
        return [m for m in self._encoder.convs if isinstance(m, nn.Conv2d)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., L) -> (..., C*H*W)``."""
        batch = z.shape[:-1]
        h = z.reshape(-1, z.shape[-1])
        for weight, bias in reversed(list(zip(self._linears(), self.head_biases, strict=True))):
            h = self.activation(torch.nn.functional.linear(h, weight.weight.t(), bias))
        h = h.reshape(-1, *self.start)
        g = self._encoder.geometry
        layers = list(zip(self._convs(), self.conv_biases, g.output_padding, strict=True))
        for i, (conv, bias, pad) in enumerate(reversed(layers)):
            h = torch.nn.functional.conv_transpose2d(
                h, conv.weight, bias, g.stride, g.padding, output_padding=pad
            )
            if i < len(layers) - 1:
                h = self.activation(h)
        return h.reshape(*batch, self.out_dim)


def _image(image: Sequence[int] | None, field: str) -> Sequence[int]:
    if image is None:
        raise SpecError(
            f"{field}.kind",
            "a conv network needs images, but no image shape was given: the data are rows "
            "without one (use kind = 'mlp', or give (N, H, W) or (N, C, H, W) arrays), or "
            "build_model was called without image=data.image_shape",
        )
    return image


def conv_encoder(
    in_dim: int, out_dim: int, spec: NetworkSpec, image: Sequence[int] | None, field: str
) -> ConvEncoder:
    """A :class:`ConvEncoder` reading images ``image`` and ``in_dim - C*H*W`` extra inputs."""
    shape = _image(image, field)
    extra = in_dim - math.prod(shape)
    if extra < 0:
        raise SpecError(f"{field}.kind", f"{in_dim} inputs cannot hold images {tuple(shape)}")
    return ConvEncoder(shape, extra, out_dim, spec, field)


def conv_decoder(
    in_dim: int, out_dim: int, spec: NetworkSpec, image: Sequence[int] | None, field: str
) -> ConvDecoder:
    """A :class:`ConvDecoder` writing ``out_dim / (C*H*W)`` channel groups of ``image``."""
    shape = _image(image, field)
    groups, rest = divmod(out_dim, math.prod(shape))
    if rest or groups < 1:
        raise SpecError(
            f"{field}.kind", f"{out_dim} outputs are not whole channel groups of {tuple(shape)}"
        )
    return ConvDecoder(in_dim, shape, groups, spec, field)
