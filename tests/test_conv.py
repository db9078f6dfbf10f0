"""Convolutional networks: geometry, every model kind, the tied conv decoder, the filter
figure, colour images and the spec errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_spec
from matplotlib.image import imread
from torch.nn import functional as F

from pyrovae.cli import main
from pyrovae.evaluate.units import conv_filter_patches
from pyrovae.models import build_model
from pyrovae.nets import build_decoder, build_encoder
from pyrovae.nets.conv import ConvDecoder, ConvEncoder, TiedConvDecoder
from pyrovae.pipeline import build, load_spec_data
from pyrovae.report import figures
from pyrovae.spec import NetworkSpec, spec_from_dict
from pyrovae.train import fit

CONV = ["model.encoder.kind=conv", "model.decoder.kind=conv"]


@pytest.mark.parametrize("image", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (2, 7, 5), (3, 13, 17)])
@pytest.mark.parametrize(("kernel", "stride"), [(4, 2), (3, 2), (5, 2), (3, 1), (3, 3)])
def test_the_decoder_lands_on_the_image_and_the_encoder_on_its_geometry(image, kernel, stride):
    spec = NetworkSpec(kind="conv", hidden=(), channels=(4, 6), kernel=kernel, stride=stride)
    try:
        encoder = build_encoder(int(np.prod(image)), 3, spec, image)
    except Exception as err:  # too small for the strides: only a named spec error is fine
        assert "model.encoder.channels" in str(err) and "cannot take" in str(err)
        return
    assert isinstance(encoder, ConvEncoder)
    seen = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
        for m in encoder.convs
        if isinstance(m, torch.nn.Conv2d)
    ]
    x = torch.rand(5, int(np.prod(image)))
    assert encoder(x).shape == (5, 3)
    for hook in hooks:
        hook.remove()
    assert seen == encoder.geometry.sizes[1:]  # what torch did is what the geometry says
    decoder = build_decoder(3, 2 * int(np.prod(image)), spec, image)
    assert isinstance(decoder, ConvDecoder)
    out = decoder(torch.randn(5, 3))
    assert out.shape == (5, 2 * int(np.prod(image)))


def test_the_encoder_reads_the_image_and_the_extra_inputs_and_any_batch_shape():
    spec = NetworkSpec(kind="conv", hidden=(8,), channels=(4,), kernel=3)
    encoder = build_encoder(2 * 6 * 6 + 3, 5, spec, (2, 6, 6))
    x = torch.rand(7, 75)
    out = encoder(x)
    assert encoder(x.reshape(1, 7, 75)).reshape(7, 5).allclose(out, atol=1e-6)
    changed_extra, changed_pixel = x.clone(), x.clone()
    changed_extra[:, -1] += 1.0
    changed_pixel[:, 0] += 1.0
    assert not encoder(changed_extra).allclose(out)
    assert not encoder(changed_pixel).allclose(out)
    # the channel-major layout: pixel (c, h, w) sits at c * 36 + h * 6 + w, and the
    # extra inputs join the flattened features before the head
    features = encoder.convs(x[:, :72].reshape(7, 2, 6, 6)).flatten(1)
    by_hand = encoder.head(torch.cat([features, x[:, 72:]], dim=1))
    assert torch.allclose(out, by_hand, atol=1e-6)


def test_the_decoders_channel_groups_are_what_chunk_splits():
    """Output group g (e.g. location, then scale) is transposed-conv channels g*C..(g+1)*C-1,
    flattened channel-major: silencing the other group's channels zeroes its chunk."""
    spec = NetworkSpec(kind="conv", hidden=(), channels=(4,), kernel=3)
    decoder = build_decoder(3, 2 * 2 * 36, spec, (2, 6, 6))
    last = decoder.deconvs[-1]
    with torch.no_grad():
        last.weight[:, 2:] = 0.0  # output channels 2, 3: the second group
        last.bias[2:] = 0.0
    first, second = decoder(torch.randn(5, 3)).chunk(2, dim=-1)
    assert (second == 0).all() and (first != 0).any()


