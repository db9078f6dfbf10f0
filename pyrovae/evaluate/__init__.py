"""Evaluation of a trained model: log-likelihood, latent space, first-layer units."""

from pyrovae.evaluate.likelihood import (
    Evaluation,
    LogLikelihood,
    evaluate,
    importance_log_likelihood,
)

__all__ = ["Evaluation", "LogLikelihood", "evaluate", "importance_log_likelihood"]
