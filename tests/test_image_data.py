"""Tests of the image sources: fashion_mnist / kmnist (IDX), cifar10 (python batches, folder
or tar.gz) and image_folder (PNG/JPEG), written in their real formats to tmp_path, loaded
through load_data and the CLI; their one-line errors; md5-checked downloads without a
network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import pickletools
import struct
import tarfile
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data import data_error

import pyrovae.data.cifar
import pyrovae.data.image_folder
from pyrovae.cli import main
from pyrovae.data import IDX_DATASETS, SOURCES, load_data
from pyrovae.data.cifar import CIFAR10_CLASSES, CIFAR10_MD5, grayscale, read_batch
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

TINY = [
    "--set", "model.encoder.hidden=[8]",
    "--set", "model.decoder.hidden=[8]",
    "--set", "model.latent_dim=2",
    "--set", "train.epochs=1",
    "--set", "train.batch_size=4",
    "--quiet",
]  # fmt: skip


def spec(name: str, path: Path, **kw) -> DataSpec:
    return replace(DataSpec(), name=name, path=str(path), **kw)


def cli_error(capsys, tmp_path: Path, *sets: str) -> str:
    """Train with ``--set`` overrides; assert exit 2, one stderr line, no checkpoint."""
    args = [a for s in sets for a in ("--set", s)]
    assert main(["train", "--out", str(tmp_path / "run"), *args, *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    return err


def all_rows(data) -> tuple[np.ndarray, np.ndarray]:
    """Train, validation and test rows (and labels) in split order."""
    x = np.concatenate([data.train.numpy(), data.validation.numpy(), data.test.numpy()])
    parts = (data.train_labels, data.validation_labels, data.test_labels)
    return x, np.concatenate([p.numpy() for p in parts])


class FakeUrl:
    """``urllib.request.urlopen`` serving fixed bytes for every URL, recording them."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float = 0) -> io.BytesIO:
        self.urls.append(url)
        return io.BytesIO(self.body)


# ---------------------------------------------------------------------- IDX


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">I{array.ndim}I", 0x800 + array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_idx_set(folder: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(1)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images"] = rng.integers(0, 256, (n, 4, 5), dtype=np.uint8)
        arrays[f"{prefix}-labels"] = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", arrays[f"{prefix}-images"])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", arrays[f"{prefix}-labels"])
    return arrays


@pytest.mark.parametrize("name", ["fashion_mnist", "kmnist"])
def test_idx_sources_keep_official_order_and_test_split(tmp_path, name):
    arrays = write_idx_set(tmp_path / name, n_train=10, n_test=4)
    data = load_data(spec(name, tmp_path / name), "gaussian")
    assert data.image_shape == (1, 4, 5) and data.levels == 256
    assert (len(data.train), len(data.validation), len(data.test)) == (9, 1, 4)
    x, y = all_rows(data)
    images = np.concatenate([arrays["train-images"], arrays["t10k-images"]])
    np.testing.assert_array_equal(x, images.reshape(14, 20) / np.float32(255))
    np.testing.assert_array_equal(
        y, np.concatenate([arrays["train-labels"], arrays["t10k-labels"]])
    )
    assert data.class_names == IDX_DATASETS[name].class_names and len(data.class_names) == 10


