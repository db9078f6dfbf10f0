"""Held-out metrics of the models that use labels.

- The conditional VAE's log p(x | y) and ELBO come from
  :func:`~pyrovae.evaluate.likelihood.evaluate` on rows that show the class.
- M2 (:class:`~pyrovae.models.m2.M2`): the accuracy of its classifier q(y|x) and the
  confusion matrix on the test split, and the ELBO with the class given (L(x, y), a
  bound on log p(x, y)), per example in nats. The ELBO with the class hidden (U(x), a
  bound on log p(x), the class summed out exactly) is
  :func:`~pyrovae.evaluate.likelihood.evaluate`'s ELBO of the same rows, labels hidden.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from pyrovae.data.labelled import split_rows
from pyrovae.models.m2 import M2

__all__ = ["ClassifierEvaluation", "classification", "classifier_evaluation", "confusion_matrix"]


class ClassifierEvaluation(NamedTuple):
    """M2's classifier and its labelled ELBO on a labelled split."""

    accuracy: float
    """Share of examples whose most probable class under q(y|x) is the label."""
    confusion: torch.Tensor
    """``(C, C)`` counts: row = true class, column = predicted class."""
    labelled_elbo: float
    """Mean L(x, y), nats."""

    def to_metrics(self, prefix: str = "test") -> dict[str, Any]:
        """Flat ``metrics.json`` keys."""
        return {
            f"{prefix}_accuracy": self.accuracy,
            f"{prefix}_labelled_elbo_nats": self.labelled_elbo,
        }


def confusion_matrix(true: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts of (true, predicted) pairs of two ``(N,)`` class vectors."""
    flat = true.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


@torch.no_grad()
def classification(model: M2, rows: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Accuracy of q(y|x)'s most probable class and the ``(C, C)`` confusion counts on
    labelled rows ``(N, D + 1)``."""
    y = split_rows(rows)[1]
    predicted = model.classify(rows).argmax(-1)
    accuracy = (predicted == y).double().mean().item()
    return accuracy, confusion_matrix(y.cpu(), predicted.cpu(), model.classes)


@torch.no_grad()
def classifier_evaluation(
    model: M2, rows: torch.Tensor, *, samples: int = 10, seed: int = 0
) -> ClassifierEvaluation:
    """Accuracy, confusion and the labelled ELBO of ``model`` on labelled rows ``(N, D + 1)``.

    Parameters
    ----------
    samples : int
        Draws of z per example and class for the reconstruction terms (seeded).
    """
    device = next(model.parameters()).device
    rows = rows.to(device)
    accuracy, confusion = classification(model, rows)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        recon, kl, _, _ = model.elbo_terms(rows, samples)
    return ClassifierEvaluation(
        accuracy=accuracy,
        confusion=confusion,
        labelled_elbo=(recon - kl).mean().item(),
    )
