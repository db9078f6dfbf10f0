"""Tests of pyrovae.data: sources, IDX reading, download, splits, binarization, checks."""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrovae.data.mnist
from pyrovae.data import (
    MNIST_FILES,
    Dataset,
    binarize,
    download_mnist,
    load_data,
    read_idx,
)
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec, SyntheticSpec

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


# ---------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (magic 2051 for 3-D images, 2049 for 1-D labels)."""
    magic = 0x800 + array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist(folder: Path, prefix: str, n: int, seed: int, gz: bool = True):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


def arrays_spec(path: Path, **kw) -> DataSpec:
    return replace(DataSpec(), name="arrays", path=str(path), **kw)


def data_error(spec: DataSpec, likelihood: str = "gaussian") -> str:
    with pytest.raises(DataError) as info:
        load_data(spec, likelihood)
    message = str(info.value)
    assert "\n" not in message
    return message


def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


# ---------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_images_and_labels(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    got_images = read_idx(write_idx(tmp_path / f"img{suffix}", images))
    got_labels = read_idx(write_idx(tmp_path / f"lab{suffix}", labels))
    assert got_images.dtype == np.uint8 and got_images.shape == (2, 3, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_bad_magic_and_truncated(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(struct.pack(">II", 1234, 1) + b"\x00")
    with pytest.raises(DataError, match="magic number 1234"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(short)


# ---------------------------------------------------------------------- MNIST


def test_mnist_t10k_only_is_split_in_order(tmp_path):
    images, labels = write_mnist(tmp_path, "t10k", 50, seed=0)
    spec = replace(
        DataSpec(), name="mnist", path=str(tmp_path), test_fraction=0.2, validation_fraction=0.0
    )
    data = load_data(spec, "gaussian")
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 0, 10)
    assert data.image_shape == (1, 28, 28) and data.dim == 784
    flat = torch.from_numpy(images.reshape(50, -1) / np.float32(255))
    torch.testing.assert_close(data.train, flat[:40])
    torch.testing.assert_close(data.test, flat[40:])
    assert data.test_labels.dtype == torch.int64
    np.testing.assert_array_equal(data.test_labels.numpy(), labels[40:])


def test_mnist_t10k_only_validation_is_end_of_train_part(tmp_path):
    images, _ = write_mnist(tmp_path, "t10k", 50, seed=0, gz=False)
    spec = replace(DataSpec(), name="mnist", path=str(tmp_path), validation_fraction=0.25)
    data = load_data(spec, "gaussian")
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 10, 10)
    flat = torch.from_numpy(images.reshape(50, -1) / np.float32(255))
    torch.testing.assert_close(data.validation, flat[30:40])


def test_mnist_with_train_files_uses_official_test(tmp_path):
    train_images, train_labels = write_mnist(tmp_path, "train", 30, seed=1)
    _, test_labels = write_mnist(tmp_path, "t10k", 12, seed=2, gz=False)
    spec = replace(DataSpec(), name="mnist", path=str(tmp_path), validation_fraction=0.1)
    data = load_data(spec, "gaussian")
    assert (len(data.train), len(data.validation), len(data.test)) == (27, 3, 12)
    np.testing.assert_array_equal(data.validation_labels.numpy(), train_labels[27:])
    np.testing.assert_array_equal(data.test_labels.numpy(), test_labels)
    torch.testing.assert_close(
        data.train[0], torch.from_numpy(train_images[0].ravel() / 255.0).float()
    )


def test_mnist_missing_folder_message(tmp_path):
    folder = tmp_path / "nowhere"
    message = data_error(replace(DataSpec(), name="mnist", path=str(folder)))
    assert str(folder) in message
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert "data.download = true" in message


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST t10k files not in {REAL_MNIST}")
def test_real_mnist_t10k_split():
    spec = replace(DataSpec(), name="mnist", path=str(REAL_MNIST), validation_fraction=0.0)
    data = load_data(spec, "gaussian")
    assert (len(data.train), len(data.validation), len(data.test)) == (8000, 0, 2000)
    assert data.dim == 784 and data.train.dtype == torch.float32
    assert float(data.train.min()) == 0.0 and float(data.train.max()) == 1.0
    assert set(data.test_labels.unique().tolist()) == set(range(10))


# ---------------------------------------------------------------------- download


def test_mnist_file_table():
    assert sorted(MNIST_FILES) == sorted(
        f"{p}-{k}-idx{d}-ubyte.gz"
        for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    )
    assert all(len(md5) == 32 for md5 in MNIST_FILES.values())


def test_mnist_download_flag_calls_download(tmp_path, monkeypatch):
    calls = []

    def fake_download(folder, dataset):
        calls.append((Path(folder), dataset.title))
        Path(folder).mkdir()
        write_mnist(Path(folder), "t10k", 10, seed=0)
        return Path(folder)

    monkeypatch.setattr(pyrovae.data.mnist, "download_idx", fake_download)
    spec = replace(DataSpec(), name="mnist", path=str(tmp_path / "m"), download=True)
    data = load_data(spec, "gaussian")
    assert calls == [(tmp_path / "m", "MNIST")] and len(data.test) == 2


def make_mirror(folder: Path) -> dict[str, str]:
    """Gzipped IDX files in ``folder``; returns name -> md5."""
    folder.mkdir()
    files = {}
    for name, array in [
        ("t10k-images-idx3-ubyte.gz", np.ones((4, 28, 28), np.uint8)),
        ("t10k-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8)),
    ]:
        path = write_idx(folder / name, array)
        files[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return files


def test_download_mnist_from_file_mirror(tmp_path):
    files = make_mirror(tmp_path / "mirror")
    dead = (tmp_path / "dead").as_uri() + "/"
    target = download_mnist(tmp_path / "out", [dead, (tmp_path / "mirror").as_uri()], files)
    assert sorted(p.name for p in target.iterdir()) == sorted(files)
    np.testing.assert_array_equal(read_idx(target / "t10k-labels-idx1-ubyte.gz"), np.arange(4))


def test_download_mnist_checksum_mismatch_leaves_nothing(tmp_path):
    files = make_mirror(tmp_path / "mirror")
    name = "t10k-images-idx3-ubyte.gz"
    wrong = {name: "0" * 32}
    with pytest.raises(DataError) as info:
        download_mnist(tmp_path / "out", [(tmp_path / "mirror").as_uri()], wrong)
    message = str(info.value)
    assert name in message and "0" * 32 in message and files[name] in message
    assert list((tmp_path / "out").iterdir()) == []


def test_download_mnist_all_mirrors_fail(tmp_path):
    with pytest.raises(DataError, match="by hand"):
        download_mnist(tmp_path / "out", [(tmp_path / "dead").as_uri()], {"a.gz": "0" * 32})
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------- digits


def test_digits_shapes_range_labels():
    data = load_data(DataSpec(), "gaussian")
    assert isinstance(data, Dataset) and data.name == "digits"
    assert len(data.train) + len(data.validation) + len(data.test) == 1797
    assert len(data.test) == round(0.2 * 1797)
    assert data.dim == 64 and data.image_shape == (1, 8, 8)
    assert 0.0 <= float(data.train.min()) and float(data.train.max()) <= 1.0
    assert data.train_labels.shape == (len(data.train),)
    assert set(data.train_labels.unique().tolist()) == set(range(10))
    for x in (data.train, data.validation, data.test):
        assert x.dtype == torch.float32 and x.is_contiguous()


def test_split_is_seeded():
    a, b = load_data(DataSpec(), "gaussian"), load_data(DataSpec(), "gaussian")
    c = load_data(replace(DataSpec(), seed=1), "gaussian")
    assert torch.equal(a.test, b.test)
    assert not torch.equal(a.test, c.test)


# ---------------------------------------------------------------------- synthetic


def synthetic_spec(n: int = 200, seed: int = 0) -> DataSpec:
    syn = SyntheticSpec(n=n, observed_dim=5, latent_dim=2, noise=0.5)
    return replace(DataSpec(), name="synthetic", synthetic=syn, seed=seed)


def test_synthetic_reproducible():
    a, b = load_data(synthetic_spec(), "gaussian"), load_data(synthetic_spec(), "gaussian")
    assert torch.equal(a.train, b.train) and torch.equal(a.truth.weight, b.truth.weight)
    assert a.truth.weight.shape == (5, 2) and a.truth.bias.shape == (5,)
    assert a.truth.noise == 0.5 and a.train_labels is None
    assert not torch.equal(a.train, load_data(synthetic_spec(seed=3), "gaussian").train)


def test_synthetic_covariance_matches_truth():
    n = 20_000
    data = load_data(replace(synthetic_spec(n), validation_fraction=0.0), "gaussian")
    x = torch.cat([data.train, data.test]).double()
    w = data.truth.weight.double()
    sigma = w @ w.T + data.truth.noise**2 * torch.eye(5, dtype=torch.float64)
    # Tolerances are 4 standard errors per entry, each entry against its own SE.
    # For Gaussian x, Var(S_ij) = (sigma_ii sigma_jj + sigma_ij^2) / n and
    # Var(xbar_i) = sigma_ii / n. At 4 SE a calibrated entry fails with probability
    # 6.3e-5, so the 15 distinct covariances and 5 means together fail about 1e-3
    # of seeds; this seed's largest |z| is 1.5 (covariance) and 2.1 (mean).
    # The mean's tolerance used to be 5 SE of the widest dimension, which is 12 SE
    # of the narrowest here (sigma_ii runs from 0.93 to 5.3), and the covariance's
    # was 5 SE: a last coordinate shifted by 0.04 (6 SE) and a noise scale 8% too
    # large (z = 4.2 on sigma_44) both passed; both fail now.
    d = sigma.diag()
    stderr = ((d[:, None] * d[None, :] + sigma**2) / n).sqrt()
    cov_z = (torch.cov(x.T) - sigma) / stderr
    assert cov_z.abs().max() < 4, cov_z
    mean_z = (x.mean(0) - data.truth.bias.double()) / (d / n).sqrt()
    assert mean_z.abs().max() < 4, mean_z


# ---------------------------------------------------------------------- arrays


def test_arrays_npy_2d_and_3d(tmp_path):
    x = np.random.default_rng(0).random((20, 6))
    np.save(tmp_path / "x.npy", x)
    data = load_data(arrays_spec(tmp_path / "x.npy"), "gaussian")
    assert data.dim == 6 and data.image_shape is None and data.train_labels is None
    assert len(data.train) + len(data.validation) + len(data.test) == 20
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((20, 3, 4)))
    data = load_data(arrays_spec(tmp_path / "img.npy"), "gaussian")
    assert data.dim == 12 and data.image_shape == (1, 3, 4)


def test_arrays_npz_with_labels_and_single_array(tmp_path):
    x = np.random.default_rng(0).random((20, 3))
    y = np.arange(20) % 4
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    data = load_data(arrays_spec(tmp_path / "xy.npz", validation_fraction=0.0), "gaussian")
    rows = {tuple(np.round(r, 5)): i for i, r in enumerate(x.astype(np.float32))}
    for xs, ys in [(data.train, data.train_labels), (data.test, data.test_labels)]:
        for row, label in zip(xs.numpy(), ys.tolist(), strict=True):
            assert y[rows[tuple(np.round(row, 5))]] == label
    np.savez(tmp_path / "one.npz", data=x)
    assert load_data(arrays_spec(tmp_path / "one.npz"), "gaussian").dim == 3


@pytest.mark.parametrize("header", [False, True])
def test_arrays_csv(tmp_path, header):
    x = np.random.default_rng(0).random((10, 3))
    path = tmp_path / "x.csv"
    np.savetxt(path, x, delimiter=",", header="a,b,c" if header else "", comments="")
    data = load_data(arrays_spec(path, validation_fraction=0.0), "gaussian")
    assert data.dim == 3 and len(data.train) + len(data.test) == 10
    got = torch.cat([data.train, data.test]).numpy()
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(x, axis=0), rtol=1e-6)


# ---------------------------------------------------------------------- checks


def test_error_nan(tmp_path):
    x = np.zeros((10, 20))
    x[7, 12] = np.nan
    x[8, 1] = np.inf
    np.save(tmp_path / "x.npy", x)
    message = data_error(arrays_spec(tmp_path / "x.npy"))
    assert "2 values are NaN or infinite" in message and "row 7, column 12" in message


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4, 5, 6)])
def test_error_dims(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape))
    message = data_error(arrays_spec(tmp_path / "x.npy"))
    assert f"got {len(shape)}-D" in message and "2-D" in message and "4-D" in message


