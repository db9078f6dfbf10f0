"""Data larger than memory: a .npy file memory-mapped, its training rows read per minibatch.

A memory-mapped run must train exactly as the same file loaded into memory (same seed),
resume exactly, read the file's own rows, check a whole file chunk by chunk and refuse
what it cannot do with one-line errors.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.data import dataset as dataset_module
from pyrovae.data import disk
from pyrovae.data.dataset import load_data
from pyrovae.data.disk import NpyFile, RowStore, file_chunks, read_rows, sample_rows
from pyrovae.errors import DataError, SpecError
from pyrovae.pipeline import build
from pyrovae.spec import DataSpec, Spec, load_spec
from pyrovae.train import fit


def _images(path: Path, n: int = 240, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    """``n`` random 1 x 6 x 8 grey images saved at ``path``: uint8 0..255, or floats in [0, 1]
    (grey, so that a Bernoulli likelihood may binarize them)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 1, 6, 8), dtype=np.uint8)
    if dtype != "uint8":
        x = (x / 255).astype(dtype)
    np.save(path, x)
    return x


def _spec(path: Path, *overrides: str) -> Spec:
    """A small MLP VAE on the arrays at ``path``: 2 epochs of 64-row batches."""
    return load_spec(
        None,
        [
            "data.name=arrays",
            f"data.path={path}",
            "model.encoder.hidden=[16]",
            "model.decoder.hidden=[16]",
            "model.latent_dim=3",
            "train.epochs=2",
            "train.batch_size=64",
            *overrides,
        ],
    )


def _fit(spec: Spec, memory_map: bool, **kwargs):
    """Train ``spec`` on its data loaded into memory or memory-mapped."""
    data = load_data(replace(spec.data, memory_map=memory_map), spec.model.likelihood.name)
    vae = build(spec, data.dim)
    return vae, data, fit(vae, data, spec.train, progress=False, **kwargs)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name


@pytest.mark.parametrize(
    ("dtype", "overrides"),
    [
        ("uint8", ("model.likelihood.name=bernoulli", "model.prior.name=vamp")),  # dynamic
        ("float32", ("model.likelihood.name=gaussian",)),
    ],
)
def test_a_memory_mapped_run_trains_exactly_as_in_memory(tmp_path, dtype, overrides):
    path = tmp_path / "x.npy"
    _images(path, dtype=dtype)
    spec = _spec(path, *overrides)
    in_memory, data_in, result_in = _fit(spec, memory_map=False)
    mapped, data_map, result_map = _fit(spec, memory_map=True)
    assert isinstance(data_map.train, RowStore) and isinstance(data_in.train, torch.Tensor)
    assert data_map.dynamic_binarization == data_in.dynamic_binarization == (dtype == "uint8")
    assert torch.equal(data_map.validation, data_in.validation)
    assert torch.equal(data_map.test, data_in.test)
    assert [r[:-1] for r in result_map.history] == [r[:-1] for r in result_in.history]
    _same_weights(mapped, in_memory)


def test_a_memory_mapped_run_stopped_mid_epoch_resumes_bit_identically(tmp_path):
    path = tmp_path / "x.npy"
    _images(path)
    spec = _spec(path, "train.epochs=3")
    full, _, full_result = _fit(spec, memory_map=True)
    asked = itertools.count(1)
    _, _, stopped = _fit(spec, memory_map=True, should_stop=lambda: next(asked) == 4)
    assert stopped.stop_reason == "interrupted" and stopped.state.step > 0
    resumed, _, resumed_result = _fit(spec, memory_map=True, state=stopped.state)
    assert [r[:-1] for r in resumed_result.history] == [r[:-1] for r in full_result.history]
    _same_weights(resumed, full)


@pytest.mark.parametrize("dtype", ["uint8", ">f8", "float32"])
def test_rows_read_are_the_files_rows(tmp_path, dtype):
    path = tmp_path / "x.npy"
    x = _images(path, n=50, dtype=dtype)
    expected = x.reshape(50, -1).astype(np.float32)
    if dtype == "uint8":
        expected = expected / np.float32(255)
    file = NpyFile.of(np.load(path, mmap_mode="r"))
    assert file.row_values == 48 and file.shape == (50, 1, 6, 8)
    rows = np.array([7, 3, 3, 49, 0, 8, 9, 10])  # unsorted, a repeat, a run
    np.testing.assert_array_equal(read_rows(file, rows), expected[rows])
    store = RowStore(file, torch.tensor([40, 2, 11]))
    assert store.shape == (3, 48) and len(store) == 3
    np.testing.assert_array_equal(store[torch.tensor([2, 0])].numpy(), expected[[11, 40]])
    np.testing.assert_array_equal(store[1:].numpy(), expected[[2, 11]])
    np.testing.assert_array_equal(store.load().numpy(), expected[[40, 2, 11]])
    assert store[torch.tensor([], dtype=torch.int64)].shape == (0, 48)


