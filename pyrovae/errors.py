"""Exceptions raised by pyrovae.

Errors caused by what a user gave (a spec, data, a path) derive from
:class:`UserError`; the command line turns them into one line on stderr and
exit status 2, without a traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "Interrupted",
    "NonFiniteLossError",
    "PyrovaeError",
    "SpecError",
    "UserError",
]


class PyrovaeError(Exception):
    """Base class of every error pyrovae raises on purpose."""


class UserError(PyrovaeError, ValueError):
    """Bad input from the user; the message says what was wrong and how to fix it."""


class SpecError(UserError):
    """A field of a model spec is missing, unknown or out of range.

    Parameters
    ----------
    path : str
        Dotted path of the offending field, e.g. ``"model.encoder.hidden[1]"``.
    message : str
        What was expected and what was given.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class DataError(UserError):
    """The data cannot be used with the declared model (NaN, shape, range, missing file)."""


class NonFiniteLossError(PyrovaeError):
    """Training produced a NaN or infinite loss.

    Parameters
    ----------
    epoch, step : int
        Where it happened, both counted from 1.
    value : float
        The offending loss value.
    """

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch = epoch
        self.step = step
        self.value = value
        super().__init__(
            f"training stopped: the loss became {value} at epoch {epoch}, step {step}; "
            "the last good checkpoint is kept (try a smaller train.lr or a KL warm-up)"
        )


class Interrupted(PyrovaeError):
    """Training was stopped by a signal after a step, and its checkpoint written.

    Parameters
    ----------
    signum : int
        The signal (SIGINT 2, SIGTERM 15); :attr:`exit_status` is ``128 + signum``.
    epoch, step : int
        Epochs finished, and steps taken of the next one.
    run_dir : str
        Where the checkpoint is.
    """

    def __init__(self, signum: int, epoch: int, step: int, run_dir: str) -> None:
        import signal

        self.signum = signum
        self.epoch = epoch
        self.step = step
        self.run_dir = run_dir
        self.exit_status = 128 + signum
        where = f"after step {step} of epoch {epoch + 1}" if step else f"after epoch {epoch}"
        super().__init__(
            f"stopped by {signal.Signals(signum).name} {where}; the checkpoint is saved: "
            f"continue with `pyrovae train --out {run_dir} --resume`"
        )
