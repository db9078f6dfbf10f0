"""Inference: SVI objectives and the training loop."""

from pyrovae.infer.objectives import Objective, log_weights, make_objective
from pyrovae.infer.svi import EpochRecord, FitResult, TrainState, fit

__all__ = [
    "EpochRecord",
    "FitResult",
    "Objective",
    "TrainState",
    "fit",
    "log_weights",
    "make_objective",
]
