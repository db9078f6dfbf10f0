"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM.

:func:`stop_on_signals` turns the first such signal into a request that
:func:`~pyrovae.train.loop.fit` sees after the step in progress: the run stops there,
its checkpoint is written (mid-epoch, so ``--resume`` continues exactly), and
:class:`~pyrovae.errors.Interrupted` says how to resume. A second signal stops at
once, as Ctrl-C normally does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopRequest", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Called with no argument: whether a stop was asked for; :attr:`signum` says by what."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Catch SIGINT and SIGTERM while the block runs (main thread only; elsewhere the
    request never fires), and restore the previous handlers afterwards."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        s: signal.getsignal(s) for s in STOP_SIGNALS
    }

    def handle(signum: int, _frame: FrameType | None) -> None:
        if request.signum is not None:  # asked twice: stop now
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        request.signum = signum

    for s in STOP_SIGNALS:
        signal.signal(s, handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
