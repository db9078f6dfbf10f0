"""The arrays source: a ``.npy`` (2-D, or 3-D and 4-D images), ``.npz`` (``x``, optional
``y``) or ``.csv`` file of the user's own data, and optionally its labels in a file of their
own (``data.labels_path``: a 1-D ``.npy`` or a one-column ``.csv``).

A uint8 array holds 8-bit images: its values k become k / 255 (256 levels); other
arrays are taken as they are. With ``data.memory_map`` a ``.npy`` file is opened
memory-mapped and none of its values is read here (:mod:`pyrovae.data.disk` reads them).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pyrovae.data.source import Source, as_values, one_line
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = ["load_arrays"]

_NO_DATA = "loadtxt: input contained no data"
"""The start of numpy's UserWarning for a text file without data rows."""


def _is_numbers(line: str) -> bool:
    """True when a CSV line holds only numbers (it is data, not a header)."""
    try:
        [float(v) for v in line.split(",")]
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    """A CSV file's rows as float64 (N, D); a first line that is not numbers is a header.

    ``utf-8-sig`` drops the byte-order mark some spreadsheets write, which would
    otherwise turn the first data row into a header.
    """
    with path.open(encoding="utf-8-sig") as f:
        first = f.readline()
    header = not _is_numbers(first)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NO_DATA, category=UserWarning)
        x = np.loadtxt(
            path,
            delimiter=",",
            skiprows=int(header),
            ndmin=2,
            dtype=np.float64,
            encoding="utf-8-sig",
        )
    if len(x) == 0:
        what = "has a header line but no data rows" if first.strip() else "is empty"
        raise DataError(
            f"data: {path} {what}; write one example per line, its values separated by commas"
        )
    return x


def _read(path: Path, suffix: str, memory_map: bool = False) -> dict[str, np.ndarray]:
    """Every array in the file, by name (``x`` for a .npy or .csv file); a .npy file
    memory-mapped (read-only, no value read) with ``memory_map``."""
    try:
        if suffix == ".csv":
            return {"x": _read_csv(path)}
        if suffix == ".npy":
            if memory_map:
                return {"x": np.load(path, mmap_mode="r", allow_pickle=False)}
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as npz:
            return dict(npz)
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as err:  # UnicodeDecodeError is a ValueError
        raise DataError(f"data: cannot read {path}: {one_line(err)}") from None


def load_arrays(spec: DataSpec) -> Source:
    """The array under ``x`` (or the only one) and the labels under ``y``, if any."""
    path = Path(spec.path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise DataError(f"data: {path} has suffix {suffix!r}; use a .npy, .npz or .csv file")
    if not path.is_file():
        raise DataError(f"data: file {path} does not exist; check data.path")
    arrays = _read(path, suffix, spec.memory_map)
    if "x" not in arrays and len(arrays) != 1:
        raise DataError(f"data: {path} holds arrays {list(arrays)}; store the data under key 'x'")
    x = arrays["x"] if "x" in arrays else next(iter(arrays.values()))
    y = arrays.get("y") if "x" in arrays else None
    if x.dtype.kind not in "biuf":  # complex, strings, dates
        raise DataError(f"data: {path} holds {x.dtype} values; store real numbers")
    if spec.labels_path:
        y = _read_labels(Path(spec.labels_path))
    levels = 256 if x.dtype == np.uint8 else None
    if not spec.memory_map:
        x = as_values(x) if levels else x
    return Source(x, y, origin=str(path), levels=levels)


def _read_labels(path: Path) -> np.ndarray:
    """One label per row from a 1-D ``.npy`` or a one-column ``.csv`` file (a header
    line allowed); the checks of :func:`~pyrovae.data.checks.check_labels` follow."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DataError(f"data: labels file {path} has suffix {suffix!r}; use .npy or .csv")
    if not path.is_file():
        raise DataError(f"data: labels file {path} does not exist; check data.labels_path")
    y = _read(path, suffix)["x"]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"data: labels file {path} holds shape {y.shape}; give one label per row (1 column)"
        )
    return y
