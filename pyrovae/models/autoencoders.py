"""The autoencoder family as Pyro model/guide pairs with a point-mass guide.

An autoencoder is the VAE with its randomness taken out of the encoder and
its prior taken out of the model. Each kind is the same pair of functions:

- ``guide(x)``: the deterministic encoder as a point mass,
  z ~ Delta(f_phi(x)). A Delta's log-density at its own value is 0, so the
  guide adds nothing to the loss.
- ``model(x)``: a flat (improper) prior on the code, log p(z) = 0, and the
  decoder's likelihood x ~ p(x | g_theta(z)) inside ``pyro.plate("data")``.

With these, ``Trace_ELBO`` is E_q[log p(x, z) - log q(z|x)] =
log p(x | g_theta(f_phi(x))): the ELBO *is* the negative reconstruction loss,
so the same :func:`~pyrovae.train.loop.fit`, run directory and CLI train every
kind. The likelihood sets the loss: a Gaussian with a fixed scale s gives
||x - x_hat||^2 / (2 s^2) + const (L2), a Bernoulli the cross-entropy.

The kinds differ in one place each:

- ``ae``: as above.
- ``tied_ae``: the decoder's weight matrices are the encoder's, transposed
  (W' = W^T); the decoder owns only its biases, so each matrix is one
  parameter shared by both directions.
- ``denoising_ae``: in training mode the guide encodes a corrupted copy of x
  (a share of the pixels set to 0, or Gaussian noise added) while the model
  scores the clean x. In evaluation mode (``.eval()``) the encoder sees x.
- ``sparse_ae``: codes are sigmoid units in (0, 1), and the model adds
  ``pyro.factor("sparsity", -w * sum_j KL(rho || rho_hat_j))`` for every
  example, where rho_hat_j is the mean activation of code unit j over the
  minibatch. The factor sits inside the data plate, so it is scaled to the
  data set like the likelihood: the loss per example is the reconstruction
  loss plus w * sum_j KL(rho || rho_hat_j), as in Ng's sparse autoencoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from pyrovae.data.disk import Rows
from pyrovae.models.likelihoods import Likelihood
from pyrovae.models.vae import data_plate
from pyrovae.nets import ACTIVATIONS, build_decoder, build_encoder
from pyrovae.nets.conv import ConvEncoder, TiedConvDecoder
from pyrovae.spec import AUTOENCODER_KINDS, AutoencoderSpec, ModelSpec

__all__ = ["SPARSITY_EPS", "Autoencoder", "TiedDecoder", "corrupt", "sparsity_penalty"]

SPARSITY_EPS = 1e-6
"""Mean activations are clamped to [eps, 1 - eps] so that KL(rho || rho_hat) stays finite."""


def corrupt(
    x: torch.Tensor, spec: AutoencoderSpec, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A corrupted copy of ``x`` ``(B, D)``: masking noise or additive Gaussian noise.

    ``mask`` sets each value to 0 with probability ``spec.corruption_level``;
    ``gaussian`` adds noise with standard deviation ``spec.corruption_level``.
    """
    level = spec.corruption_level
    noise = torch.rand if spec.corruption == "mask" else torch.randn
    draw = noise(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if spec.corruption == "mask":
        return x * (draw >= level)
    return x + level * draw


def sparsity_penalty(codes: torch.Tensor, rho: float) -> torch.Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j the batch mean of unit j.

    ``codes`` is ``(..., B, L)`` with values in (0, 1); returns ``(...)``.
    """
    rho_hat = codes.mean(-2).clamp(SPARSITY_EPS, 1 - SPARSITY_EPS)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum(-1)


class TiedDecoder(nn.Module):
    """The decoder of a tied autoencoder: the encoder's linear maps transposed.

    The encoder ``D -> h1 -> ... -> L`` has weights W_1 ``(h1, D)``, ...,
    W_n ``(L, h_{n-1})``; this decoder maps ``L -> ... -> h1 -> D`` with
    W_n^T, ..., W_1^T and biases of its own. It holds the encoder by
    reference, not as a submodule, so the weights appear once in
    ``parameters()`` and ``state_dict()``.
    """

    _encoder: nn.Sequential

    def __init__(self, encoder: nn.Sequential, activation: str) -> None:
        super().__init__()
        self.__dict__["_encoder"] = encoder  # a reference; registering it would duplicate it
        linears = [m for m in encoder if isinstance(m, nn.Linear)]
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(m.in_features)) for m in linears)
        self.activation = ACTIVATIONS[activation]()

    def _weights(self) -> list[torch.Tensor]:
        return [m.weight for m in self._encoder if isinstance(m, nn.Linear)]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., L) -> (..., D)``."""
        h = z
        layers = list(zip(self._weights(), self.biases, strict=True))[::-1]
        for i, (weight, bias) in enumerate(layers):
            h = F.linear(h, weight.t(), bias)
            if i < len(layers) - 1:
                h = self.activation(h)
        return h


def _tied_decoder(encoder: nn.Module, activation: str) -> nn.Module:
    """The encoder transposed: :class:`TiedConvDecoder` for a conv encoder,
    :class:`TiedDecoder` for an MLP."""
    if isinstance(encoder, ConvEncoder):
        return TiedConvDecoder(encoder, activation)
    return TiedDecoder(cast(nn.Sequential, encoder), activation)


class Autoencoder(PyroModule):
    """An autoencoder of ``spec.kind`` (ae, tied_ae, denoising_ae, sparse_ae).

    Parameters
    ----------
    spec : ModelSpec
        Kind, code size (``latent_dim``), encoder/decoder networks,
        likelihood (the reconstruction loss) and ``spec.autoencoder`` settings.
    data_dim : int
        D, the number of values per example.
    image : (C, H, W), optional
        The examples' image shape (C * H * W == D), for ``conv`` networks.

    Notes
    -----
    The interface matches :class:`~pyrovae.models.vae.VAE` where it can:
    ``model``/``guide`` for SVI, ``code`` (the point the guide puts its mass
    on), ``decode``, ``reconstruct`` and ``sample`` (decoded z ~ N(0, I), the
    generative use an autoencoder was never trained for).
    """

    discrete_latents = False
    """An autoencoder has no discrete latent sites to sum out."""

    @staticmethod
    def pixels(rows: torch.Tensor) -> torch.Tensor:
        """The data values of a batch: the rows themselves ``(B, D)``."""
        return rows

    def __init__(self, spec: ModelSpec, data_dim: int, image: Sequence[int] | None = None) -> None:
        super().__init__()
        if spec.kind not in AUTOENCODER_KINDS:
            raise ValueError(f"not an autoencoder kind: {spec.kind!r}")
        self.spec = spec
        self.kind = spec.kind
        self.data_dim = data_dim
        self.latent_dim = spec.latent_dim
        self.prior_scale = 1.0
        self.encoder = build_encoder(data_dim, spec.latent_dim, spec.encoder, image)
        self.likelihood = Likelihood(spec.likelihood)
        if self.kind == "tied_ae":
            self.decoder: nn.Module = _tied_decoder(self.encoder, spec.encoder.activation)
        else:
            self.decoder = build_decoder(
                spec.latent_dim, self.likelihood.outputs_per_pixel * data_dim, spec.decoder, image
            )

    # ----------------------------------------------------------- networks

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The code f_phi(x) of clean inputs: ``(B, D) -> (B, L)``; in (0, 1) for sparse_ae."""
        out = self.encoder(x)
        return torch.sigmoid(out) if self.kind == "sparse_ae" else out

    def observation(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x|z) for codes ``(..., L)``: batch shape ``(...)``, event ``(D,)``."""
        return self.likelihood(self.decoder(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: ``(..., L) -> (..., D)``."""
        return self.likelihood.mean(self.decoder(z))

    # ----------------------------------------------------------- Pyro pair

    def model(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """A flat prior on z and the decoder's likelihood of x; plus the sparsity factor.

        ``beta`` is accepted for the common signature and has no effect: there is no KL.
        """
        b = x.shape[0]
        flat = dist.ImproperUniform(constraints.real, (b,), (self.latent_dim,))
        with data_plate(x, n_total):
            z = pyro.sample("z", flat)
            pyro.sample("x", self.observation(z), obs=x)
            if self.kind == "sparse_ae":
                a = self.spec.autoencoder
                penalty = a.sparsity_weight * sparsity_penalty(z, a.sparsity_target)
                pyro.factor("sparsity", -penalty.unsqueeze(-1).expand(z.shape[:-1]))

    def guide(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """z ~ Delta(f_phi(x)); a denoising_ae in training mode encodes a corrupted x."""
        if self.kind == "denoising_ae" and self.training:
            x = corrupt(x, self.spec.autoencoder)
        with data_plate(x, n_total):
            pyro.sample("z", dist.Delta(self.code(x)).to_event(1))

    # ----------------------------------------------------------- conveniences

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g_theta(f_phi(x)): ``(B, D) -> (B, D)``."""
        return self.decode(self.code(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoded codes z ~ N(0, I): ``(n, D)``."""
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator, device=device))

    def init_from_data(self, x: Rows, generator: torch.Generator) -> None:
        """Nothing in an autoencoder is initialised from data (the VAE's VampPrior is)."""

    def linear_gaussian(self) -> None:
        """Autoencoders have no prior, so no closed-form log p(x): always None."""
        return None
