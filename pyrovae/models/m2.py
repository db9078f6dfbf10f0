"""The semi-supervised VAE M2 (Kingma et al. 2014): the class is a latent variable
where its label is hidden, summed out exactly by Pyro's enumeration.

Generative model p(y) p(z) p(x | y, z) with p(y) uniform over C classes and p(z) =
N(0, I); guide q(y | x) q(z | x, y), q(y | x) a classifier network. The model trains
on rows ``(B, D + 1)`` whose class column is HIDDEN for the unlabelled examples
(:mod:`pyrovae.data.labelled`):

- labelled rows, plate ``"data"``: y observed (site ``y``), z ~ q(z|x, y) (``z``),
  x observed (``x``): the labelled ELBO L(x, y), a bound on log p(x, y). In training
  mode a factor adds Kingma et al.'s classifier term ``alpha * mean log q(y|x)`` over
  the labelled examples (``alpha = classifier_weight * N``, N the training examples);
- unlabelled rows, plate ``"unlabelled"``: y ~ q(y|x) (site ``y_u``), z ~ q(z|x, y)
  (``z_u``), x observed (``x_u``): the unlabelled ELBO U(x) = sum_y q(y|x) L(x, y) +
  H(q(y|x)), a bound on log p(x). The guide marks ``y_u`` for parallel enumeration, so
  under :class:`~pyro.infer.TraceEnum_ELBO` all C classes are scored in one batched
  pass along one enumeration dimension (dim -2) instead of a loop over classes;
  under ``Trace_ELBO`` or importance sampling the same site is simply sampled.

Each plate scales by its own share of the data set (N_l / B_l and N_u / B_u) when the
rows are a minibatch, so the loss estimates the full-data objective whatever mix a
batch holds; :class:`~pyrovae.train.batches.MixedBatches` gives every batch the same mix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch

from pyrovae.data.disk import Rows
from pyrovae.data.labelled import HIDDEN, split_rows
from pyrovae.models.conditional import CVAE
from pyrovae.models.vae import data_plate
from pyrovae.nets import build_encoder
from pyrovae.spec import ModelSpec

__all__ = ["M2"]


class _Part(NamedTuple):
    """The labelled or the unlabelled rows of a batch."""

    x: torch.Tensor
    """``(B_part, D)`` data."""
    y: torch.Tensor
    """``(B_part,)`` classes (HIDDEN for the unlabelled part)."""
    plate: Callable[[], pyro.plate]
    """Makes the part's plate (a new one for model and guide each)."""