def test_channel_images_keep_their_shape(tmp_path):
    """(N, C, H, W) arrays are images of C channels, flattened channel-major."""
    x = np.random.default_rng(0).random((20, 3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    data = load_data(DataSpec(name="arrays", path=str(tmp_path / "x.npy")), "gaussian")
    assert data.image_shape == (3, 4, 5) and data.dim == 60
    rows = torch.cat([data.train, data.validation, data.test])
    assert sorted(map(tuple, rows.numpy().tolist())) == sorted(
        map(tuple, x.reshape(20, 60).tolist())
    )


def test_error_too_few_rows(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3)))
    assert "too few" in data_error(arrays_spec(tmp_path / "x.npy"))


def test_error_out_of_range_for_bernoulli(tmp_path):
    np.save(tmp_path / "x.npy", np.linspace(-2, 3, 40).reshape(10, 4))
    for likelihood in ("bernoulli", "continuous_bernoulli"):
        message = data_error(arrays_spec(tmp_path / "x.npy"), likelihood)
        assert "-2" in message and "3" in message and "[0, 1]" in message
        assert "rescale" in message and "gaussian" in message


def test_error_non_binary_with_binarize_none(tmp_path):
    x = np.zeros((10, 4))
    x[:, 0] = 0.5
    np.save(tmp_path / "x.npy", x)
    message = data_error(arrays_spec(tmp_path / "x.npy", binarize="none"), "bernoulli")
    assert "25.0%" in message and "'dynamic'" in message and "continuous_bernoulli" in message
    x[:, 0] = 1.0
    np.save(tmp_path / "x.npy", x)
    assert load_data(arrays_spec(tmp_path / "x.npy", binarize="none"), "bernoulli").dim == 4


