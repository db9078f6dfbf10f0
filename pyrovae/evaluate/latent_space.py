"""How usable a model's latent space is for generation: continuity and completeness.

An autoencoder is trained only to reconstruct; a VAE is also trained so that
its codes fill its prior p(z) (N(0, I), or a VampPrior). These measures, in pixel space and the same
for every kind (a VAE's code is its posterior mean mu_phi(x)), show what that
buys:

- **Completeness**: decode codes the model was never shown and see whether
  they look like data, with z ~ p(z) (``prior_*``; for an autoencoder
  z ~ N(0, I), the generative use it was never trained for) and with z from a Gaussian fitted to the
  model's own training codes (``fitted_*``, the fairer test for an
  autoencoder).

  - ``*_energy_distance`` is the headline: the energy distance
    2 E|X - Y| - E|X - X'| - E|Y - Y'| between the decoded samples and the
    training images, in pixel space (Székely & Rizzo). It is 0 only when
    the two distributions are the same, so it counts both samples that look
    like no image and samples that all look alike.
  - ``*_sample_distance`` is the mean distance from a decoded mean to its
    nearest training image. Alone it misleads: faint or blurred images lie
    close to many digits in pixel space, so a model that decodes every code
    to one grey ghost scores well on it.
  - ``*_coverage_distance`` is the other direction: the mean distance from
    each training image to its nearest decoded sample. It is large when the
    samples miss kinds of data.
  - ``reconstruction_distance`` is the distance from the reconstructions of
    test images to their nearest training image: the scale that the model's
    own on-manifold outputs reach.
- **Continuity**: decode straight lines between the codes of two test images.
  ``interpolation_distance`` is the mean nearest-training-image distance of
  the frames strictly between the ends; ``interpolation_roughness`` the mean
  over pairs of (largest step / mean step) between consecutive frames: 1 when
  the image changes evenly along the line, up to ``steps - 1`` when it jumps
  in one step.
- **Robustness**: ``reconstruction_error`` and ``corrupted_reconstruction_error``
  are the squared errors per example (summed over values) of reconstructing
  the clean test image from itself and from a corrupted copy
  (:func:`~pyrovae.models.autoencoders.corrupt`, the spec's corruption).

All distances use decoded means E[x|z] and the training split as stored
(grey levels when it is binarized per minibatch, while the test split is
binarized once), so the numbers compare across kinds trained on the same
data; a memory-mapped training split gives its first
:data:`~pyrovae.data.disk.SAMPLE_ROWS` rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from pyrovae.data.dataset import Dataset
from pyrovae.data.disk import sample_rows
from pyrovae.models import LatentModel
from pyrovae.models.autoencoders import corrupt
from pyrovae.spec import AutoencoderSpec
from pyrovae.stats.energy import CHUNK_ROWS, energy_distance

__all__ = [
    "COVARIANCE_JITTER",
    "ENERGY_REFERENCE_POINTS",
    "LatentSpaceMetrics",
    "fitted_gaussian",
    "interpolation_paths",
    "latent_space_metrics",
    "nearest_distances",
    "roughness",
    "sample_fitted",
]

COVARIANCE_JITTER = 1e-6
"""Added to the diagonal of a fitted code covariance (times its mean variance), so that
a collapsed code dimension still gives a valid Gaussian."""

ENERGY_REFERENCE_POINTS = 2000
"""Training images (a seeded subsample) that the energy distance compares samples with."""


class LatentSpaceMetrics(NamedTuple):
    """Continuity, completeness and robustness of a latent space (see the module doc)."""

    prior_energy_distance: float
    fitted_energy_distance: float
    prior_sample_distance: float
    fitted_sample_distance: float
    prior_coverage_distance: float
    fitted_coverage_distance: float
    reconstruction_distance: float
    interpolation_distance: float
    interpolation_roughness: float
    reconstruction_error: float
    corrupted_reconstruction_error: float

    def to_metrics(self) -> dict[str, Any]:
        """Flat ``metrics.json`` keys, prefixed ``latent_`` (distances) or ``test_``."""
        out = {f"latent_{k}": v for k, v in self._asdict().items() if "error" not in k}
        out["test_reconstruction_error"] = self.reconstruction_error
        out["test_corrupted_reconstruction_error"] = self.corrupted_reconstruction_error
        return out


def nearest_distances(points: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each of ``points`` ``(P, D)`` to its nearest row of ``data``
    ``(N, D)``: ``(P,)``, computed in chunks so memory stays at ``512 x N``."""
    data = data.double()
    chunks = [torch.cdist(p.double(), data).min(dim=1).values for p in points.split(CHUNK_ROWS)]
    return torch.cat(chunks) if chunks else points.new_zeros(0, dtype=torch.float64)


