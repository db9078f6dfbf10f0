"""The variational autoencoder as a Pyro model/guide pair.

``model(x)`` is p(z) p(x|z): z ~ N(0, s^2 I) and x ~ p(x | decoder(z)) for
each example inside ``pyro.plate("data")``; ``guide(x)`` is the amortized
q(z|x) = N(mu_phi(x), diag sigma_phi(x)^2). When ``x`` is a minibatch of a
data set with ``n_total`` examples, the plate scales every log-density by
``n_total / batch`` so that the loss estimates the full-data ELBO. ``beta``
scales the latent site in both model and guide, which weights the KL term:
recon - beta * KL.

With ``model.prior.name = "vamp"`` the prior is the VampPrior (Tomczak &
Welling 2018), p(z) = (1/K) sum_k q(z | u_k): the guide's Gaussians at K
learned pseudo-inputs u_k, which :meth:`VAE.init_from_data` sets to K
training examples before training starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import cast

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch.nn.functional import softplus

from pyrovae.data.disk import Rows
from pyrovae.models.likelihoods import MIN_SCALE, Likelihood
from pyrovae.models.priors import GaussianMixture
from pyrovae.nets import build_decoder, build_encoder
from pyrovae.spec import UNIT_INTERVAL_LIKELIHOODS, ModelSpec

__all__ = ["VAE", "data_plate"]


def data_plate(x: torch.Tensor, n_total: int | None, name: str = "data") -> pyro.plate:
    """``pyro.plate(name)`` over the rows of ``x`` ``(B, D)`` at dim -1; when ``x`` is a
    minibatch of ``n_total`` examples, a subsampled plate that scales by ``n_total / B``."""
    b = x.shape[0]
    if n_total is None or n_total == b:
        return pyro.plate(name, b, dim=-1)
    return pyro.plate(name, n_total, subsample=torch.arange(b, device=x.device), dim=-1)


class VAE(PyroModule):
    """A VAE declared by a :class:`~pyrovae.spec.ModelSpec`.

    Parameters
    ----------
    spec : ModelSpec
        Latent size, encoder/decoder networks, likelihood, prior and guide.
    data_dim : int
        D, the number of values per example (pixels).
    condition_dim : int
        Extra inputs of both networks (a label model's one-hot class); 0 for the VAE.
    image : (C, H, W), optional
        The examples' image shape (C * H * W == D), for ``conv`` networks.

    Notes
    -----
    The networks are plain ``torch.nn`` modules, so ``vae.parameters()`` are
    ordinary tensors that a ``torch.optim`` optimizer updates directly; no
    global Pyro parameter store is involved, and two VAEs in one process never
    share weights by name.
    """

    discrete_latents = False
    """Whether the model has discrete latent sites that the objective sums out
    (:class:`~pyrovae.models.m2.M2`)."""

    def __init__(
        self,
        spec: ModelSpec,
        data_dim: int,
        condition_dim: int = 0,
        image: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.data_dim = data_dim
        self.latent_dim = spec.latent_dim
        self.encoder = build_encoder(
            data_dim + condition_dim, 2 * spec.latent_dim, spec.encoder, image
        )
        self.likelihood = Likelihood(spec.likelihood)
        self.decoder = build_decoder(
            spec.latent_dim + condition_dim,
            self.likelihood.outputs_per_pixel * data_dim,
            spec.decoder,
            image,
        )
        self.prior_scale = spec.prior.scale
        if spec.prior.name == "vamp":
            # unconstrained; a sigmoid keeps them in [0, 1] for unit-interval data
            self.pseudo_inputs = torch.nn.Parameter(torch.zeros(spec.prior.components, data_dim))
        self._squash = spec.likelihood.name in UNIT_INTERVAL_LIKELIHOODS

    # ----------------------------------------------------------- networks

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x): ``(B, D) -> loc (B, L), scale (B, L)``."""
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        return loc, softplus(raw) + MIN_SCALE

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu_phi(x): ``(B, D) -> (B, L)`` (the code an autoencoder has)."""
        return self.encode(x)[0]

    def observation(
        self, z: torch.Tensor, rows: torch.Tensor | None = None
    ) -> dist.TorchDistribution:
        """p(x|z) for latents ``(..., L)``: batch shape ``(...)``, event ``(D,)``.

        ``rows`` ``(B, ...)``, the examples z belongs to, is what a label model reads its
        classes from; the VAE does not need it."""
        return self.likelihood(self.decoder(z))

    def pixels(self, rows: torch.Tensor) -> torch.Tensor:
        """The data values of a batch ``(B, D)``: the rows themselves for the VAE
        (a label model's rows also hold the class)."""
        return rows

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: ``(..., L) -> (..., D)``."""
        return self.likelihood.mean(self.decoder(z))

    def prior(self, like: torch.Tensor) -> dist.TorchDistribution:
        """p(z), event shape ``(L,)``, on the device of ``like``: N(0, s^2 I), or the
        VampPrior mixture (1/K) sum_k q(z | u_k)."""
        if self.spec.prior.name == "vamp":
            return GaussianMixture(*self.encode(self.pseudo_input_values()))
        loc = like.new_zeros(self.latent_dim)
        return dist.Normal(loc, self.prior_scale).to_event(1)

    def pseudo_input_values(self) -> torch.Tensor:
        """The VampPrior's pseudo-inputs u ``(K, D)`` in data space."""
        raw = self.pseudo_inputs
        return torch.sigmoid(raw) if self._squash else raw

    @torch.no_grad()
    def init_from_data(self, x: Rows, generator: torch.Generator) -> None:
        """Set the VampPrior's pseudo-inputs to K distinct random rows of ``x`` ``(N, D)``
        (Tomczak & Welling's data initialisation; rows repeat only when K > N);
        nothing to do for a normal prior. A row store reads only those K rows."""
        if self.spec.prior.name != "vamp":
            return
        k, n = self.pseudo_inputs.shape[0], x.shape[0]
        if k <= n:  # distinct examples; with fewer examples than K some repeat
            rows = torch.randperm(n, generator=generator, device=x.device)[:k]
        else:
            rows = torch.randint(n, (k,), generator=generator, device=x.device)
        u = x[rows].to(self.pseudo_inputs)
        if self._squash:
            u = u.clamp(0.01, 0.99)
            u = u.log() - (-u).log1p()
        self.pseudo_inputs.copy_(u)

    # ----------------------------------------------------------- Pyro pair

    @staticmethod
    def _beta(beta: float | torch.Tensor) -> contextlib.AbstractContextManager:
        if isinstance(beta, torch.Tensor):  # a traced step's input: a scale, no branching
            return poutine.scale(scale=beta)
        if beta == 1.0:
            return contextlib.nullcontext()
        if beta == 0.0:  # poutine.scale needs scale > 0; a zero weight is a mask
            return poutine.mask(mask=False)
        return poutine.scale(scale=beta)

    def model(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """p(z) p(x|z) with x observed; ``x`` is ``(B, D)``, sites ``z`` and ``x``."""
        with data_plate(x, n_total):
            with self._beta(beta):
                z = pyro.sample("z", self.prior(x))
            pyro.sample("x", self.observation(z, x), obs=self.pixels(x))

    def guide(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """q(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), one ``z`` per row of ``x``."""
        loc, scale = self.encode(x)
        with data_plate(x, n_total):
            with self._beta(beta):
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # ----------------------------------------------------------- conveniences

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = mu_phi(x)]: ``(B, D) -> (B, D)``."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Means of p(x|z) for ``n`` draws z ~ p(z): ``(n, D)``."""
        return self.decode(self.sample_prior(n, generator))

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws z ~ p(z): ``(n, L)``."""
        device = next(self.parameters()).device
        if self.spec.prior.name == "vamp":
            prior = cast(GaussianMixture, self.prior(self.pseudo_inputs))
            return prior.sample((n,), generator=generator)
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return z * self.prior_scale

    def linear_gaussian(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(W (D, L), b (D,), sigma ())`` when p(x|z) = N(W z + b, sigma^2 I), else None.

        That is the case for a decoder with no hidden layers and a Gaussian
        likelihood with a fixed or learned (not decoder-predicted) scale; then
        log p(x) and p(z|x) have closed forms (:mod:`pyrovae.stats.linear_gaussian`).
        """
        lik = self.likelihood
        decoder = self.spec.decoder
        if decoder.kind != "mlp" or decoder.hidden:
            return None
        if lik.name != "gaussian" or lik.scale_mode == "decoder":
            return None
        if self.spec.prior.name != "normal":
            return None
        layer = cast(torch.nn.Linear, cast(torch.nn.Sequential, self.decoder)[0])
        return layer.weight, layer.bias, lik.scale()