def test_the_tied_conv_decoder_runs_the_encoders_kernels_transposed():
    """<convT(h), u> = <h, conv(u)> for the encoder's convolution without its bias: the
    decoder's last step is the adjoint of the encoder's first."""
    spec = spec_from_dict(
        {
            "model": {
                "kind": "tied_ae",
                "latent_dim": 3,
                "encoder": {"kind": "conv", "hidden": [], "channels": [5], "kernel": 3},
                "decoder": {"kind": "conv", "hidden": [], "channels": [5], "kernel": 3},
            }
        }
    )
    image = (2, 7, 9)
    model = build_model(spec.model, 126, image=image)
    decoder, encoder = model.decoder, model.encoder
    assert isinstance(decoder, TiedConvDecoder) and isinstance(encoder, ConvEncoder)
    own = {name for name, _ in decoder.named_parameters()}
    assert own == {"head_biases.0", "conv_biases.0"}  # every weight is the encoder's
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in encoder.parameters()
    ) + sum(p.numel() for p in decoder.parameters())
    z, u = torch.randn(4, 3), torch.randn(4, *image)
    head = encoder.head[0]
    with torch.no_grad():
        h = decoder.activation(F.linear(z, head.weight.t(), decoder.head_biases[0]))
        y = decoder(z).reshape(4, *image) - decoder.conv_biases[0][None, :, None, None]
        conv = encoder.convs[0]
        seen = F.conv2d(u, conv.weight, None, conv.stride, conv.padding)
    lhs = (y * u).sum(dim=(1, 2, 3))
    rhs = (h.reshape(seen.shape) * seen).sum(dim=(1, 2, 3))
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
    # and the gradient of a decoder-only loss reaches the encoder's kernel
    decoder(z).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


KINDS = [
    ["model.kind=vae"],
    ["model.kind=vae", "train.objective=analytic_kl"],
    ["model.kind=vae", "model.prior.name=vamp", "model.prior.components=5"],
    ["model.kind=vae", "train.objective=iwae", "train.particles=3"],
    ["model.kind=vae", "train.objective=iwae_dreg", "train.particles=3"],
    ["model.kind=vae", "model.encoder.norm=group", "model.decoder.norm=group"],
    ["model.kind=ae"],
    ["model.kind=tied_ae", "model.decoder.hidden=[32]", "model.decoder.channels=[64, 32]"],
    ["model.kind=denoising_ae"],
    ["model.kind=sparse_ae"],
    ["model.kind=cvae"],
    ["model.kind=m2", "data.labelled=5"],
]


@pytest.mark.parametrize("overrides", KINDS, ids=lambda o: " ".join(o).replace("model.", ""))
def test_every_model_kind_trains_with_conv_networks(overrides):
    spec = tiny_spec(
        *CONV,
        "model.encoder.channels=[32, 64]",
        "train.epochs=1",
        "train.batch_size=100",
        "data.limit=200",
        *overrides,
    )
    data = load_spec_data(spec)
    model = build(spec, data.dim, data.classes, data.image_shape)
    assert isinstance(model.encoder, ConvEncoder)
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, data, spec.train)
    assert all(np.isfinite(r.train_objective_nats) for r in result.history)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert sum(moved) >= len(moved) - 1  # every weight trains (a vamp pseudo-input may not)
    x = data.test[:4]
    assert model.reconstruct(x).shape == (4, data.dim)


def test_filter_patches_are_the_ones_that_excite_each_filter_most():
    spec = spec_from_dict(
        {"model": {"kind": "ae", "encoder": {"kind": "conv", "kernel": 3, "stride": 2}}}
    )
    model = build_model(spec.model, 3 * 10 * 12, image=(3, 10, 12))
    x = torch.rand(7, 360)
    found = conv_filter_patches(model, x, top=4)
    assert found.filters.shape == (32, 3, 3, 3) and found.patches.shape == (32, 4, 3, 3, 3)
    conv = model.encoder.convs[0]
    with torch.no_grad():
        out = conv(x.reshape(-1, 3, 10, 12))
    for f in (0, 5, 31):
        assert torch.allclose(out[:, f].flatten().topk(4).values, found.activations[f], atol=1e-5)
        score = (found.patches[f] * conv.weight[f]).sum(dim=(1, 2, 3)) + conv.bias[f]
        assert torch.allclose(score, found.activations[f], atol=1e-5)


