"""The arrays source: a ``.npy`` (2-D, or 3-D images), ``.npz`` (``x``, optional ``y``)
or ``.csv`` file of the user's own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrovae.data.source import Source, one_line
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = ["load_arrays"]


def _read_csv(path: Path) -> np.ndarray:
    with path.open() as f:
        first = f.readline().split(",")
    try:
        [float(v) for v in first]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)


def load_arrays(spec: DataSpec) -> Source:
    """The array under ``x`` (or the only one) and the labels under ``y``, if any."""
    path = Path(spec.path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise DataError(f"data: {path} has suffix {suffix!r}; use a .npy, .npz or .csv file")
    if not path.is_file():
        raise DataError(f"data: file {path} does not exist; check data.path")
    try:
        if suffix == ".csv":
            arrays = {"x": _read_csv(path)}
        elif suffix == ".npy":
            arrays = {"x": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as npz:
                arrays = dict(npz)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"data: cannot read {path}: {one_line(err)}") from None
    if "x" not in arrays and len(arrays) != 1:
        raise DataError(f"data: {path} holds arrays {list(arrays)}; store the data under key 'x'")
    x = arrays.get("x", next(iter(arrays.values()), None))
    y = arrays.get("y") if "x" in arrays else None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"data: {path} holds {x.dtype} values; store numbers")
    return Source(x, y)
