"""The IDX file format of MNIST (and its look-alikes), and checksummed downloads.

:func:`read_idx` reads a file, raw or gzipped; :func:`download_mnist` fetches the
official files from mirrors into a folder, each renamed into place only once its md5
matches.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pyrovae.data.source import one_line
from pyrovae.errors import DataError

__all__ = ["IDX_MAGIC", "MNIST_FILES", "MNIST_MIRRORS", "download_mnist", "read_idx"]

MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
IDX_MAGIC = {2049: "labels", 2051: "images"}
"""Magic numbers of the IDX files this reader knows."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an MNIST IDX file, raw or gzipped.

    Returns
    -------
    np.ndarray, uint8
        (N, H, W) images for magic number 2051, (N,) labels for 2049.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"data: cannot read IDX file {path}: {one_line(err)}") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in IDX_MAGIC:
        raise DataError(
            f"data: {path} is not an MNIST IDX file (magic number {magic}, expected 2051 "
            "for images or 2049 for labels); replace it with the official file"
        )
    ndim = magic & 0xFF
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=min(4 + 4 * ndim, len(raw)))
    if len(raw) < 4 + 4 * ndim or data.size != int(np.prod(dims)):
        raise DataError(
            f"data: {path} is truncated ({data.size} values, header says {dims}); "
            "replace it with the official file"
        )
    return data.reshape(dims).copy()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


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


def download_mnist(
    folder: str | Path,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    files: Mapping[str, str] = MNIST_FILES,
) -> Path:
    """Download the MNIST files (name -> md5) into ``folder``, trying mirrors in order.

    Files already there with the right md5 are kept. Each download goes to a
    temporary name and is renamed only once its md5 matches.

    Raises
    ------
    DataError
        On a checksum mismatch, or when every mirror fails.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in files.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
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
                f"place the MNIST files ({', '.join(files)}) in {folder} by hand"
            )
    return folder