def fitted_gaussian(codes: torch.Tensor) -> torch.distributions.MultivariateNormal:
    """The Gaussian N(mean, cov) of codes ``(N, L)``, N >= 2, with a small diagonal jitter."""
    codes = codes.double()
    mean = codes.mean(0)
    cov = torch.atleast_2d(torch.cov(codes.T))
    jitter = COVARIANCE_JITTER * max(cov.diagonal().mean().item(), 1e-12)
    cov = cov + jitter * torch.eye(cov.shape[0], dtype=cov.dtype)
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)


def sample_fitted(
    fitted: torch.distributions.MultivariateNormal, n: int, seed: int
) -> torch.Tensor:
    """``n`` seeded float32 draws ``(n, L)`` of a fitted code Gaussian; the global
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fitted.sample((n,)).float()


def interpolation_paths(
    model: LatentModel, start: torch.Tensor, end: torch.Tensor, steps: int
) -> torch.Tensor:
    """Decoded straight lines between the codes of ``start`` and ``end`` ``(P, D)``.

    Returns
    -------
    Tensor
        ``(P, steps, D)``; frame 0 decodes code(start), frame ``steps - 1`` code(end).
    """
    a, b = model.code(start), model.code(end)
    t = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1)
    return model.decode(a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t)


def roughness(paths: torch.Tensor) -> torch.Tensor:
    """Largest step over mean step of each path ``(P, T, D)``: ``(P,)``, >= 1.

    A path that does not move at all (both ends decode to the same image) counts as 1.
    """
    steps = (paths[:, 1:] - paths[:, :-1]).double().norm(dim=-1)
    mean = steps.mean(dim=1)
    out = steps.max(dim=1).values / mean.clamp_min(1e-12)
    return torch.where(mean > 1e-12, out, torch.ones_like(out))


@torch.no_grad()
def latent_space_metrics(
    model: LatentModel,
    data: Dataset,
    corruption: AutoencoderSpec,
    *,
    samples: int = 1000,
    pairs: int = 100,
    steps: int = 10,
    seed: int = 0,
) -> LatentSpaceMetrics:
    """Measure the latent space of a trained ``model`` on ``data`` (see the module doc).

    Parameters
    ----------
    model : VAE or Autoencoder
        Trained; put in evaluation mode here.
    data : Dataset
        ``train`` is the reference set of the distances and the source of the
        fitted Gaussian's codes; ``test`` gives the interpolation ends and the
        inputs reconstructed (at least two test examples).
    corruption : AutoencoderSpec
        The corruption of the robustness measure.
    samples, pairs, steps : int
        Decoded samples per distribution; interpolation pairs (at most half the
        test set) and frames per line (>= 3).
    seed : int
        Seeds every draw, so the numbers repeat.
    """
    if data.test.shape[0] < 2 or data.train.shape[0] < 2 or steps < 3:
        raise ValueError("latent-space metrics need 2+ train and test examples and steps >= 3")
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    train, test = sample_rows(data.train).to(device), data.test.to(device)
    reference = train.cpu()

    def distance(x: torch.Tensor, to: torch.Tensor = reference) -> float:
        return nearest_distances(x.cpu(), to.cpu()).mean().item()

    pick = torch.randperm(reference.shape[0], generator=torch.Generator().manual_seed(seed))
    energy_reference = reference[pick[:ENERGY_REFERENCE_POINTS]]

    prior = model.sample(samples, generator=generator)
    fitted = fitted_gaussian(model.code(train).cpu())
    fitted_samples = model.decode(sample_fitted(fitted, samples, seed).to(device))
    pairs = min(pairs, test.shape[0] // 2)
    paths = interpolation_paths(model, test[:pairs], test[pairs : 2 * pairs], steps)
    interior = paths[:, 1:-1].reshape(-1, paths.shape[-1])
    noisy = corrupt(test, corruption, generator)
    return LatentSpaceMetrics(
        prior_energy_distance=energy_distance(prior.cpu(), energy_reference),
        fitted_energy_distance=energy_distance(fitted_samples.cpu(), energy_reference),
        prior_sample_distance=distance(prior),
        fitted_sample_distance=distance(fitted_samples),
        prior_coverage_distance=distance(reference, prior),
        fitted_coverage_distance=distance(reference, fitted_samples),
        reconstruction_distance=distance(model.reconstruct(test)),
        interpolation_distance=distance(interior),
        interpolation_roughness=roughness(paths).mean().item(),
        reconstruction_error=_squared_error(model.reconstruct(test), test),
        corrupted_reconstruction_error=_squared_error(model.reconstruct(noisy), test),
    )


def _squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return (x_hat - x).double().pow(2).sum(-1).mean().item()