def test_idx_table_lists_the_official_files():
    assert IDX_DATASETS["fashion_mnist"].class_names[9] == "Ankle boot"
    assert IDX_DATASETS["kmnist"].class_names[:3] == ("o", "ki", "su")
    for dataset in IDX_DATASETS.values():
        assert list(dataset.files) == [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
        assert all(len(md5) == 32 and int(md5, 16) >= 0 for md5 in dataset.files.values())
    md5s = [md5 for d in IDX_DATASETS.values() for md5 in d.files.values()]
    assert len(set(md5s)) == len(md5s)


@pytest.mark.parametrize(
    ("name", "mirror"),
    [
        ("fashion_mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        ("kmnist", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
    ],
)
def test_idx_download_checks_md5(tmp_path, monkeypatch, name, mirror):
    fake = FakeUrl(b"not the official file")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    folder = tmp_path / name
    message = data_error(spec(name, folder, download=True))
    first = "train-images-idx3-ubyte.gz"
    assert f"checksum mismatch for {first} from {mirror}{first}" in message
    assert IDX_DATASETS[name].files[first] in message
    assert hashlib.md5(fake.body).hexdigest() in message
    assert fake.urls == [mirror + first] and list(folder.iterdir()) == []


def test_idx_missing_files_name_the_data_set(tmp_path, capsys):
    err = cli_error(capsys, tmp_path, "data.name=kmnist", f"data.path={tmp_path / 'none'}")
    assert f"Kuzushiji-MNIST files not found in {tmp_path / 'none'}" in err
    assert "data.download = true" in err


# ---------------------------------------------------------------------- CIFAR-10


def batch(n: int, seed: int, override: dict | None = None) -> dict:
    """A CIFAR batch dict as the official files hold it (bytes keys)."""
    rng = np.random.default_rng(seed)
    content = {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }
    content.update(override or {})
    return content


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the official batches (protocol 2): every string
    a byte string (``BINSTRING``), read back as bytes with ``encoding="bytes"``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_string(self, obj: str | bytes) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        short = len(raw) < 256
        head = pickle.SHORT_BINSTRING + bytes([len(raw)]) if short else pickle.BINSTRING
        self.write(head + (b"" if short else struct.pack("<i", len(raw))) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string


def python2_pickle(content: dict) -> bytes:
    """``content`` as the official files hold it, numpy 1's module name included."""
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(content)
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_batches(folder: Path, protocol: int = 0, sizes=(3, 3, 2)) -> list[dict]:
    """data_batch_1 .. (all but the last size) and test_batch (the last) in ``folder``,
    pickled as the official files (``protocol`` 0) or with that pickle protocol."""
    folder.mkdir(parents=True)
    batches = [batch(n, seed) for seed, n in enumerate(sizes)]
    names = [f"data_batch_{i + 1}" for i in range(len(sizes) - 1)] + ["test_batch"]
    for name, content in zip(names, batches, strict=True):
        raw = python2_pickle(content) if protocol == 0 else pickle.dumps(content, protocol=protocol)
        (folder / name).write_bytes(raw)
    return batches


def write_archive(folder: Path, batches_folder: Path) -> Path:
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(batches_folder.iterdir()):
            tar.add(path, arcname=f"cifar-10-batches-py/{path.name}")
    return archive


def expected_rows(batches: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([b[b"data"] for b in batches]) / np.float32(255)
    return x, np.concatenate([b[b"labels"] for b in batches])


@pytest.mark.parametrize("protocol", [0, 3, 5])  # official; _reconstruct; _frombuffer
def test_cifar_batches_folder(tmp_path, protocol):
    batches = write_batches(tmp_path / "cifar-10-batches-py", protocol)
    for path in (tmp_path / "cifar-10-batches-py", tmp_path):  # the folder or its parent
        data = load_data(spec("cifar10", path), "gaussian")
        assert data.image_shape == (3, 32, 32) and data.levels == 256
        assert (len(data.train), len(data.validation), len(data.test)) == (5, 1, 2)
        x, y = all_rows(data)
        want_x, want_y = expected_rows(batches)
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
        assert data.class_names == CIFAR10_CLASSES


def test_official_format_names_numpy_1_and_byte_strings(tmp_path):
    ops = list(pickletools.genops(python2_pickle(batch(2, 0))))
    names = {op.name for op, _, _ in ops}
    assert "BINUNICODE" not in names and "BINBYTES" not in names and "SHORT_BINSTRING" in names
    globals_ = [arg for op, arg, _ in ops if op.name == "GLOBAL"]
    assert globals_ == ["numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"]


def test_cifar_rows_are_channel_major_images(tmp_path):
    batches = write_batches(tmp_path / "b")
    source = SOURCES["cifar10"](spec("cifar10", tmp_path / "b"))
    assert source.x.shape == (8, 3, 32, 32) and source.n_test == 2 and source.ordered
    red = batches[0][b"data"][1, :1024].reshape(32, 32)
    np.testing.assert_array_equal(source.x[1, 0], red / np.float32(255))


def test_cifar_archive_is_read_in_place(tmp_path):
    batches = write_batches(tmp_path / "b")
    write_archive(tmp_path / "a", tmp_path / "b")
    data = load_data(spec("cifar10", tmp_path / "a"), "gaussian")
    x, y = all_rows(data)
    want_x, want_y = expected_rows(batches)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["cifar-10-python.tar.gz"]


def test_cifar_grayscale_matches_pillow(tmp_path):
    batches = write_batches(tmp_path / "b")
    source = SOURCES["cifar10"](spec("cifar10", tmp_path / "b", color="grayscale"))
    assert source.x.shape == (8, 1, 32, 32)
    rgb = batches[0][b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    grey = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    np.testing.assert_array_equal(source.x[0, 0], grey / np.float32(255))
    np.testing.assert_array_equal(grayscale(rgb.transpose(2, 0, 1)[None])[0, 0], grey)


def test_cifar_download_checks_md5(tmp_path, monkeypatch):
    fake = FakeUrl(b"corrupted")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    message = data_error(spec("cifar10", tmp_path / "c", download=True))
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert f"checksum mismatch for cifar-10-python.tar.gz from {url}" in message
    assert CIFAR10_MD5 in message and fake.urls == [url]
    assert list((tmp_path / "c").iterdir()) == []


def test_cifar_download_reads_the_checked_archive(tmp_path, monkeypatch):
    batches = write_batches(tmp_path / "b")
    archive = write_archive(tmp_path / "served", tmp_path / "b").read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", FakeUrl(archive))
    monkeypatch.setattr(pyrovae.data.cifar, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    data = load_data(spec("cifar10", tmp_path / "c", download=True), "gaussian")
    assert (tmp_path / "c" / "cifar-10-python.tar.gz").read_bytes() == archive
    np.testing.assert_array_equal(all_rows(data)[1], expected_rows(batches)[1])


class Evil:
    """A pickle that would create a file when loaded by an unrestricted unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_cifar_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    raw = pickle.dumps({b"data": Evil(marker), b"labels": []})
    with pytest.raises(DataError, match=r"cannot read CIFAR-10 batch x: refused to load .*mkdir"):
        read_batch(raw, "x")
    assert not marker.exists()
    pickle.loads(raw)  # the same bytes do run code in the plain unpickler
    assert marker.is_dir()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ([1, 2, 3], "holds a list"),
        (batch(5, 0, {b"data": np.zeros((5, 100), np.uint8)}), "has b'data' of shape (5, 100)"),
        (batch(5, 0, {b"labels": [1, 2]}), "has 5 rows of b'data' but b'labels' of shape (2,)"),
        (batch(2, 0, {b"data": np.zeros((2, 3072))}), "has b'data' float64 of shape (2, 3072)"),
        (batch(2, 0, {b"labels": [3, 10]}), "has labels from 3 to 10, not 0 .. 9"),
    ],
)
def test_cifar_bad_batch_errors_name_the_file(tmp_path, capsys, content, found):
    write_batches(tmp_path / "b")
    bad = tmp_path / "b" / "data_batch_2"
    bad.write_bytes(pickle.dumps(content))
    err = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 'b'}")
    assert f"data: {bad} {found}, but a CIFAR-10 batch is a dict" in err
    assert "(10000, 3072)" in err


def test_cifar_needs_test_batch_and_a_data_batch(tmp_path, capsys):
    write_batches(tmp_path / "b")
    (tmp_path / "b" / "test_batch").unlink()
    err = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 'b'}")
    assert "holds CIFAR-10 batches ['data_batch_1', 'data_batch_2'] but no test_batch" in err
    write_batches(tmp_path / "t", sizes=(2,))
    message = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 't'}")
    assert "batches ['test_batch'] but no data_batch_1 .. data_batch_5" in message


def test_cifar_garbage_and_damaged_archive(tmp_path, capsys):
    write_batches(tmp_path / "b")
    (tmp_path / "b" / "test_batch").write_bytes(b"\x00garbage")
    message = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 'b'}")
    assert f"cannot read CIFAR-10 batch {tmp_path / 'b' / 'test_batch'}:" in message
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cifar-10-python.tar.gz").write_bytes(gzip.compress(b"no tar")[:20])
    message = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 'a'}")
    assert f"cannot read {tmp_path / 'a' / 'cifar-10-python.tar.gz'}" in message
    assert "download it again" in message


def test_cifar_colour_cannot_be_binarized(tmp_path, capsys):
    write_batches(tmp_path / "b")
    err = cli_error(capsys, tmp_path, "data.name=cifar10", f"data.path={tmp_path / 'b'}")
    assert (
        f"data: {tmp_path / 'b'}: colour images (3 channels) cannot be binarized; use "
        "model.likelihood.name = 'continuous_bernoulli', 'gaussian' or 'discretized_logistic', "
        "or data.color = 'grayscale'"
    ) in err
    grey = load_data(spec("cifar10", tmp_path / "b", color="grayscale"), "bernoulli")
    assert grey.image_shape == (1, 32, 32) and grey.dynamic_binarization


def test_cifar_trains_from_the_cli(tmp_path, capsys):
    write_batches(tmp_path / "b", sizes=(6, 6, 4))
    write_archive(tmp_path / "a", tmp_path / "b")
    out = tmp_path / "run"
    sets = ["data.name=cifar10", f"data.path={tmp_path / 'a'}", "model.likelihood.name=gaussian"]
    args = [a for s in sets for a in ("--set", s)]
    assert main(["train", "--out", str(out), *args, *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and np.isfinite(metrics["test_elbo_nats"])


# ---------------------------------------------------------------------- image folder


def grey(seed: int, size=(6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def rgb(seed: int, size=(6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, **kw) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kw)
    return pixels


def test_class_folders_give_labels_names_and_sorted_files(tmp_path):
    written = {
        "dog/b.png": save(tmp_path / "f" / "dog" / "b.png", grey(0)),
        "cat/z.png": save(tmp_path / "f" / "cat" / "z.png", grey(1)),
        "cat/a.PNG": save(tmp_path / "f" / "cat" / "a.PNG", grey(2)),
        "dog/a.png": save(tmp_path / "f" / "dog" / "a.png", grey(3)),
    }
    (tmp_path / "f" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "f" / "dog" / ".hidden.png").write_bytes(b"ignored")
    source = SOURCES["image_folder"](spec("image_folder", tmp_path / "f"))
    order = ["cat/a.PNG", "cat/z.png", "dog/a.png", "dog/b.png"]
    assert source.class_names == ("cat", "dog") and source.levels == 256
    assert not source.ordered and source.n_test is None
    np.testing.assert_array_equal(source.y, [0, 0, 1, 1])
    assert source.x.shape == (4, 1, 6, 5) and source.x.dtype == np.float32
    for i, name in enumerate(order):
        np.testing.assert_array_equal(source.x[i, 0], written[name] / np.float32(255))
    data = load_data(spec("image_folder", tmp_path / "f"), "bernoulli")
    assert data.class_names == ("cat", "dog") and data.image_shape == (1, 6, 5)
    assert data.dynamic_binarization and len(data.test) == 1


def test_flat_folder_of_rgb_and_grey_is_rgb_without_labels(tmp_path):
    colour = save(tmp_path / "f" / "1.png", rgb(0))
    plain = save(tmp_path / "f" / "2.png", grey(1))
    source = SOURCES["image_folder"](spec("image_folder", tmp_path / "f"))
    assert source.y is None and source.class_names is None
    assert source.x.shape == (2, 3, 6, 5)
    np.testing.assert_array_equal(source.x[0], colour.transpose(2, 0, 1) / np.float32(255))
    for c in range(3):  # a grey image in an RGB set: three equal channels
        np.testing.assert_array_equal(source.x[1, c], plain / np.float32(255))
    data = load_data(spec("image_folder", tmp_path / "f"), "gaussian")
    assert data.train_labels is None and data.image_shape == (3, 6, 5) and data.levels == 256


def test_color_and_image_size_convert_like_pillow(tmp_path):
    colour = save(tmp_path / "f" / "a.png", rgb(0, (9, 12)))
    save(tmp_path / "f" / "b.png", rgb(1, (7, 4)))
    source = SOURCES["image_folder"](
        spec("image_folder", tmp_path / "f", color="grayscale", image_size=(3, 4))
    )
    assert source.x.shape == (2, 1, 3, 4)
    want = Image.fromarray(colour).convert("L").resize((4, 3), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(source.x[0, 0], np.asarray(want) / np.float32(255))
    plain = save(tmp_path / "g" / "a.png", grey(2))
    source = SOURCES["image_folder"](spec("image_folder", tmp_path / "g", color="rgb"))
    assert source.x.shape == (1, 3, 6, 5)
    np.testing.assert_array_equal(source.x[0, 2], plain / np.float32(255))


def test_jpeg_images_are_read(tmp_path):
    pixels = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    save(tmp_path / "f" / "a" / "x.jpg", pixels, quality=95)
    save(tmp_path / "f" / "b" / "y.JPEG", 255 - pixels, quality=95)
    source = SOURCES["image_folder"](spec("image_folder", tmp_path / "f"))
    assert source.x.shape == (2, 1, 16, 16) and source.class_names == ("a", "b")
    assert np.abs(source.x[0, 0] - pixels / 255).max() < 0.05  # JPEG is lossy
    assert np.abs(source.x[1, 0] - (255 - pixels) / 255).max() < 0.05


def test_progress_bar_past_the_threshold(tmp_path, capsys, monkeypatch):
    for i in range(3):
        save(tmp_path / "f" / f"{i}.png", grey(i))
    SOURCES["image_folder"](spec("image_folder", tmp_path / "f"))
    assert "read images" not in capsys.readouterr().err
    monkeypatch.setattr(pyrovae.data.image_folder, "PROGRESS_FROM", 2)
    SOURCES["image_folder"](spec("image_folder", tmp_path / "f"))
    assert "read images" in capsys.readouterr().err


def test_image_folder_errors_via_the_cli(tmp_path, capsys):
    folder = tmp_path / "f"

    def error() -> str:
        return cli_error(
            capsys, tmp_path, "data.name=image_folder", f"data.path={folder}",
            "model.likelihood.name=gaussian",
        )  # fmt: skip

    save(folder / "a.png", grey(0))
    save(folder / "b.png", grey(1, (4, 7)))
    assert (
        f"data: images differ in size: {folder / 'a.png'} is 6x5 but {folder / 'b.png'} is 4x7 "
        "(height x width); set data.image_size = [height, width]"
    ) in error()
    (folder / "b.png").unlink()
    png = (folder / "a.png").read_bytes()
    (folder / "c.png").write_bytes(png[:50])  # the header is whole, the pixels cut short
    assert f"data: cannot read image {folder / 'c.png'}: image file is truncated" in error()
    (folder / "c.png").write_bytes(b"\x89PNG garbage, not an image at all")
    message = error()
    assert f"data: cannot read image {folder / 'c.png'}: cannot identify image file" in message
    assert message.endswith("; replace the file or delete it\n")
    save(folder / "c.png", grey(1).astype(np.uint16) * 257)
    assert f"data: image {folder / 'c.png'} has mode I;16 (16-bit, 32-bit or float" in error()
    (folder / "c.png").unlink()
    save(folder / "cls" / "d.png", grey(2))
    assert f"data: {folder} holds both images (a.png, ...) and class folders (cls, ...)" in error()
    (folder / "a.png").unlink()
    (folder / "empty").mkdir()
    assert f"data: class folder {folder / 'empty'} holds no images (read: .png" in error()
    folder = tmp_path / "nothing"
    folder.mkdir()
    assert f"data: {folder} holds no images (read: .png, .jpg, .jpeg," in error()
    folder = tmp_path / "f" / "cls" / "d.png"
    assert f"data: {folder} is a file; data.path must be a folder of images" in error()
    folder = tmp_path / "missing"
    assert f"data: {folder} does not exist; data.path must be a folder of images" in error()


def test_colour_folder_with_default_likelihood_is_refused(tmp_path, capsys):
    save(tmp_path / "f" / "a.png", rgb(0))
    save(tmp_path / "f" / "b.png", rgb(1))
    err = cli_error(capsys, tmp_path, "data.name=image_folder", f"data.path={tmp_path / 'f'}")
    assert "colour images (3 channels) cannot be binarized;" in err
    assert "or data.color = 'grayscale'" in err


def test_image_folder_run_from_the_cli(tmp_path):
    for label in ("ring", "square"):
        for i in range(5):
            save(tmp_path / "f" / label / f"{i}.png", rgb(10 * i + len(label), (8, 8)))
    out = tmp_path / "run"
    sets = [
        "data.name=image_folder",
        f"data.path={tmp_path / 'f'}",
        "data.image_size=[4,6]",
        "model.likelihood.name=continuous_bernoulli",
    ]
    args = [a for s in sets for a in ("--set", s)]
    command = ["run", "--out", str(out), *args, *TINY, "--particles", "4", "--local-points", "0"]
    assert main(command) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_log_likelihood_particles"] == 4
    assert "image_size = [4, 6]" in (out / "spec.toml").read_text()
    assert (out / "report.md").is_file()


def test_label_models_need_class_folders(tmp_path, capsys):
    for i in range(4):
        save(tmp_path / "f" / f"{i}.png", grey(i))
    err = cli_error(
        capsys, tmp_path, "data.name=image_folder", f"data.path={tmp_path / 'f'}",
        "model.kind=cvae",
    )  # fmt: skip
    assert "model.kind: 'cvae' uses class labels, but data.name = 'image_folder' has none" in err
    assert "an image_folder of class folders" in err


def test_the_cifar10_example_spec_trains_on_a_tiny_batch_file_and_reports_bits(tmp_path, capsys):
    """examples/specs/cifar10.toml as shipped (conv networks, discretized logistic), shrunk
    in size and time only, runs end to end on generated official-format batches."""
    write_batches(tmp_path / "cifar-10-batches-py", sizes=(24, 24, 16))
    out = tmp_path / "run"
    sets = [
        f"data.path={tmp_path / 'cifar-10-batches-py'}",
        "train.epochs=1",
        "model.encoder.channels=[4, 8, 8]",
        "model.decoder.channels=[8, 8, 4]",
        "model.latent_dim=4",
    ]
    spec_file = Path(__file__).parents[1] / "examples" / "specs" / "cifar10.toml"
    args = ["run", str(spec_file), "--quiet", "--out", str(out), "--particles", "10"]
    args += ["--local-points", "0"]
    code = main([*args, *[f"--set={s}" for s in sets]])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    bits = -metrics["test_log_likelihood_nats"] / (3072 * np.log(2))
    assert metrics["test_bits_per_dim"] == pytest.approx(bits, rel=1e-6)
    report = (out / "report.md").read_text()
    assert "bits/dim" in report and "of shape 3×32×32 = 3072 values" in report
    assert (out / "figures" / "conv_filters.png").is_file()


def test_an_image_is_turned_upright_by_its_exif_orientation(tmp_path):
    """A phone stores a portrait photo sideways with EXIF orientation 6 (turn 90 degrees
    clockwise to view): it is read as viewers show it, and its size counts upright."""
    folder = tmp_path / "photos"
    folder.mkdir()
    stored = np.zeros((4, 6), np.uint8)
    stored[0, 0] = 255  # the stored top-left pixel ends up top-right when turned
    turned = Image.fromarray(stored)
    exif = turned.getexif()
    exif[0x0112] = 6
    turned.save(folder / "a.png", exif=exif)
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(folder / "b.png")  # upright, 6 x 4
    data = load_data(spec("image_folder", folder, test_fraction=0.5), "gaussian")
    assert data.image_shape == (1, 6, 4)  # no mixed-size error: both are 6 high, 4 wide
    rows = torch.cat([data.train, data.validation, data.test]).reshape(-1, 6, 4)
    lit = [r for r in rows if r.max() > 0]
    assert len(lit) == 1 and lit[0][0, 3] == 1.0 and lit[0].sum() == 1.0
