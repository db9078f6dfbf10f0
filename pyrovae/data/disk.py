"""Rows of a ``.npy`` file read from disk when they are needed: data larger than memory.

With ``data.memory_map = true`` the training split is a :class:`RowStore`: the file's
rows it holds, read (and converted to float32, 8-bit values to k / 255) only when
indexed, one minibatch at a time. Rows are read with positional reads (``os.preadv``)
of sorted runs of consecutive rows into a buffer of their own, so the file's pages
stay in the kernel's page cache, which the operating system reclaims, and not in the
process's resident memory, as the pages of a touched memory map would
(``benchmarks/memmap_rss.py`` measures both). :func:`file_chunks` reads a whole file
in chunks of bounded size for the checks; :func:`sample_rows` takes a bounded number of
rows where a whole split used to be taken (figures, the training ELBO).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
from tqdm.auto import tqdm

from pyrovae.data.source import as_values
from pyrovae.errors import DataError

__all__ = [
    "CHUNK_BYTES",
    "SAMPLE_ROWS",
    "NpyFile",
    "RowStore",
    "Rows",
    "file_chunks",
    "read_rows",
    "sample_rows",
]

CHUNK_BYTES = 16 * 2**20
"""Bytes of the file read at once by :func:`file_chunks` and :meth:`RowStore.load`."""

SAMPLE_ROWS = 10_000
"""Rows a stored training split gives where the whole split would be taken in memory."""

_PROGRESS_BYTES = 256 * 2**20
"""Files at least this big show a progress bar while they are checked."""


@dataclass(frozen=True)
class NpyFile:
    """Where a ``.npy`` file's values lie: the data start ``offset`` bytes in, C order.

    Attributes
    ----------
    path : Path
    offset : int
        Bytes of the header.
    dtype : numpy.dtype
        The stored values' type (byte order included).
    shape : tuple of int
        ``(N, ...)``; a row is the ``prod(shape[1:])`` values of one example.
    """

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @classmethod
    def of(cls, x: np.memmap) -> NpyFile:
        """The file behind ``np.load(path, mmap_mode="r")``, which touches no value.

        Raises
        ------
        DataError
            The array is stored in Fortran order (its rows are not contiguous).
        """
        if x.ndim > 1 and not x.flags.c_contiguous:
            raise DataError(
                f"data: {x.filename}: the array is stored in Fortran order; save it with "
                "np.save(path, np.ascontiguousarray(x)) to memory-map it"
            )
        return cls(Path(str(x.filename)), int(x.offset), x.dtype, tuple(int(s) for s in x.shape))

    @property
    def row_values(self) -> int:
        """Values per row D (an image's C * H * W)."""
        return int(np.prod(self.shape[1:], dtype=np.int64))

    @property
    def row_bytes(self) -> int:
        """Bytes per row."""
        return self.row_values * self.dtype.itemsize


def _read_into(fd: int, buffer: memoryview, offset: int) -> None:
    """Fill ``buffer`` with the file's bytes from ``offset`` (short reads continued)."""
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got == 0:
            raise DataError(f"data: the file ended {len(buffer) - done} bytes early")
        done += got


def _raw_rows(file: NpyFile, rows: np.ndarray) -> np.ndarray:
    """The stored values of sorted, distinct rows ``(m,)``: ``(m, D)`` of the file's
    dtype, each run of consecutive rows read at once."""
    size = file.row_bytes
    buffer = np.empty(len(rows) * size, dtype=np.uint8)
    if not len(rows):
        return buffer.view(file.dtype).reshape(0, file.row_values)
    view = buffer.data
    starts = np.flatnonzero(np.diff(rows) != 1) + 1
    bounds = np.concatenate([[0], starts, [len(rows)]]).tolist()
    with open(file.path, "rb", buffering=0) as f:
        for a, b in itertools.pairwise(bounds):
            _read_into(f.fileno(), view[a * size : b * size], file.offset + int(rows[a]) * size)
    return buffer.view(file.dtype).reshape(len(rows), file.row_values)


def read_rows(file: NpyFile, rows: np.ndarray) -> np.ndarray:
    """Rows of the file, in the order asked and repeats allowed, as float32.

    Parameters
    ----------
    file : NpyFile
    rows : numpy.ndarray, shape (m,), int
        Row numbers in ``[0, N)``.

    Returns
    -------
    numpy.ndarray, shape (m, D), float32
        :func:`as_values` of the rows.
    """
    if _sorted(rows):
        return as_values(_raw_rows(file, rows))
    distinct, inverse = np.unique(rows, return_inverse=True)
    return as_values(_raw_rows(file, distinct))[inverse]


def _sorted(rows: np.ndarray) -> bool:
    """True when ``rows`` are distinct and increasing (``np.unique`` kept their order)."""
    return bool(len(rows) < 2 or (np.diff(rows) > 0).all())


def file_chunks(file: NpyFile, progress: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """The whole file in consecutive chunks of about :data:`CHUNK_BYTES`.

    Yields
    ------
    first_row : int
        The number of the chunk's first row.
    raw : numpy.ndarray, shape (m, D)
        The stored values (the file's dtype).

    A progress bar on stderr counts the rows of files of 256 MiB or more (when stderr is
    a terminal and ``progress``).
    """
    n = file.shape[0]
    step = max(1, CHUNK_BYTES // max(file.row_bytes, 1))
    big = n * file.row_bytes >= _PROGRESS_BYTES
    with tqdm(
        total=n,
        desc=f"check {file.path.name}",
        unit="row",
        disable=None if big and progress else True,
    ) as bar:
        for first in range(0, n, step):
            rows = np.arange(first, min(first + step, n))
            yield first, _raw_rows(file, rows)
            bar.update(len(rows))


Rows: TypeAlias = "torch.Tensor | RowStore"
"""A split's rows ``(n, D)``: a float32 tensor in memory, or a :class:`RowStore`."""


class RowStore:
    """Some rows of a ``.npy`` file, read from disk when indexed.

    Indexing with an index tensor ``(B,)`` or a slice gives a float32 tensor ``(B, D)``
    of those rows on :attr:`device`, exactly the rows (and values) that loading the file
    into memory would give. Only the row numbers are held: ``8 n`` bytes.

    Parameters
    ----------
    file : NpyFile
    rows : torch.Tensor, shape (n,), int64
        The file's rows this store holds, in its order.
    device : torch.device or str
        Where indexed rows are put.
    """

    def __init__(
        self, file: NpyFile, rows: torch.Tensor, device: torch.device | str = "cpu"
    ) -> None:
        self.file = file
        self.rows = rows.to(device="cpu", dtype=torch.int64)
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        """``(n, D)``."""
        return torch.Size((self.rows.shape[0], self.file.row_values))

    @property
    def dtype(self) -> torch.dtype:
        """Rows are read as float32."""
        return torch.float32

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __repr__(self) -> str:
        return f"RowStore({self.file.path}, rows={len(self)}, device={self.device})"

    def to(self, device: torch.device | str) -> RowStore:
        """The same rows, put on ``device`` when indexed."""
        return RowStore(self.file, self.rows, device)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Rows ``index`` (positions in this store) as float32 ``(B, D)``."""
        if isinstance(index, torch.Tensor):
            index = index.cpu()
        picked = self.rows[index].numpy()
        return torch.from_numpy(read_rows(self.file, picked)).to(self.device)

    def load(self) -> torch.Tensor:
        """Every row in memory: float32 ``(n, D)`` on :attr:`device`, read in chunks."""
        out = torch.empty(self.shape, dtype=torch.float32)
        step = max(1, CHUNK_BYTES // max(self.file.row_bytes, 1))
        for first in range(0, len(self), step):
            out[first : first + step] = self[first : first + step]
        return out.to(self.device)


def sample_rows(x: Rows, limit: int = SAMPLE_ROWS) -> torch.Tensor:
    """Rows in memory: ``x`` itself when it is a tensor, else a store's first ``limit``
    rows (a split of the arrays source is in random order, so they are a random sample).

    Parameters
    ----------
    x : torch.Tensor or RowStore, shape (n, D)
    limit : int

    Returns
    -------
    torch.Tensor, shape (min(n, limit), D) for a store, (n, D) for a tensor
    """
    return x if isinstance(x, torch.Tensor) else x[:limit]
