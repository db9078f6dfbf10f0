"""Checksummed downloads: fetch named files from mirrors into a folder, md5-checked.

Each file goes to a temporary name in the folder and is renamed into place only once
its md5 matches, so a failed or corrupted download never leaves a file that looks
finished. Used by the IDX datasets (:mod:`.idx`) and CIFAR-10 (:mod:`.cifar`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyrovae.data.source import one_line
from pyrovae.errors import DataError

__all__ = ["download_files", "md5_of"]


def md5_of(path: Path) -> str:
    """The md5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, folder: Path, name: str) -> tuple[Path, str]:
    """Download ``url`` to a temporary file in ``folder``; return it and its md5."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), digest.hexdigest()


def download_files(
    folder: str | Path, mirrors: Sequence[str], files: Mapping[str, str], what: str
) -> Path:
    """Download ``files`` (name -> md5) into ``folder``, trying ``mirrors`` in order.

    Files already there with the right md5 are kept.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    mirrors : sequence of str
        Base URLs; a file's URL is the mirror, ``/`` and its name.
    files : mapping of str to str
        File name -> expected md5 hex digest.
    what : str
        The data set's name for messages, e.g. ``"Fashion-MNIST"``.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    DataError
        On a checksum mismatch (the download is deleted), or when every mirror fails.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in files.items():
        target = folder / name
        if target.is_file() and md5_of(target) == md5:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                tmp, got = _fetch(url, folder, name)
            except (OSError, ValueError) as err:
                errors.append(f"{url}: {one_line(err)}")
                continue
            if got != md5:
                tmp.unlink()
                raise DataError(
                    f"data: checksum mismatch for {name} from {url}: expected md5 {md5}, "
                    f"got {got}; try again later or place the file in {folder} by hand"
                )
            os.replace(tmp, target)
            break
        else:
            raise DataError(
                f"data: download of {name} failed ({'; '.join(errors) or 'no mirrors'}); "
                f"place the {what} files ({', '.join(files)}) in {folder} by hand"
            )
    return folder