def test_colour_images_are_drawn_in_colour(tmp_path):
    red = np.zeros((4, 3, 5, 6))
    red[:, 0] = 1.0  # channel 0 (red) full, the others empty
    rows = red.reshape(4, -1)
    images = figures.as_images(rows, (3, 5, 6), "x")
    assert images.shape == (4, 5, 6, 3)
    path = figures.plot_samples(rows, (3, 5, 6), tmp_path / "s.png")
    pixels = imread(path)[..., :3]
    reddish = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert reddish.sum() > 100


def _run(args, capsys):
    code = main(["train", "--quiet", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        (
            ["data.name=synthetic", "model.likelihood.name=gaussian"],
            "model.encoder.kind",
            "needs images",
        ),
        (["model.encoder.channels=[8, 8, 8, 8]"], "model.encoder.channels", "1x1"),
        (["model.encoder.channels=[]"], "model.encoder.channels", "at least one convolution"),
        (["model.encoder.kind=mlp", "model.encoder.kernel=3"], "model.encoder.kernel", "only a"),
        (
            ["model.kind=tied_ae", "model.decoder.hidden=[256, 128]"],
            "model.decoder.hidden",
            "reversed",
        ),
        (
            ["model.kind=tied_ae", "model.decoder.hidden=[128, 256]", "model.decoder.stride=1"],
            "model.decoder.stride",
            "encoder's kernels",
        ),
        (
            ["model.kind=tied_ae", "model.decoder.hidden=[128, 256]", "model.encoder.norm=group"],
            "model.encoder.norm",
            "norm = 'none'",
        ),
    ],
)
def test_conv_spec_errors_are_one_line_naming_the_field(overrides, field, words, tmp_path, capsys):
    args = [f"--set={o}" for o in [*CONV, *overrides]]
    code, err = _run([*args, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert field in err and words in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_conv_run_reports_its_filters_and_its_layers(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*CONV, "train.epochs=1", "data.limit=200", "model.encoder.channels=[8, 16]"]
    cli = ["run", "--quiet", "--out", str(out), "--particles", "5", "--local-points", "0"]
    code = main([*cli, *[f"--set={a}" for a in args]])
    assert code == 0, capsys.readouterr().err
    assert (out / "figures" / "conv_filters.png").is_file()
    assert not (out / "figures" / "max_activation.png").exists()
    report = (out / "report.md").read_text()
    assert "## Data and networks" in report and "of shape 1×8×8 = 64 values" in report
    assert "Conv2d(1→8, k4, s2, p1) | 8×4×4 |" in report
    assert "ConvTranspose2d(32→1, k4, s2, p1) | 1×8×8 |" in report
    assert "figures/conv_filters.png" in report


def test_tensorboard_tiles_colour_images_with_their_channels_last():
    from pyrovae.report.tensorboard import _grid

    rows = torch.zeros(4, 3, 5, 6)
    rows[:, 2] = 1.0  # blue
    grid = _grid(rows.reshape(4, -1), (3, 5, 6))
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
    assert (grid[:5, :6] == np.array([0.0, 0.0, 1.0], dtype=np.float32)).all()
    assert (grid[5] == 1.0).all()  # the white gutter between the rows of tiles


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_unit_figures_and_tensorboard_take_any_channel_count(channels, tmp_path):
    from pyrovae.report.latent_figures import plot_max_activation
    from pyrovae.report.tensorboard import _grid

    shape = (channels, 5, 6)
    inputs = np.random.default_rng(0).normal(size=(7, channels * 30))
    path = plot_max_activation(inputs, shape, tmp_path / "m.png")
    assert imread(path).shape[2] in (3, 4)
    grid = _grid(torch.rand(4, channels * 30), shape)
    assert grid.shape == (11, 13, 3) and 0 <= grid.min() and grid.max() <= 1
