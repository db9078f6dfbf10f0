"""Who may write a run directory: a writable folder, and one writer at a time.

:func:`ensure_writable` finds an output folder that cannot be written before any
work starts. :func:`run_lock` holds ``.pyrovae.lock`` in a run directory for as long
as a job writes there: a second process that asks for the same directory is refused
at once, with the holder's pid, so two writers never interleave checkpoints. The
lock is an advisory ``flock`` on the file, which the operating system releases when
its process ends in any way (``kill -9`` included), so a lock left by a dead process
is recognised as stale and taken over. The holder unlinks the file before it lets go,
so a finished run directory holds no lock file; a process that opened the old file
meanwhile sees that it is gone and locks a new one. Within one process the lock is re-entrant
(``pyrovae run`` trains, evaluates and compares under one lock).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyrovae.errors import UserError

try:
    import fcntl
except ImportError:  # not on Windows: fall back to checking the holder's pid
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "ensure_writable", "run_lock"]

LOCK = ".pyrovae.lock"
"""The lock file in a run directory; it holds the pid of the process writing there."""

_HELD: dict[Path, tuple[int, int]] = {}
"""Run directories locked by this process: path -> (file descriptor, depth)."""


def ensure_writable(folder: str | Path, what: str = "--out", *, create: bool = True) -> Path:
    """Check that files can be written in ``folder``, creating it (and its parents) if
    ``create``.

    Raises
    ------
    UserError
        One line naming the folder and the reason (permission, read-only file
        system, a file in the way, ...), or that it does not exist (``create=False``).
    """
    folder = Path(folder)
    if not create and not folder.is_dir():
        raise UserError(f"{folder} is not a run directory (it does not exist)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".pyrovae-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(
            f"{what}: cannot write to {folder} ({reason}); choose a folder you can write to"
        ) from None
    return folder


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another process"
    return f"process {text}" if text.isdigit() else "another process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a releasing holder unlinks it)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _acquire(path: Path) -> int:
    for _ in range(100):  # a holder that lets go unlinks the file: then lock the new one
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                text = os.read(fd, 64).decode(errors="replace").strip()
                if text.isdigit() and int(text) != os.getpid() and _alive(int(text)):
                    raise BlockingIOError
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{path.parent} is being written by {_holder(path)}; wait for it to finish "
                "or choose another --out"
            ) from None
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise UserError(f"{path.parent}: could not take the lock {path.name}; try again")


@contextmanager
def run_lock(run_dir: str | Path, *, create: bool = True) -> Iterator[Path]:
    """Hold the run directory's lock while the block runs; ``create``: make the directory
    if it does not exist (a new run), else it must exist (evaluating a trained run).

    Raises
    ------
    UserError
        The folder cannot be written or does not exist, or another live process holds
        the lock.
    """
    new = not Path(run_dir).exists()
    run_dir = ensure_writable(run_dir, create=create)
    key = run_dir.resolve()
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        _HELD[key] = (_acquire(run_dir / LOCK), 1)
    try:
        yield run_dir
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            (run_dir / LOCK).unlink(missing_ok=True)  # still held: no one else has it
            if new and not any(run_dir.iterdir()):
                run_dir.rmdir()  # a job refused before writing leaves no folder
            os.close(fd)  # releases the flock on the unlinked file