class M2(CVAE):
    """Kingma et al.'s M2 on rows ``(B, D + 1)`` whose class column may be HIDDEN.

    Parameters
    ----------
    spec : ModelSpec
        Latent size and networks; the classifier q(y|x) has the encoder's hidden layers.
    data_dim : int
        D.
    classes : int
        C.
    classifier_weight : float
        alpha / N (``train.classifier_weight``).

    Notes
    -----
    :meth:`init_from_data` (called by the training loop on the training rows) records
    N_l, the labelled examples, and alpha; both are buffers, so a checkpoint keeps them.
    """

    discrete_latents = True

    def __init__(
        self,
        spec: ModelSpec,
        data_dim: int,
        classes: int,
        classifier_weight: float = 0.1,
        image: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spec, data_dim, classes, image)
        self.classifier = build_encoder(data_dim, classes, spec.encoder, image)
        self.classifier_weight = classifier_weight
        self.register_buffer("labelled_total", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.zeros(()))

    @torch.no_grad()
    def init_from_data(self, x: Rows, generator: torch.Generator) -> None:
        """Record N_l (rows with a label) and alpha = classifier_weight * N of the
        training rows ``x`` ``(N, D + 1)``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError("M2 needs its training rows (N, D + 1) in memory, not a row store")
        known = split_rows(x)[1] != HIDDEN
        self.labelled_total.fill_(int(known.sum()))
        self.alpha.fill_(self.classifier_weight * x.shape[0])

    # ----------------------------------------------------------- classes

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x) for data ``(..., D)``: ``(..., C)``."""
        return self.classifier(x)

    @torch.no_grad()
    def classify(self, rows: torch.Tensor) -> torch.Tensor:
        """q(y|x) of rows ``(B, D + 1)`` (their labels unused): ``(B, C)`` probabilities."""
        return torch.softmax(self.class_logits(self.pixels(rows)), dim=-1)

    def labels(self, rows: torch.Tensor) -> torch.Tensor:
        """Each row's label, or q(y|x)'s most probable class where it is hidden: ``(B,)``."""
        y = split_rows(rows)[1]
        hidden = y == HIDDEN
        if bool(hidden.any()):
            guess = self.class_logits(self.pixels(rows)).argmax(-1)
            y = torch.where(hidden, guess, y)
        return y

    def class_prior(self, like: torch.Tensor) -> dist.Categorical:
        """p(y), uniform over the C classes, on the device of ``like``."""
        return dist.Categorical(logits=like.new_zeros(self.classes))

    # ----------------------------------------------------------- Pyro pair

    def _parts(self, x: torch.Tensor, n_total: int | None) -> tuple[_Part | None, _Part | None]:
        """The labelled and the unlabelled rows of ``x`` ``(B, D + 1)``, each with its own
        plate; None for a kind the batch does not hold. In a minibatch of ``n_total``
        rows each plate scales to its own share of the data, N_l or N - N_l."""
        pixels, y = split_rows(x)
        known = y != HIDDEN
        n_labelled = int(self.labelled_total)
        labelled = unlabelled = None
        if bool(known.any()):
            total = None if n_total is None else n_labelled
            xl = pixels[known]
            labelled = _Part(xl, y[known], partial(data_plate, xl, total, "data"))
        if not bool(known.all()):
            total = None if n_total is None else n_total - n_labelled
            xu = pixels[~known]
            unlabelled = _Part(xu, y[~known], partial(data_plate, xu, total, "unlabelled"))
        return labelled, unlabelled

    def model(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """p(y) p(z) p(x | y, z) for rows ``x`` ``(B, D + 1)``: labelled rows in plate
        ``data`` (sites ``y`` observed, ``z``, ``x``), the others in plate ``unlabelled``
        (``y_u``, ``z_u``, ``x_u``)."""
        labelled, unlabelled = self._parts(x, n_total)
        n_labelled = int(self.labelled_total)
        if labelled is not None:
            xl, yl = labelled.x, labelled.y
            with labelled.plate():
                pyro.sample("y", self.class_prior(xl), obs=yl)
                with self._beta(beta):
                    z = pyro.sample("z", self.prior(xl))
                pyro.sample("x", self.observation_with(z, yl), obs=xl)
                if self.training and n_labelled and bool(self.alpha > 0):
                    log_q = dist.Categorical(logits=self.class_logits(xl)).log_prob(yl)
                    pyro.factor("classifier", self.alpha / n_labelled * log_q)
        if unlabelled is not None:
            xu = unlabelled.x
            with unlabelled.plate():
                yu = pyro.sample("y_u", self.class_prior(xu))
                with self._beta(beta):
                    z = pyro.sample("z_u", self.prior(xu))
                pyro.sample("x_u", self.observation_with(z, yu), obs=xu)

    def guide(self, x: torch.Tensor, n_total: int | None = None, beta: float = 1.0) -> None:
        """q(z | x, y) for labelled rows; q(y | x) q(z | x, y) for the others, ``y_u``
        marked for parallel enumeration."""
        labelled, unlabelled = self._parts(x, n_total)
        if labelled is not None:
            loc, scale = self.encode_with(labelled.x, labelled.y)
            with labelled.plate(), self._beta(beta):
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        if unlabelled is not None:
            xu = unlabelled.x
            logits = self.class_logits(xu)
            with unlabelled.plate():
                yu = pyro.sample(
                    "y_u",
                    dist.Categorical(logits=logits),
                    infer={"enumerate": "parallel", "expand": True},
                )
                loc, scale = self.encode_with(xu, yu)
                with self._beta(beta):
                    pyro.sample("z_u", dist.Normal(loc, scale).to_event(1))

    # ----------------------------------------------------------- evaluation

    @torch.no_grad()
    def elbo_terms(
        self, x: torch.Tensor, samples: int = 10
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ELBO's parts of rows ``x`` ``(N, D + 1)``, the class summed out exactly.

        With w(y) = q(y|x) for a hidden label and a point mass on a given one:
        reconstruction = sum_y w(y) E_q(z|x,y)[log p(x|y,z)] (``samples`` draws), and
        KL = KL(w || p(y)) + sum_y w(y) KL(q(z|x,y) || p(z)), so that reconstruction - KL
        is U(x) or L(x, y).

        Returns
        -------
        reconstruction, kl : Tensor
            ``(N,)`` nats.
        kl_per_dimension : Tensor
            ``(N, L)`` sum_y w(y) KL of each coordinate of z.
        loc : Tensor
            ``(N, L)`` the means of q(z | x, y) at each row's (or the classifier's) class.
        """
        pixels, y = split_rows(x)
        weights = torch.softmax(self.class_logits(pixels), dim=-1)
        known = y != HIDDEN
        weights[known] = self.one_hot(y[known], weights)
        every = torch.arange(self.classes, device=x.device).unsqueeze(-1).expand(-1, len(x))
        loc, scale = self.encode_with(pixels, every)  # (C, N, L)
        s2 = self.prior_scale**2  # KL(N(loc, scale^2) || N(0, s^2)) per coordinate
        kl_z = math.log(self.prior_scale) - scale.log() + (scale**2 + loc**2) / (2 * s2) - 0.5
        w = weights.T.unsqueeze(-1)  # (C, N, 1)
        kl_dim = (w * kl_z).sum(0)
        log_w = weights.clamp_min(1e-30).log()
        kl_y = (weights * (log_w + math.log(self.classes))).sum(-1)  # KL(w || uniform)
        recon = torch.stack(
            [
                self.observation_with(loc + scale * torch.randn_like(loc), every).log_prob(pixels)
                for _ in range(samples)
            ]
        ).mean(0)  # (C, N)
        reconstruction = (weights.T * recon).sum(0)
        chosen = self.labels(x)
        return reconstruction, kl_dim.sum(-1) + kl_y, kl_dim, loc[chosen, torch.arange(len(x))]