def test_error_bad_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("1,2\n3,4\n")
    message = data_error(arrays_spec(tmp_path / "x.txt"))
    assert "'.txt'" in message and ".npy" in message
    message = data_error(arrays_spec(tmp_path / "missing.npy"))
    assert str(tmp_path / "missing.npy") in message and "does not exist" in message


def test_error_unreadable_file(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    assert "cannot read" in data_error(arrays_spec(tmp_path / "x.npy"))


def test_error_label_length_mismatch(tmp_path):
    path = tmp_path / "xy.npz"
    np.savez(path, x=np.zeros((10, 3)), y=np.zeros(9, dtype=int))
    message = data_error(arrays_spec(path))
    assert message == (
        f"data: {path}: labels have shape (9,) but there are 10 examples; "
        "give one label per example (a 1-D array)"
    )
    np.savez(path, x=np.zeros((10, 3)), y=np.zeros((10, 1), dtype=int))
    assert "labels have shape (10, 1)" in data_error(arrays_spec(path))


def test_error_npy_without_rows(tmp_path):
    for shape in [(0, 5), (0, 4, 4)]:
        path = tmp_path / "x.npy"
        np.save(path, np.zeros(shape))
        message = data_error(arrays_spec(path))
        assert re.fullmatch(
            rf"data: {re.escape(str(path))}: the array has no examples \(shape "
            rf"{re.escape(str(shape))}\); give at least 2 examples, one per row",
            message,
        ), message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("\n\n", "is empty", id="blank-lines"),
        pytest.param("a,b,c\n", "has a header line but no data rows", id="header-only"),
        pytest.param("a,b,c\n\n", "has a header line but no data rows", id="header-blank"),
    ],
)
def test_error_csv_without_rows(tmp_path, text, what):
    path = tmp_path / "x.csv"
    path.write_text(text)
    # data_error runs under pytest's warning filters; numpy's "no data" UserWarning must not
    # escape either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = data_error(arrays_spec(path))
    assert message == (
        f"data: {path} {what}; write one example per line, its values separated by commas"
    )


