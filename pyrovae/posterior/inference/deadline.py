"""Time limits that long-running inference checks as it goes.

``with time_limit(seconds, what):`` sets a deadline for the code inside; the samplers
(:func:`~pyrovae.posterior.inference.mcmc.run_mcmc`, once per iteration, warm-up
included) and the variational fits (once per optimizer step) call :func:`check`,
which raises :class:`TimeLimitReached` once the deadline has passed. Limits nest:
the earliest deadline wins, so a per-method limit inside a limit on the whole
comparison stops at whichever comes first. Outside any ``time_limit`` block
:func:`check` does nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyrovae.errors import PyrovaeError

__all__ = ["TimeLimitReached", "check", "remaining", "time_limit"]

_deadlines: list[tuple[float, str]] = []  # (time.monotonic() deadline, what it limits)


class TimeLimitReached(PyrovaeError):
    """A :func:`time_limit` ran out; the message names the limit."""


@contextmanager
def time_limit(seconds: float | None, what: str = "the time limit") -> Iterator[None]:
    """Raise :class:`TimeLimitReached` from :func:`check` calls inside the block once
    ``seconds`` have passed; ``None`` or ``inf`` sets no limit."""
    if seconds is None or math.isinf(seconds):
        yield
        return
    _deadlines.append((time.monotonic() + float(seconds), f"{what} ({seconds:g} s)"))
    try:
        yield
    finally:
        _deadlines.pop()


def remaining() -> float:
    """Seconds until the earliest active deadline (``inf`` without one; may be negative)."""
    if not _deadlines:
        return math.inf
    return min(deadline for deadline, _ in _deadlines) - time.monotonic()


def check() -> None:
    """Raise :class:`TimeLimitReached` if an active deadline has passed."""
    if not _deadlines:
        return
    now = time.monotonic()
    for deadline, what in _deadlines:
        if now >= deadline:
            raise TimeLimitReached(f"stopped at {what}")
