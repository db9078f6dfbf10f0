"""Figures: each writes one non-blank PNG of the documented pixel size, draws the data it
was given (read back from the Figure as it is saved) and leaves no figure open."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
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
    """A PNG of ``figures.pixel_size(name)`` with something drawn on its white background."""
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == figures.pixel_size(name)
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    inked = float(np.any(pixels < 245, axis=-1).mean())
    assert pixels.std() > 0 and inked > 0.005, f"{path.name} is blank ({inked:.2%} drawn)"


def _only(saved: list[Figure]) -> Figure:
    assert len(saved) == 1, f"{len(saved)} figures saved"
    return saved[0]


def _shown_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def _tiles(ax, shape: tuple[int, int]) -> np.ma.MaskedArray:
    """The tiles, row by row, of the one image on ``ax`` (a mosaic with 1-pixel gutters)."""
    assert len(ax.images) == 1
    mosaic = ax.images[0].get_array()
    height, width = shape
    rows, cols = (mosaic.shape[0] + 1) // (height + 1), (mosaic.shape[1] + 1) // (width + 1)
    assert mosaic.shape == (rows * (height + 1) - 1, cols * (width + 1) - 1)
    tiles = [
        mosaic[
            r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width
        ]
        for r in range(rows)
        for c in range(cols)
    ]
    gutters = np.ma.getmaskarray(mosaic).sum() - sum(np.ma.getmaskarray(t).sum() for t in tiles)
    assert gutters == mosaic.size - rows * cols * height * width  # gutters are all masked
    return np.ma.stack(tiles)


def _assert_tiles(tiles: np.ma.MaskedArray, expected: np.ndarray) -> None:
    """The first tiles show ``expected`` (n, H, W) exactly; the rest are empty (masked)."""
    n = expected.shape[0]
    assert not np.ma.getmaskarray(tiles[:n]).any()
    np.testing.assert_array_equal(np.ma.getdata(tiles[:n]), expected)
    assert np.ma.getmaskarray(tiles[n:]).all()


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


def _np(x: torch.Tensor) -> np.ndarray:
    return x.double().numpy()


def test_pixel_sizes_follow_sizes_and_dpi():
    for name, (width, height) in figures.SIZES.items():
        assert figures.pixel_size(name) == (round(width * figures.DPI), round(height * figures.DPI))
    functions = [*figures.__all__, *latent_figures.__all__]
    expected = {n.removeprefix("plot_") for n in functions if n.startswith("plot_")}
    expected = expected - {"family_rows"} | {"family_samples", "family_interpolation"}
    assert set(figures.SIZES) == expected


# --------------------------------------------------------------- training curves


def _lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


@pytest.mark.parametrize(
    ("epochs", "warmup", "validation"),
    [(1, False, True), (1, True, False), (30, True, True), (80, False, False)],
)
def test_training_curves(tmp_path, saved, epochs, warmup, validation):
    history = _history(epochs, warmup, validation)
    path = figures.plot_training_curves(history, tmp_path / "a/b.png")
    _check_png(path, "training_curves")
    fig = _only(saved)
    beta = [r.beta for r in history]
    varies = len(set(beta)) > 1  # one epoch of warm-up is a constant beta
    assert len(fig.axes) == (2 if varies else 1)
    ax = fig.axes[0]
    lines = _lines(ax)
    names = ["train objective", "validation ELBO"][: 1 + validation]
    assert list(lines) == names
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    np.testing.assert_array_equal(lines["train objective"].get_xdata(), range(1, epochs + 1))
    np.testing.assert_array_equal(
        lines["train objective"].get_ydata(), [r.train_objective_nats for r in history]
    )
    if validation:
        np.testing.assert_array_equal(
            lines["validation ELBO"].get_ydata(), [r.validation_elbo_nats for r in history]
        )
    assert lines["train objective"].get_marker() == ("o" if epochs <= 60 else "None")
    if varies:
        (beta_line,) = fig.axes[1].get_lines()
        np.testing.assert_array_equal(beta_line.get_ydata(), beta)
        assert "β" in fig.axes[1].get_ylabel() and fig.axes[1].get_xlabel() == "epoch"
    else:
        assert ax.get_title().endswith(f"(β = {beta[0]:g})") and ax.get_xlabel() == "epoch"


def test_training_curves_large_values(tmp_path, saved):
    history = [
        EpochRecord(1, -1e12, -1e12, -1e12, 0.0, 1.0),
        EpochRecord(2, -3.0, math.nan, math.nan, 1.0, 1.0),
    ]
    _check_png(figures.plot_training_curves(history, tmp_path / "c.png"), "training_curves")
    lines = _lines(_only(saved).axes[0])
    np.testing.assert_array_equal(lines["train objective"].get_ydata(), [-1e12, -3.0])
    np.testing.assert_array_equal(lines["validation ELBO"].get_ydata(), [-1e12, math.nan])


def test_training_curves_empty_history_raises(tmp_path):
    with pytest.raises(ValueError, match="no epochs to plot"):
        figures.plot_training_curves([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


# -------------------------------------------------------------- reconstructions


@pytest.mark.parametrize("n", [1, 10, 15, 30])
def test_reconstructions_images(tmp_path, saved, n):
    x = torch.rand(n, 64, generator=_gen())
    x_hat = (x + 0.1 * torch.randn(n, 64, generator=_gen(1))).clamp(0, 1)
    path = figures.plot_reconstructions(x, x_hat, IMAGE, tmp_path / "recon.png")
    _check_png(path, "reconstructions")
    fig = _only(saved)
    shown = min(n, 20)
    blocks = 1 if shown <= 10 else 2
    cols = math.ceil(shown / blocks)
    assert len(fig.axes) == 2 * blocks
    assert f"{shown} of {n} examples" in fig.get_suptitle()
    for b in range(blocks):
        part = slice(b * cols, min((b + 1) * cols, shown))
        rows = ((fig.axes[2 * b], x, "input"), (fig.axes[2 * b + 1], x_hat, "reconstruction"))
        for ax, data, label in rows:
            assert ax.get_ylabel() == label
            assert ax.images[0].get_clim() == (0.0, 1.0)  # values in [0, 1]: a fixed scale
            _assert_tiles(_tiles(ax, IMAGE), _np(data[part]).reshape(-1, *IMAGE))


@pytest.mark.parametrize(("n", "dim"), [(1, 1), (3, 5), (12, 20)])
def test_reconstructions_vectors(tmp_path, saved, n, dim):
    x = 1e6 * torch.randn(n, dim, generator=_gen())
    path = figures.plot_reconstructions(x, x * 0.9, None, str(tmp_path / "recon.png"))
    _check_png(path, "reconstructions")
    panels = _shown_axes(_only(saved))
    assert len(panels) == min(n, 8)
    for k, ax in enumerate(panels):
        assert ax.get_title() == f"example {k + 1}"
        data, recon = ax.get_lines()
        assert (data.get_label(), recon.get_label()) == ("data", "reconstruction")
        np.testing.assert_array_equal(data.get_xdata(), range(1, dim + 1))
        np.testing.assert_array_equal(data.get_ydata(), _np(x[k]))
        np.testing.assert_array_equal(recon.get_ydata(), _np(x[k] * 0.9))


def test_reconstructions_shape_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        figures.plot_reconstructions(
            torch.zeros(2, 64), torch.zeros(3, 64), IMAGE, tmp_path / "r.png"
        )
    with pytest.raises(ValueError, match="image_shape"):
        figures.plot_reconstructions(
            torch.zeros(2, 10), torch.zeros(2, 10), IMAGE, tmp_path / "r.png"
        )


# ----------------------------------------------------------------------- samples


@pytest.mark.parametrize("n", [1, 5, 16, 64])
def test_samples_images(tmp_path, saved, n):
    samples = torch.rand(n, 64, generator=_gen())
    path = figures.plot_samples(samples, IMAGE, tmp_path / "s.png")
    _check_png(path, "samples")
    (ax,) = _only(saved).axes
    cols = math.ceil(math.sqrt(n))
    tiles = _tiles(ax, IMAGE)
    assert len(tiles) == cols * math.ceil(n / cols)
    _assert_tiles(tiles, _np(samples).reshape(n, *IMAGE))
    assert ax.get_title().startswith("Samples from the prior")


def _bar_area(patches) -> float:
    return sum(p.get_height() * p.get_width() for p in patches)


@pytest.mark.parametrize(("n", "dim", "with_data"), [(1, 1, False), (50, 1, True), (1, 3, True)])
def test_samples_vectors(tmp_path, saved, n, dim, with_data):
    data = torch.randn(200, dim, generator=_gen(1)) if with_data else None
    samples = torch.randn(n, dim, generator=_gen())
    _check_png(figures.plot_samples(samples, None, tmp_path / "s.png", data=data), "samples")
    (ax,) = _only(saved).axes
    series = ["data", "samples"] if with_data else ["samples"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == series
    if dim == 1:  # overlaid density histograms, each of area 1
        assert [c.patches[0].get_label() for c in ax.containers] == series
        for container in ax.containers:
            assert _bar_area(container.patches) == pytest.approx(1.0)
        return
    drawn = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert list(drawn) == series
    np.testing.assert_array_equal(drawn["samples"], _np(samples[:, :2]))
    np.testing.assert_array_equal(drawn["data"], _np(data[:, :2]))


# ------------------------------------------------------------------ latent space


def _points_by_label(ax) -> list[np.ndarray]:
    return [np.asarray(c.get_offsets()) for c in ax.collections]


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
@pytest.mark.parametrize("labelled", [False, True])
def test_latent_space(tmp_path, saved, latent_dim, labelled):
    z = torch.randn(300, latent_dim, generator=_gen())
    labels = torch.randint(0, 10, (300,), generator=_gen(1)) if labelled else None
    _check_png(figures.plot_latent_space(z, labels, tmp_path / "z.png"), "latent_space")
    fig = _only(saved)
    ax = fig.axes[0]
    z = _np(z)
    values = np.unique(labels.numpy()) if labelled else None
    if latent_dim == 1 and not labelled:  # a histogram of counts
        assert sum(p.get_height() for p in ax.containers[0].patches) == 300
        return
    if latent_dim == 1:  # one jittered strip per label, at height = label index
        for k, (value, points) in enumerate(zip(values, _points_by_label(ax), strict=True)):
            np.testing.assert_array_equal(points[:, 0], z[labels.numpy() == value, 0])
            assert np.all(np.abs(points[:, 1] - k) <= 0.3)
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(v) for v in values]
        return
    if latent_dim == 2:
        xy = z
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1", "z2")
    else:  # the first two principal components, up to their sign
        centred = z - z.mean(axis=0)
        xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("PC1", "PC2")
        assert "PCA projection" in ax.get_title() and "% of variance" in ax.get_title()
    points = _points_by_label(ax)
    if labelled:
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [str(v) for v in values]
        groups = [xy[labels.numpy() == v] for v in values]
    else:
        groups = [xy]
    assert len(points) == len(groups)
    for drawn, expected in zip(points, groups, strict=True):
        np.testing.assert_allclose(np.abs(drawn), np.abs(expected), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_latent_space_single_code(tmp_path, saved, latent_dim):
    z = torch.full((1, latent_dim), 1e8)
    path = figures.plot_latent_space(z, torch.tensor([3]), tmp_path / "z.png")
    _check_png(path, "latent_space")
    ((point,),) = _points_by_label(_only(saved).axes[0])
    assert point[0] == (1e8 if latent_dim < 5 else 0.0)  # PCA centres the one code


def test_latent_space_label_count_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        figures.plot_latent_space(torch.zeros(4, 2), torch.zeros(3), tmp_path / "z.png")


# ---------------------------------------------------------------------- manifold


def _grid(side: int) -> torch.Tensor:
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, side))
    z1, z2 = torch.meshgrid(q, q, indexing="xy")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def _top_row_first(decoded: np.ndarray, side: int) -> np.ndarray:
    """Rows of ``decoded`` at ``_grid(side)`` (z1 fastest, z2 increasing) reordered so that
    z2 decreases down the rows of the figure and z1 increases along them."""
    return decoded.reshape(side, side, *decoded.shape[1:])[::-1].reshape(decoded.shape)


@pytest.mark.parametrize("side", [1, 4, 12])
@pytest.mark.parametrize("image", [True, False])
def test_manifold(tmp_path, saved, side, image):
    grid = _grid(side)
    decoded = torch.rand(side * side, 64 if image else 3, generator=_gen())
    path = figures.plot_manifold(decoded, grid, IMAGE if image else None, tmp_path / "m.png")
    _check_png(path, "manifold")
    fig = _only(saved)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1", "z2")
    expected = _top_row_first(_np(decoded), side)
    if image:
        assert len(fig.axes) == 1
        _assert_tiles(_tiles(ax, IMAGE), expected.reshape(-1, *IMAGE))
        return
    assert len(fig.axes) == 2  # the heatmap and its colourbar
    (mesh,) = ax.collections
    np.testing.assert_array_equal(mesh.get_array(), expected[:, 0].reshape(side, side))
    assert "first decoded coordinate" in fig.axes[1].get_ylabel()


def test_manifold_irregular_grid_raises(tmp_path):
    grid = torch.randn(9, 2, generator=_gen())
    with pytest.raises(ValueError, match="regular grid"):
        figures.plot_manifold(torch.rand(9, 64), grid, IMAGE, tmp_path / "m.png")


# ----------------------------------------------------------------- interpolation


@pytest.mark.parametrize(
    ("pairs", "steps", "dim"),
    [(1, 1, 64), (5, 10, 64), (1, 1, 1), (3, 8, 1), (1, 8, 3), (5, 10, 3)],
)
def test_interpolation(tmp_path, saved, pairs, steps, dim):
    frames = torch.rand(pairs, steps, dim, generator=_gen())
    image_shape = IMAGE if dim == 64 else None
    path = figures.plot_interpolation(frames, image_shape, tmp_path / "i.png")
    _check_png(path, "interpolation")
    (ax,) = _only(saved).axes
    assert f"decoded in {steps} steps" in ax.get_title()
    frames = _np(frames)
    if image_shape is not None:  # one row of tiles per pair, start on the left
        tiles = _tiles(ax, IMAGE)
        assert len(tiles) == pairs * steps
        _assert_tiles(tiles, frames.reshape(pairs * steps, *IMAGE))
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            f"pair {k + 1}" for k in range(pairs)
        ]
        return
    lines = ax.get_lines()
    assert len(lines) == 3 * pairs  # the path, its start and its end
    for k in range(pairs):
        path_line = lines[3 * k]
        assert path_line.get_label() == f"pair {k + 1}"
        x = frames[k, :, 0] if dim > 1 else np.arange(1, steps + 1)
        y = frames[k, :, 1] if dim > 1 else frames[k, :, 0]
        np.testing.assert_array_equal(path_line.get_xdata(), x)
        np.testing.assert_array_equal(path_line.get_ydata(), y)
        assert lines[3 * k + 1].get_marker() == "o" and lines[3 * k + 2].get_marker() == "s"


# ------------------------------------------------------------------ KL per unit


def _check_bars(ax, kl: np.ndarray, active: np.ndarray) -> None:
    bars = ax.patches
    assert len(bars) == kl.size
    np.testing.assert_array_equal([b.get_height() for b in bars], kl)
    colors = [to_hex(figures.ACTIVE_COLOR if a else figures.INACTIVE_COLOR) for a in active]
    assert [to_hex(b.get_facecolor()) for b in bars] == colors
    assert f"{int(active.sum())} of {kl.size} active" in ax.get_title()


@pytest.mark.parametrize("latent_dim", [1, 5, 64])
def test_kl_per_dimension(tmp_path, saved, latent_dim):
    kl = torch.rand(latent_dim, generator=_gen()) * 3
    active = kl > 1.0
    path = figures.plot_kl_per_dimension(kl, active, tmp_path / "kl.png", threshold_note="KL > 1")
    _check_png(path, "kl_per_dimension")
    (ax,) = _only(saved).axes
    _check_bars(ax, _np(kl), active.numpy())
    assert ax.get_title().endswith("\nKL > 1")


def test_kl_per_dimension_large_values_and_no_note(tmp_path, saved):
    kl = np.array([1e9, 0.0, 2.0])
    active = np.array([True, False, True])
    path = figures.plot_kl_per_dimension(kl, active, tmp_path / "kl.png")
    _check_png(path, "kl_per_dimension")
    (ax,) = _only(saved).axes
    _check_bars(ax, kl, active)
    assert "\n" not in ax.get_title()


def test_no_pyplot_figures_after_all_plots(tmp_path):
    """A smoke test on purpose: it checks pyplot's state after every figure function, not
    what they draw (the tests above read each figure's content)."""
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
