"""Data sources, splits, binarization and checks, driven by a :class:`~pyrovae.spec.DataSpec`.

:func:`load_data` turns a data spec and the name of the likelihood into a
:class:`Dataset` of float32 tensors (train / validation / test), after checking
that the data suit the likelihood. Every problem raises a one-line
:class:`~pyrovae.errors.DataError` saying what is wrong and how to fix it.

Sources
-------
digits
    The 1,797 8x8 scikit-learn digits (bundled, no download), pixels / 16.
mnist
    IDX files (raw or ``.gz``) in ``spec.path``, pixels / 255. With the official
    train files, train and validation come from them (validation: their last
    rows) and test is the t10k set. With only the t10k files, they are split in
    order: the first ``1 - test_fraction`` rows are train (their last
    ``validation_fraction`` share is validation), the rest test; the default
    0.2 gives 8,000 / 2,000.
synthetic
    Linear-Gaussian data x = W z + b + noise * eps; the truth is kept.
arrays
    A ``.npy`` (2-D, or 3-D images), ``.npz`` (``x``, optional ``y``) or ``.csv`` file.

Other sources are split by a permutation seeded with ``spec.seed``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyrovae.errors import DataError
from pyrovae.spec import LIKELIHOODS, UNIT_INTERVAL_LIKELIHOODS, DataSpec

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "Dataset",
    "LinearGaussianTruth",
    "binarize",
    "download_mnist",
    "load_data",
    "read_idx",
]

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
_IDX_MAGIC = {2049: "labels", 2051: "images"}


@dataclass(frozen=True, eq=False)
class LinearGaussianTruth:
    """Parameters that generated synthetic data: x = weight @ z + bias + noise * eps, z ~ N(0, I).

    Attributes
    ----------
    weight : torch.Tensor, shape (observed_dim, latent_dim)
    bias : torch.Tensor, shape (observed_dim,)
    noise : float
        Standard deviation of the isotropic noise.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    noise: float


@dataclass(frozen=True, eq=False)
class Dataset:
    """Split, checked data, ready for training.

    Attributes
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"synthetic"`` or ``"arrays"``.
    train, validation, test : torch.Tensor, shape (n, D), float32
        Validation has 0 rows when ``validation_fraction == 0``.
    train_labels, validation_labels, test_labels : torch.Tensor, shape (n,), int64, or None
    image_shape : tuple of int or None
        (H, W) when rows are flattened images.
    dynamic_binarization : bool
        True when ``train`` holds probabilities to be binarized per minibatch.
    truth : LinearGaussianTruth or None
        The generating parameters of synthetic data.
    """

    name: str
    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    validation_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    image_shape: tuple[int, int] | None
    dynamic_binarization: bool
    truth: LinearGaussianTruth | None

    @property
    def dim(self) -> int:
        """Number of observed dimensions D."""
        return int(self.train.shape[1])


@dataclass
class _Source:
    """Raw data before checks: x (N, D) or (N, H, W), labels (N,), fixed test rows at the end."""

    x: np.ndarray
    y: np.ndarray | None
    ordered: bool = False
    n_test: int | None = None
    truth: LinearGaussianTruth | None = None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample x_bin ~ Bernoulli(x) elementwise; x (any shape) must lie in [0, 1].

    Drawn as ``u < x`` with u ~ U[0, 1), which is exactly Bernoulli(x) and about
    4x faster on CPU than ``torch.bernoulli`` (it runs once per minibatch under
    dynamic binarization).
    """
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


# ------------------------------------------------------------------------ MNIST


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
        raise DataError(f"data: cannot read IDX file {path}: {_one_line(err)}") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in _IDX_MAGIC:
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
                errors.append(f"{url}: {_one_line(err)}")
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


def _find(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _mnist_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Images (N, 28, 28) and labels (N,) of ``train`` or ``t10k``, or None if absent."""
    images = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1:
        raise DataError(f"data: {images} must hold images and {labels} labels; swap or replace")
    return x, y


def _load_mnist(spec: DataSpec) -> _Source:
    folder = Path(spec.path)
    test = _mnist_pair(folder, "t10k")
    if test is None and spec.download:
        download_mnist(folder)
        test = _mnist_pair(folder, "t10k")
    if test is None:
        raise DataError(
            f"data: MNIST files not found in {folder} (expected t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz, optionally train-images-idx3-ubyte.gz and "
            "train-labels-idx1-ubyte.gz, gzipped or not); put them there or set "
            "data.download = true"
        )
    train = _mnist_pair(folder, "train")
    if train is None:
        return _Source(test[0] / np.float32(255), test[1], ordered=True)
    if len(train[0]) != len(train[1]) or len(test[0]) != len(test[1]):
        raise DataError(f"data: MNIST images and labels in {folder} differ in number; re-download")
    x = np.concatenate([train[0], test[0]]) / np.float32(255)
    return _Source(x, np.concatenate([train[1], test[1]]), ordered=True, n_test=len(test[0]))


# ---------------------------------------------------------------- other sources


def _load_digits() -> _Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _Source(digits.images.astype(np.float32) / 16, digits.target)


def _load_synthetic(spec: DataSpec) -> _Source:
    s = spec.synthetic
    g = torch.Generator().manual_seed(spec.seed)
    weight = torch.randn(s.observed_dim, s.latent_dim, generator=g)
    bias = torch.randn(s.observed_dim, generator=g)
    z = torch.randn(s.n, s.latent_dim, generator=g)
    x = z @ weight.T + bias + s.noise * torch.randn(s.n, s.observed_dim, generator=g)
    truth = LinearGaussianTruth(weight=weight, bias=bias, noise=float(s.noise))
    return _Source(x.numpy(), None, truth=truth)