def test_a_uint8_array_is_8_bit_images_in_memory_too(tmp_path):
    _images(tmp_path / "u.npy", n=20)
    _images(tmp_path / "f.npy", n=20, dtype="float32")
    spec = DataSpec(name="arrays", path=str(tmp_path / "u.npy"), test_fraction=0.5)
    data = load_data(spec, "gaussian")
    assert data.levels == 256 and data.train.max() <= 1.0
    k = (data.train * 255).round()
    assert torch.equal(data.train, (k / 255).to(torch.float32))
    float_data = load_data(replace(spec, path=str(tmp_path / "f.npy")), "gaussian")
    assert float_data.levels is None


def test_sample_rows_gives_a_bounded_number_of_rows(tmp_path):
    _images(tmp_path / "x.npy", n=30)
    data = load_data(
        DataSpec(name="arrays", path=str(tmp_path / "x.npy"), memory_map=True), "gaussian"
    )
    assert sample_rows(data.train, 5).shape == (5, 48)
    assert torch.equal(sample_rows(data.train, 5), data.train[:5])
    tensor = torch.zeros(7, 2)
    assert sample_rows(tensor, 5) is tensor


def _late_chunk_file(tmp_path: Path, bad: float, monkeypatch) -> tuple[Path, int]:
    """A float file of many small chunks with ``bad`` in a late row; that row."""
    monkeypatch.setattr(disk, "CHUNK_BYTES", 48 * 4 * 10)  # 10 rows a chunk
    x = np.random.default_rng(1).uniform(size=(200, 48)).astype(np.float32)
    x[187, 5] = bad
    path = tmp_path / "late.npy"
    np.save(path, x)
    assert len(list(file_chunks(NpyFile.of(np.load(path, mmap_mode="r"))))) == 20
    return path, 187


def test_chunked_checks_find_a_nan_in_a_late_chunk(tmp_path, monkeypatch):
    path, row = _late_chunk_file(tmp_path, np.nan, monkeypatch)
    spec = DataSpec(name="arrays", path=str(path), memory_map=True)
    with pytest.raises(DataError, match=rf"{path.name}: 1 values are NaN .*row {row}, column 5"):
        load_data(spec, "gaussian")


def test_chunked_checks_find_a_value_out_of_range_in_a_late_chunk(tmp_path, monkeypatch):
    path, _ = _late_chunk_file(tmp_path, 1.5, monkeypatch)
    spec = DataSpec(name="arrays", path=str(path), memory_map=True)
    with pytest.raises(DataError, match=rf"{path.name}: values range from .* to 1\.5 "):
        load_data(spec, "continuous_bernoulli")
    assert load_data(spec, "gaussian").train.shape[1] == 48  # fine for a Gaussian


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.name=digits"],
        ["data.path={dir}/x.npz"],
        ["data.binarize=static"],
        ["model.kind=cvae", "data.labels_path={dir}/y.npy"],
    ],
)
def test_what_cannot_be_memory_mapped_is_a_spec_error(tmp_path, overrides):
    filled = [o.format(dir=tmp_path) for o in overrides]
    with pytest.raises(SpecError, match=r"^data\.memory_map: ") as info:
        _spec(tmp_path / "x.npy", "data.memory_map=true", *filled)
    assert "\n" not in str(info.value)


def test_a_fortran_ordered_file_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((10, 4), np.float32)))
    with pytest.raises(DataError, match="Fortran order"):
        load_data(
            DataSpec(name="arrays", path=str(tmp_path / "f.npy"), memory_map=True), "gaussian"
        )


def test_held_out_splits_too_big_for_memory_are_refused(tmp_path, monkeypatch):
    _images(tmp_path / "x.npy", n=100)
    monkeypatch.setattr(dataset_module, "HELD_OUT_BYTES", 48 * 4 * 20)
    spec = DataSpec(name="arrays", path=str(tmp_path / "x.npy"), memory_map=True)
    with pytest.raises(DataError, match=r"lower data\.test_fraction"):
        load_data(spec, "gaussian")  # 20 test and 8 validation rows
    small = load_data(replace(spec, test_fraction=0.1, validation_fraction=0.0), "gaussian")
    assert small.test.shape == (10, 48)


def test_pyrovae_run_with_a_memory_mapped_file(tmp_path):
    _images(tmp_path / "x.npy", n=120)
    out = tmp_path / "run"
    args = [
        "run",
        "--out", str(out),
        "--set", "data.name=arrays",
        "--set", f"data.path={tmp_path / 'x.npy'}",
        "--set", "data.memory_map=true",
        "--set", "model.encoder.hidden=[8]",
        "--set", "model.decoder.hidden=[8]",
        "--set", "train.epochs=1",
        "--set", "train.batch_size=32",
        "--particles", "4",
        "--local-points", "0",
        "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["test_log_likelihood_nats"])
    assert np.isfinite(metrics["train_elbo_nats"])
    assert (out / "report.md").is_file()
