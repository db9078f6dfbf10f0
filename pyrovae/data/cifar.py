"""The CIFAR-10 source: the official python batches, from their folder or their archive
(optionally downloaded).

``data.path`` is the ``cifar-10-batches-py`` folder (``data_batch_1`` .. ``data_batch_5``
and ``test_batch``), a folder holding it, or a folder holding the official
``cifar-10-python.tar.gz``, which is read in place without extracting it. With
``data.download = true`` and none of these there, the archive is downloaded into
``data.path`` and its md5 checked.

The batches are python pickles: a dict with ``b"data"``, uint8 (10000, 3072) rows, each
an image's red, green and blue 32 x 32 planes, and ``b"labels"``. They are unpickled by
an unpickler that refuses every class except the numpy ones an array needs, so a
tampered file cannot run code. Train is the data batches present, in order; test is
``test_batch`` (the official split, kept last). Pixels are divided by 255;
``data.color = "grayscale"`` first converts them as Pillow does (ITU-R 601-2 luma).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pyrovae.data.download import download_files
from pyrovae.data.source import Source, as_values, one_line
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_MIRRORS",
    "download_cifar10",
    "grayscale",
    "load_cifar10",
    "read_batch",
]

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
"""The meaning of labels 0 .. 9 (the archive's ``batches.meta``)."""

_FOLDER = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_COLUMNS = 3 * 32 * 32
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
"""The only globals a batch may name: what a pickled numpy array needs (``_reconstruct``
below pickle protocol 5, ``_frombuffer`` from 5; ``numpy.core`` before numpy 2)."""


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data and numpy arrays, and refuses every other
    class or function a pickle names."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def _key(batch: dict[Any, Any], name: str) -> Any:
    """``batch[b"name"]`` (the official files), or ``batch["name"]``; None if neither."""
    return batch.get(name.encode(), batch.get(name))


def _bad(where: str, found: str) -> DataError:
    return DataError(
        f"data: {where} {found}, but a CIFAR-10 batch is a dict whose b'data' is uint8 of "
        f"shape (10000, {_COLUMNS}) (any number of rows) with one b'labels' entry per row; "
        "replace it with the official file"
    )


def read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle and check one CIFAR batch file.

    Parameters
    ----------
    raw : bytes
        The file's contents.
    where : str
        The file (or archive member), named in error messages.

    Returns
    -------
    x : numpy.ndarray, shape (n, 3, 32, 32), uint8
    y : numpy.ndarray, shape (n,), int64, values 0 .. 9

    Raises
    ------
    DataError
        Not a pickle, a pickle naming a class other than numpy's array ones, not a dict,
        ``b"data"`` not uint8 with 3072 columns, or labels that are not one integer in
        0 .. 9 per row.
    """
    try:
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # anything a damaged or foreign pickle raises
        raise DataError(f"data: cannot read CIFAR-10 batch {where}: {one_line(err)}") from None
    if not isinstance(batch, dict):
        raise _bad(where, f"holds a {type(batch).__name__}")
    x = _key(batch, "data")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2:
        what = f"{x.dtype} of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise _bad(where, f"has b'data' {what}")
    if x.shape[1] != _COLUMNS:
        raise _bad(where, f"has b'data' of shape {x.shape}")
    y = np.asarray(_key(batch, "labels"))
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise _bad(where, f"has {len(x)} rows of b'data' but b'labels' of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise _bad(where, f"has labels from {y.min()} to {y.max()}, not 0 .. 9")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _batch_folder(folder: Path) -> Path | None:
    """The folder holding the batch files: ``folder`` or its ``cifar-10-batches-py``."""
    for candidate in (folder, folder / _FOLDER):
        if any((candidate / name).is_file() for name in (*_TRAIN, _TEST)):
            return candidate
    return None


def _from_folder(folder: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, x, y)`` of each batch file present in ``folder``."""
    for name in (*_TRAIN, _TEST):
        path = folder / name
        if path.is_file():
            try:
                raw = path.read_bytes()
            except OSError as err:
                raise DataError(f"data: cannot read {path}: {one_line(err)}") from None
            yield name, *read_batch(raw, str(path))


def _from_archive(archive: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, x, y)`` of each batch in the archive, read in one pass without extracting
    anything to disk."""
    wanted = {f"{_FOLDER}/{name}": name for name in (*_TRAIN, _TEST)}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name)
                handle = tar.extractfile(member) if name and member.isfile() else None
                if name and handle is not None:
                    yield name, *read_batch(handle.read(), f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"data: cannot read {archive}: {one_line(err)}; delete it and download it again"
        ) from None


def download_cifar10(folder: str | Path, mirrors: tuple[str, ...] = CIFAR10_MIRRORS) -> Path:
    """Download ``cifar-10-python.tar.gz`` into ``folder`` and check its md5.

    Returns
    -------
    Path
        The archive.

    Raises
    ------
    DataError
        On a checksum mismatch (nothing is left behind), or when every mirror fails.
    """
    download_files(folder, mirrors, {CIFAR10_ARCHIVE: CIFAR10_MD5}, "CIFAR-10")
    return Path(folder) / CIFAR10_ARCHIVE


def _batches(folder: Path, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every batch present, by file name, from the batch folder or else the archive."""
    batch_folder = _batch_folder(folder)
    if batch_folder is not None:
        return {name: (x, y) for name, x, y in _from_folder(batch_folder)}
    archive = folder / CIFAR10_ARCHIVE
    if not archive.is_file() and download:
        download_cifar10(folder)
    if archive.is_file():
        return {name: (x, y) for name, x, y in _from_archive(archive)}
    raise DataError(
        f"data: CIFAR-10 files not found in {folder} (expected data_batch_1 .. data_batch_5 "
        f"and test_batch, there or in its {_FOLDER} folder, or {CIFAR10_ARCHIVE}); put them "
        "there or set data.download = true"
    )


def grayscale(x: np.ndarray) -> np.ndarray:
    """RGB images to grey as Pillow's ``convert("L")`` does: L = (19595 R + 38470 G +
    7471 B + 2^15) >> 16, i.e. ITU-R 601-2 luma, rounded.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, 3, H, W), uint8

    Returns
    -------
    numpy.ndarray, shape (N, 1, H, W), uint8
    """
    r, g, b = (x[:, i : i + 1].astype(np.uint32) for i in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16).astype(np.uint8)


def load_cifar10(spec: DataSpec) -> Source:
    """Images ``(N, 3, 32, 32)`` (or ``(N, 1, 32, 32)`` with ``color = "grayscale"``) in
    [0, 1] and labels 0 .. 9, ``test_batch`` last."""
    folder = Path(spec.path)
    batches = _batches(folder, spec.download)
    train = [batches[name] for name in _TRAIN if name in batches]
    if _TEST not in batches or not train:
        missing = _TEST if _TEST not in batches else "data_batch_1 .. data_batch_5"
        raise DataError(
            f"data: {folder} holds CIFAR-10 batches {sorted(batches)} but no {missing}; "
            "the data need test_batch and at least one data batch: add the official files"
        )
    test = batches[_TEST]
    x = np.concatenate([b[0] for b in train] + [test[0]])
    if spec.color == "grayscale":
        x = grayscale(x)
    y = np.concatenate([b[1] for b in train] + [test[1]])
    return Source(
        as_values(x),
        y,
        ordered=True,
        n_test=len(test[0]),
        origin=str(folder),
        levels=256,
        class_names=CIFAR10_CLASSES,
    )
