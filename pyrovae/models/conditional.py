"""The conditional VAE: p(z) p(x | z, y) and q(z | x, y), the class y given.

``model.kind = "cvae"`` (Sohn et al. 2015, in the form of Pyro's CVAE example): the
class, one-hot, is an extra input of both networks; y is observed everywhere, so
the ELBO bounds log p(x | y) and every objective of the VAE applies. The model trains
on rows ``(B, D + 1)``, the data and then the class (:mod:`pyrovae.data.labelled`);
``model(x)`` and ``guide(x)`` take those rows, so the training loop, the importance
sampler and the local posteriors p(z | x, y) see the same interface as the VAE's.

The same z decoded under every class keeps what the encoder put in z (the style) and
changes the class: :meth:`CVAE.decode` takes the classes to decode under.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch.nn.functional import one_hot, softplus

from pyrovae.data.labelled import HIDDEN, split_rows
from pyrovae.models.likelihoods import MIN_SCALE
from pyrovae.models.vae import VAE
from pyrovae.nets.classes import with_class
from pyrovae.spec import ModelSpec

__all__ = ["CVAE", "cycled_classes"]


def cycled_classes(n: int, classes: int, device: torch.device | None = None) -> torch.Tensor:
    """``(n,)`` classes 0, 1, ..., C-1, 0, 1, ...: a balanced mix for decoding ``n`` codes."""
    return torch.arange(n, device=device) % classes


class CVAE(VAE):
    """A VAE whose networks also take the class: p(x | z, y), q(z | x, y).

    Parameters
    ----------
    spec : ModelSpec
        As for the VAE (normal prior only).
    data_dim : int
        D, the data values per example (the rows have D + 1 columns).
    classes : int
        C, the number of classes.
    """

    def __init__(
        self, spec: ModelSpec, data_dim: int, classes: int, image: Sequence[int] | None = None
    ) -> None:
        super().__init__(spec, data_dim, condition_dim=classes, image=image)
        self.classes = classes

    # ----------------------------------------------------------- rows and classes

    def pixels(self, rows: torch.Tensor) -> torch.Tensor:
        """The data values ``(..., D)`` of rows ``(..., D + 1)``."""
        return rows[..., :-1]

    def labels(self, rows: torch.Tensor) -> torch.Tensor:
        """The class of each row ``(B,)``; every row of a CVAE must have one.

        Raises
        ------
        ValueError
            A row whose label is hidden.
        """
        y = split_rows(rows)[1]
        if bool((y == HIDDEN).any()):
            raise ValueError("a cvae conditions on the class of every example; a row has none")
        return y

    def one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``(...)`` class indices as ``(..., C)`` one-hot vectors of ``like``'s dtype."""
        return one_hot(y, self.classes).to(like.dtype)

    # ----------------------------------------------------------- networks

    def encode_with(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y): data ``(B, D)`` (broadcast against ``y``'s shape ``(..., B)``) ->
        loc, scale ``(..., B, L)``."""
        loc, raw = with_class(self.encoder, x, y, self.classes).chunk(2, dim=-1)
        return loc, softplus(raw) + MIN_SCALE

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z | x, y) of rows ``(B, D + 1)``: loc, scale ``(B, L)``."""
        return self.encode_with(self.pixels(x), self.labels(x))

    def observation_with(self, z: torch.Tensor, y: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z, y) for latents ``(..., B, L)`` and classes broadcastable to ``(..., B)``."""
        return self.likelihood(with_class(self.decoder, z, y, self.classes))

    def observation(
        self, z: torch.Tensor, rows: torch.Tensor | None = None
    ) -> dist.TorchDistribution:
        """p(x | z, y) with the classes of ``rows`` ``(B, D + 1)``; z ``(..., B, L)``."""
        if rows is None:
            raise ValueError("a cvae's p(x|z, y) needs the rows that hold the classes")
        return self.observation_with(z, self.labels(rows))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y]: ``(..., n, L) -> (..., n, D)``; classes ``(n,)`` (default: cycled
        0..C-1, :func:`cycled_classes`)."""
        if y is None:
            y = cycled_classes(z.shape[-2], self.classes, z.device)
        return self.likelihood.mean(with_class(self.decoder, z, y, self.classes))

    # ----------------------------------------------------------- conveniences

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = mu_phi(x, y), y] of rows ``(B, D + 1)``: ``(B, D)``."""
        return self.decode(self.encode(x)[0], self.labels(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Means of p(x | z, y) for ``n`` draws z ~ p(z), the classes cycled: ``(n, D)``."""
        return self.decode(self.sample_prior(n, generator))

    def linear_gaussian(self) -> None:
        """None: the pipeline's closed form is for p(x|z) without a class."""
        return None