def _read_csv(path: Path) -> np.ndarray:
    with path.open() as f:
        first = f.readline().split(",")
    try:
        [float(v) for v in first]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)


def _load_arrays(spec: DataSpec) -> _Source:
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
        raise DataError(f"data: cannot read {path}: {_one_line(err)}") from None
    if "x" not in arrays and len(arrays) != 1:
        raise DataError(f"data: {path} holds arrays {list(arrays)}; store the data under key 'x'")
    x = arrays.get("x", next(iter(arrays.values()), None))
    y = arrays.get("y") if "x" in arrays else None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"data: {path} holds {x.dtype} values; store numbers")
    return _Source(x, y)


# ----------------------------------------------------------------------- checks


def _check_x(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Check dims and finiteness; return x as float32 (N, D) and the image shape."""
    if x.ndim not in (2, 3):
        raise DataError(
            f"data: expected a 2-D (examples, features) or 3-D (examples, height, width) "
            f"array, got {x.ndim}-D with shape {x.shape}; reshape the data"
        )
    image_shape = (int(x.shape[1]), int(x.shape[2])) if x.ndim == 3 else None
    x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"data: {int(bad.sum())} values are NaN or infinite (first at row {row}, "
            f"column {col}); clean the data first"
        )
    return x, image_shape


def _check_labels(y: np.ndarray | None, n: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(
            f"data: labels have shape {y.shape} but there are {n} examples; "
            "give one label per example"
        )
    if not np.issubdtype(y.dtype, np.number) or not np.array_equal(y, np.round(y)):
        raise DataError("data: labels must be integers; store class indices")
    return y.astype(np.int64)


def _check_range(x: np.ndarray, likelihood: str, mode: str) -> None:
    if likelihood in UNIT_INTERVAL_LIKELIHOODS or mode != "none":
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if low < 0 or high > 1:
            need = f"the {likelihood!r} likelihood"
            if likelihood not in UNIT_INTERVAL_LIKELIHOODS:
                need = f"data.binarize = {mode!r}"
            raise DataError(
                f"data: values range from {low:.4g} to {high:.4g} but {need} needs [0, 1]; "
                "rescale the data to [0, 1] or use model.likelihood.name = 'gaussian'"
            )
    if likelihood == "bernoulli" and mode == "none":
        share = float(np.mean((x > 0) & (x < 1))) if x.size else 0.0
        if share > 0:
            raise DataError(
                f"data: {share:.1%} of values lie strictly between 0 and 1 but a 'bernoulli' "
                "likelihood with data.binarize = 'none' needs 0/1 data; set data.binarize = "
                "'dynamic' or 'static', or model.likelihood.name = 'continuous_bernoulli'"
            )


# ------------------------------------------------------------------------ split


def _split(n: int, spec: DataSpec, ordered: bool, n_test: int | None) -> list[torch.Tensor]:
    """Index tensors of train, validation and test rows."""
    if n_test is None:
        n_test = min(max(1, round(spec.test_fraction * n)), n - 1)
    n_rest = n - n_test
    n_val = min(round(spec.validation_fraction * n_rest), n_rest - 1)
    if n_rest < 1 or n_test < 1:
        raise DataError(
            f"data: {n} examples are too few for a non-empty train and test split; give at least 2"
        )
    g = torch.Generator().manual_seed(spec.seed)
    order = torch.arange(n) if ordered else torch.randperm(n, generator=g)
    return list(torch.split(order, [n_rest - n_val, n_val, n_test]))


def load_data(spec: DataSpec, likelihood: str) -> Dataset:
    """Load, check, split and binarize the data described by ``spec``.

    Parameters
    ----------
    spec : DataSpec
    likelihood : str
        One of ``"bernoulli"``, ``"continuous_bernoulli"``, ``"gaussian"``, ``"laplace"``.

    Returns
    -------
    Dataset
        float32 (n, D) splits; ``binarize = "auto"`` means dynamic for
        ``"bernoulli"`` and none otherwise; ``spec.limit > 0`` keeps the first
        ``limit`` training rows.

    Raises
    ------
    DataError
        Missing or unreadable files, bad shapes, NaN/inf, too few rows, labels
        of the wrong length, or values that do not suit the likelihood.
    """
    if likelihood not in LIKELIHOODS:
        raise DataError(f"data: unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")
    mode = spec.binarize
    if mode == "auto":
        mode = "dynamic" if likelihood == "bernoulli" else "none"
    loaders = {
        "digits": _load_digits,
        "mnist": lambda: _load_mnist(spec),
        "synthetic": lambda: _load_synthetic(spec),
        "arrays": lambda: _load_arrays(spec),
    }
    if spec.name not in loaders:
        raise DataError(f"data: unknown source {spec.name!r}; use one of {list(loaders)}")
    source = loaders[spec.name]()
    x, image_shape = _check_x(source.x)
    y = _check_labels(source.y, len(x))
    _check_range(x, likelihood, mode)
    parts = _split(len(x), spec, source.ordered, source.n_test)
    if spec.limit > 0:
        parts[0] = parts[0][: spec.limit]
    xt = torch.from_numpy(x)
    splits = [xt[i].contiguous() for i in parts]
    labels = [None if y is None else torch.from_numpy(y)[i].contiguous() for i in parts]
    g = torch.Generator().manual_seed(spec.seed)
    if mode == "static":
        splits = [binarize(s, g) for s in splits]
    elif mode == "dynamic":
        splits[1:] = [binarize(s, g) for s in splits[1:]]
    return Dataset(
        name=spec.name,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        train_labels=labels[0],
        validation_labels=labels[1],
        test_labels=labels[2],
        image_shape=image_shape,
        dynamic_binarization=mode == "dynamic",
        truth=source.truth,
    )
