"""Figures: each writes one PNG of the documented pixel size and leaves no figure open."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from pyrovae.report import figures, latent_figures
from pyrovae.train.state import EpochRecord

IMAGE = (8, 8)


@pytest.fixture(autouse=True)
def _no_open_figures():
    """Every test ends with no pyplot figure open (the module must not use pyplot)."""
    yield
    assert plt.get_fignums() == []


def _check_png(path, name: str) -> None:
    assert path.is_file()
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == figures.pixel_size(name)


def _history(epochs: int, warmup: bool = True, validation: bool = True) -> list[EpochRecord]:
    return [
        EpochRecord(
            e,
            -100.0 + 50.0 / e,
            -105.0 + 50.0 / e if validation else math.nan,
            -104.0 + 50.0 / e if validation else math.nan,
            min(1.0, e / 5) if warmup else 1.0,
            0.1,
        )
        for e in range(1, epochs + 1)
    ]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pixel_sizes_follow_sizes_and_dpi():
    for name, (width, height) in figures.SIZES.items():
        assert figures.pixel_size(name) == (round(width * figures.DPI), round(height * figures.DPI))
    functions = [*figures.__all__, *latent_figures.__all__]
    expected = {n.removeprefix("plot_") for n in functions if n.startswith("plot_")}
    expected = expected - {"family_rows"} | {"family_samples", "family_interpolation"}
    assert set(figures.SIZES) == expected


@pytest.mark.parametrize(
    ("epochs", "warmup", "validation"),
    [(1, False, True), (1, True, False), (30, True, True), (80, False, False)],
)
def test_training_curves(tmp_path, epochs, warmup, validation):
    path = figures.plot_training_curves(_history(epochs, warmup, validation), tmp_path / "a/b.png")
    _check_png(path, "training_curves")


def test_training_curves_large_values(tmp_path):
    history = [
        EpochRecord(1, -1e12, -1e12, -1e12, 0.0, 1.0),
        EpochRecord(2, -3.0, math.nan, math.nan, 1.0, 1.0),
    ]
    _check_png(figures.plot_training_curves(history, tmp_path / "c.png"), "training_curves")


def test_training_curves_empty_history_raises(tmp_path):
    with pytest.raises(ValueError, match="no epochs to plot"):
        figures.plot_training_curves([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


@pytest.mark.parametrize("n", [1, 10, 15, 30])
def test_reconstructions_images(tmp_path, n):
    x = torch.rand(n, 64, generator=_gen())
    x_hat = (x + 0.1 * torch.randn(n, 64, generator=_gen(1))).clamp(0, 1)
    path = figures.plot_reconstructions(x, x_hat, IMAGE, tmp_path / "recon.png")
    _check_png(path, "reconstructions")


@pytest.mark.parametrize(("n", "dim"), [(1, 1), (3, 5), (12, 20)])
def test_reconstructions_vectors(tmp_path, n, dim):
    x = 1e6 * torch.randn(n, dim, generator=_gen())
    path = figures.plot_reconstructions(x, x * 0.9, None, str(tmp_path / "recon.png"))
    _check_png(path, "reconstructions")


def test_reconstructions_shape_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        figures.plot_reconstructions(
            torch.zeros(2, 64), torch.zeros(3, 64), IMAGE, tmp_path / "r.png"
        )
    with pytest.raises(ValueError, match="image_shape"):
        figures.plot_reconstructions(
            torch.zeros(2, 10), torch.zeros(2, 10), IMAGE, tmp_path / "r.png"
        )


@pytest.mark.parametrize("n", [1, 5, 16, 64])
def test_samples_images(tmp_path, n):
    path = figures.plot_samples(torch.rand(n, 64, generator=_gen()), IMAGE, tmp_path / "s.png")
    _check_png(path, "samples")


@pytest.mark.parametrize(("n", "dim", "with_data"), [(1, 1, False), (50, 1, True), (1, 3, True)])
def test_samples_vectors(tmp_path, n, dim, with_data):
    data = torch.randn(200, dim, generator=_gen(1)) if with_data else None
    samples = torch.randn(n, dim, generator=_gen())
    _check_png(figures.plot_samples(samples, None, tmp_path / "s.png", data=data), "samples")


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
@pytest.mark.parametrize("labelled", [False, True])
def test_latent_space(tmp_path, latent_dim, labelled):
    z = torch.randn(300, latent_dim, generator=_gen())
    labels = torch.randint(0, 10, (300,), generator=_gen(1)) if labelled else None
    _check_png(figures.plot_latent_space(z, labels, tmp_path / "z.png"), "latent_space")


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_latent_space_single_code(tmp_path, latent_dim):
    z = torch.full((1, latent_dim), 1e8)
    path = figures.plot_latent_space(z, torch.tensor([3]), tmp_path / "z.png")
    _check_png(path, "latent_space")


def test_latent_space_label_count_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        figures.plot_latent_space(torch.zeros(4, 2), torch.zeros(3), tmp_path / "z.png")


def _grid(side: int) -> torch.Tensor:
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, side))
    z1, z2 = torch.meshgrid(q, q, indexing="xy")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


@pytest.mark.parametrize("side", [1, 4, 12])
@pytest.mark.parametrize("image", [True, False])
def test_manifold(tmp_path, side, image):
    grid = _grid(side)
    decoded = torch.rand(side * side, 64 if image else 3, generator=_gen())
    path = figures.plot_manifold(decoded, grid, IMAGE if image else None, tmp_path / "m.png")
    _check_png(path, "manifold")


def test_manifold_irregular_grid_raises(tmp_path):
    grid = torch.randn(9, 2, generator=_gen())
    with pytest.raises(ValueError, match="regular grid"):
        figures.plot_manifold(torch.rand(9, 64), grid, IMAGE, tmp_path / "m.png")


@pytest.mark.parametrize(
    ("pairs", "steps", "dim"),
    [(1, 1, 64), (5, 10, 64), (1, 1, 1), (3, 8, 1), (1, 8, 3), (5, 10, 3)],
)
def test_interpolation(tmp_path, pairs, steps, dim):
    frames = torch.rand(pairs, steps, dim, generator=_gen())
    image_shape = IMAGE if dim == 64 else None
    path = figures.plot_interpolation(frames, image_shape, tmp_path / "i.png")
    _check_png(path, "interpolation")


@pytest.mark.parametrize("latent_dim", [1, 5, 64])
def test_kl_per_dimension(tmp_path, latent_dim):
    kl = torch.rand(latent_dim, generator=_gen()) * 3
    active = kl > 1.0
    path = figures.plot_kl_per_dimension(kl, active, tmp_path / "kl.png", threshold_note="KL > 1")
    _check_png(path, "kl_per_dimension")


def test_kl_per_dimension_large_values_and_no_note(tmp_path):
    kl = np.array([1e9, 0.0, 2.0])
    path = figures.plot_kl_per_dimension(kl, np.array([True, False, True]), tmp_path / "kl.png")
    _check_png(path, "kl_per_dimension")


def test_no_pyplot_figures_after_all_plots(tmp_path):
    figures.plot_training_curves(_history(3), tmp_path / "1.png")
    figures.plot_reconstructions(torch.rand(3, 64), torch.rand(3, 64), IMAGE, tmp_path / "2.png")
    figures.plot_samples(torch.rand(4, 64), IMAGE, tmp_path / "3.png")
    figures.plot_latent_space(torch.randn(20, 2), None, tmp_path / "4.png")
    figures.plot_manifold(torch.rand(4, 64), _grid(2), IMAGE, tmp_path / "5.png")
    figures.plot_interpolation(torch.rand(2, 3, 64), IMAGE, tmp_path / "6.png")
    figures.plot_kl_per_dimension(
        torch.rand(4), torch.ones(4, dtype=torch.bool), tmp_path / "7.png"
    )
    assert plt.get_fignums() == []
    assert len(list(tmp_path.glob("*.png"))) == 7
