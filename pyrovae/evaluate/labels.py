"""Held-out metrics of the models that use labels.

- The conditional VAE's log p(x | y) and ELBO come from
  :func:`~pyrovae.evaluate.likelihood.evaluate` on rows that show the class.
- M2 (:class:`~pyrovae.models.m2.M2`): the accuracy of its classifier q(y|x) and the
  confusion matrix on the test split, and the ELBO with the class given (L(x, y), a
  bound on log p(x, y)) and hidden (U(x), a bound on log p(x), the class summed out
  exactly), each per example in nats.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from pyrovae.data.labelled import hide_labels, split_rows
from pyrovae.models.m2 import M2

__all__ = ["ClassifierEvaluation", "classifier_evaluation", "confusion_matrix"]


class ClassifierEvaluation(NamedTuple):
    """M2's classifier and its two ELBOs on a labelled split."""

    accuracy: float
    """Share of examples whose most probable class under q(y|x) is the label."""
    confusion: torch.Tensor
    """``(C, C)`` counts: row = true class, column = predicted class."""
    labelled_elbo: float
    """Mean L(x, y), nats."""
    unlabelled_elbo: float
    """Mean U(x), nats."""

    def to_metrics(self, prefix: str = "test") -> dict[str, Any]:
        """Flat ``metrics.json`` keys."""
        return {
            f"{prefix}_accuracy": self.accuracy,
            f"{prefix}_labelled_elbo_nats": self.labelled_elbo,
            f"{prefix}_unlabelled_elbo_nats": self.unlabelled_elbo,
        }


def confusion_matrix(true: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts of (true, predicted) pairs of two ``(N,)`` class vectors."""
    flat = true.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


@torch.no_grad()
def classifier_evaluation(
    model: M2, rows: torch.Tensor, *, samples: int = 10, seed: int = 0
) -> ClassifierEvaluation:
    """Accuracy, confusion and both ELBOs of ``model`` on labelled rows ``(N, D + 1)``.

    Parameters
    ----------
    samples : int
        Draws of z per example and class for the reconstruction terms (seeded).
    """
    device = next(model.parameters()).device
    rows = rows.to(device)
    y = split_rows(rows)[1]
    predicted = model.classify(rows).argmax(-1)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        recon_l, kl_l, _, _ = model.elbo_terms(rows, samples)
        recon_u, kl_u, _, _ = model.elbo_terms(hide_labels(rows), samples)
    return ClassifierEvaluation(
        accuracy=(predicted == y).double().mean().item(),
        confusion=confusion_matrix(y.cpu(), predicted.cpu(), model.classes),
        labelled_elbo=(recon_l - kl_l).mean().item(),
        unlabelled_elbo=(recon_u - kl_u).mean().item(),
    )
