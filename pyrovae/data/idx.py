"""The IDX file format of MNIST and its look-alikes, and the table of IDX data sets.

:func:`read_idx` reads a file, raw or gzipped. :data:`IDX_DATASETS` lists the data sets
stored as the four MNIST files (``train-*`` / ``t10k-*`` images and labels): MNIST,
Fashion-MNIST and Kuzushiji-MNIST, each with its official mirrors, md5s and class names;
:func:`download_idx` fetches one into a folder (:func:`~pyrovae.data.download.download_files`).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyrovae.data.download import download_files
from pyrovae.data.source import one_line
from pyrovae.errors import DataError

__all__ = [
    "IDX_DATASETS",
    "IDX_MAGIC",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "IdxDataset",
    "download_idx",
    "download_mnist",
    "read_idx",
]


@dataclass(frozen=True)
class IdxDataset:
    """A data set stored as MNIST's four IDX files.

    Attributes
    ----------
    title : str
        Its name in messages, e.g. ``"Fashion-MNIST"``.
    files : dict of str to str
        The official gzipped file names -> md5.
    mirrors : tuple of str
        Base URLs to download them from, tried in order.
    class_names : tuple of str
        The meaning of labels 0, 1, ...
    """

    title: str
    files: dict[str, str]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]


def _files(*md5s: str) -> dict[str, str]:
    """The four official file names, in MNIST's order, with their md5s."""
    names = [
        f"{p}-{k}-idx{d}-ubyte.gz"
        for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    ]
    return dict(zip(names, md5s, strict=True))


IDX_DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        "MNIST",
        _files(
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        tuple(str(d) for d in range(10)),
    ),
    "fashion_mnist": IdxDataset(
        "Fashion-MNIST",
        _files(
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
    ),
    "kmnist": IdxDataset(
        "Kuzushiji-MNIST",
        _files(
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134",
        ),
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}  # fmt: skip
"""Every IDX data set by ``data.name``: official files and md5s (as torchvision lists
them), mirrors and class names."""

MNIST_FILES: dict[str, str] = IDX_DATASETS["mnist"].files
MNIST_MIRRORS: tuple[str, ...] = IDX_DATASETS["mnist"].mirrors
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
            f"data: {path} is not an IDX file (magic number {magic}, expected 2051 "
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


def download_idx(folder: str | Path, dataset: IdxDataset) -> Path:
    """Download ``dataset``'s four official files into ``folder``, md5-checked.

    Raises
    ------
    DataError
        On a checksum mismatch, or when every mirror fails.
    """
    return download_files(folder, dataset.mirrors, dataset.files, dataset.title)


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
    return download_files(folder, mirrors, files, "MNIST")
