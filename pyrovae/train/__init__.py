"""Training: the SVI objectives, the loop, and the run directory it fills.

The loop (:func:`fit`) touches no files; :mod:`pyrovae.train.rundir` is the only
module that writes a run directory. :mod:`pyrovae.train.distributed` trains one model
over several processes (torchrun, DDP) through the loop's seams.
"""

from pyrovae.train.loop import fit
from pyrovae.train.objectives import Objective, log_weights, make_objective
from pyrovae.train.state import EpochRecord, FitResult, TrainState

__all__ = [
    "EpochRecord",
    "FitResult",
    "Objective",
    "TrainState",
    "fit",
    "log_weights",
    "make_objective",
]