def test_csv_with_byte_order_mark_keeps_first_row(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("\ufeff1,2\n3,4\n5,6\n", encoding="utf-8")
    data = load_data(arrays_spec(path, validation_fraction=0.0), "gaussian")
    assert len(data.train) + len(data.test) == 3


@pytest.mark.parametrize(
    ("shape", "what"),
    [
        ((10, 0), "the examples have no features"),
        ((10, 0, 4), "the images have no pixels"),
        ((10, 4, 0), "the images have no pixels"),
    ],
)
def test_error_no_values_per_example(tmp_path, shape, what):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(shape))
    message = data_error(arrays_spec(path))
    assert message == (f"data: {path}: {what} (shape {shape}); give at least one value per example")


def test_error_npz_empty_array(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros((0, 0)))
    assert data_error(arrays_spec(path)).startswith(f"data: {path}: the array has no examples")


def test_error_mnist_without_images_names_folder(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    spec = replace(DataSpec(), name="mnist", path=str(tmp_path))
    assert data_error(spec, "bernoulli").startswith(
        f"data: {tmp_path}: the array has no examples (shape (0, 28, 28))"
    )


def test_error_beyond_float32_range(tmp_path):
    path = tmp_path / "x.npy"
    x = np.zeros((10, 3))
    x[4, 1] = -1e300
    np.save(path, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the float32 cast must not overflow
        message = data_error(arrays_spec(path))
    assert str(path) in message and "1e+300" in message and "rescale" in message


def test_error_complex_values(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((10, 3), dtype=complex))
    assert data_error(arrays_spec(path)) == (
        f"data: {path} holds complex128 values; store real numbers"
    )


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(np.r_[np.arange(9.0), np.inf], id="inf"),
        pytest.param(np.r_[np.arange(9.0), 1e300], id="huge"),
        pytest.param(np.r_[np.arange(9.0), 0.5], id="fraction"),
        pytest.param(np.arange(10) + 0j, id="complex"),
        pytest.param(np.array(list("abcdefghij")), id="strings"),
    ],
)
def test_error_labels_not_class_indices(tmp_path, labels):
    path = tmp_path / "xy.npz"
    np.savez(path, x=np.zeros((10, 3)), y=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cast warning on the way
        message = data_error(arrays_spec(path))
    assert message.startswith(f"data: {path}: labels must be integer class indices")


# ---------------------------------------------------------------------- binarization


def test_binarize_static_is_binary_and_reproducible():
    spec = replace(DataSpec(), binarize="static")
    a, b = load_data(spec, "bernoulli"), load_data(spec, "bernoulli")
    assert not a.dynamic_binarization
    for x, y in [(a.train, b.train), (a.validation, b.validation), (a.test, b.test)]:
        assert is_binary(x) and torch.equal(x, y)


@pytest.mark.parametrize("binarize_mode", ["dynamic", "auto"])
def test_binarize_dynamic(binarize_mode):
    data = load_data(replace(DataSpec(), binarize=binarize_mode), "bernoulli")
    assert data.dynamic_binarization
    assert not is_binary(data.train)
    assert is_binary(data.validation) and is_binary(data.test)


@pytest.mark.parametrize("likelihood", ["continuous_bernoulli", "gaussian", "laplace"])
def test_binarize_auto_is_none_for_other_likelihoods(likelihood):
    data = load_data(DataSpec(), likelihood)
    assert not data.dynamic_binarization
    assert not is_binary(data.train) and not is_binary(data.test)


def test_binarize_function_is_seeded():
    p = torch.full((1000,), 0.3)
    a = binarize(p, torch.Generator().manual_seed(0))
    assert torch.equal(a, binarize(p, torch.Generator().manual_seed(0)))
    assert is_binary(a) and 0.2 < float(a.mean()) < 0.4


def test_limit_keeps_first_training_rows():
    full = load_data(DataSpec(), "gaussian")
    limited = load_data(replace(DataSpec(), limit=100), "gaussian")
    assert len(limited.train) == 100
    assert torch.equal(limited.train, full.train[:100])
    assert torch.equal(limited.test, full.test)
