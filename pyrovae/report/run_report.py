"""Figures of a trained VAE or autoencoder and the run's ``report.md``.

:func:`make_figures` computes what to draw from the model and data (the
plotting functions in :mod:`pyrovae.report.figures` take plain tensors), and
:func:`render_report` turns the spec, metrics and figures into markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pyrovae.data.dataset import Dataset
from pyrovae.data.disk import sample_rows
from pyrovae.data.labelled import split_rows
from pyrovae.evaluate.labels import classification
from pyrovae.evaluate.latent_space import fitted_gaussian, interpolation_paths, sample_fitted
from pyrovae.evaluate.likelihood import Evaluation
from pyrovae.evaluate.units import conv_filter_patches, max_activation_inputs
from pyrovae.models import M2, LatentModel, frozen
from pyrovae.models.autoencoders import corrupt
from pyrovae.models.conditional import CVAE
from pyrovae.nets.conv import ConvEncoder
from pyrovae.report import figures, label_figures, latent_figures
from pyrovae.report.label_figures import LABEL_FIGURES
from pyrovae.spec import Spec, spec_to_toml
from pyrovae.train.state import EpochRecord

__all__ = [
    "FIGURES",
    "METRIC_DOCS",
    "make_figures",
    "manifold_grid",
    "render_report",
]

FIGURES = {
    "training_curves": "Training objective and validation ELBO per epoch (for an autoencoder the "
    "ELBO is its negative loss: the reconstruction log-likelihood minus any penalty).",
    "reconstructions": "Test inputs (top) and their reconstructions, the decoded codes "
    "(for a VAE, E[x | z = mu_phi(x)]).",
    "samples": "Decoded codes z ~ p(z), the VAE's prior (N(0, I), or its VampPrior); for an "
    "autoencoder z ~ N(0, I), a use it was never trained for.",
    "fitted_samples": "Decoded codes drawn from a Gaussian fitted to the training codes.",
    "latent_space": "Codes of the test set (a VAE's posterior means), coloured by label.",
    "manifold": "Decoded grid over the 2-D latent space (normal quantiles of an N(0, I) prior, "
    "or of the Gaussian fitted to the codes for a VampPrior or an autoencoder).",
    "interpolation": "Decoded straight lines between the codes of test pairs.",
    "kl_per_dimension": "KL(q(z_d|x) || p(z_d)) of each latent dimension; grey: inactive "
    "units. With a VampPrior p(z_d) is that coordinate's marginal, so they need not sum to "
    "the total KL.",
    "max_activation": "What the encoder's first-layer units detect: the input of norm 1 that "
    "maximally activates each unit (x_j = W_ij / ||W_i||).",
    "conv_filters": "What the conv encoder's first layer detects: each filter (its kernel) "
    "beside the test-image patches with the largest pre-activation w . patch + b.",
    "denoising": "Clean test inputs, corrupted copies (the spec's corruption) and their "
    "reconstructions.",
}
FIGURES.update(LABEL_FIGURES)
"""Figure names (files ``figures/<name>.png``) and their captions."""

METRIC_DOCS = {
    "test_log_likelihood_nats": "importance-sampled log p(x), k samples of q(z|x)",
    "test_log_likelihood_se": "Monte Carlo standard error of the line above",
    "test_log_likelihood_particles": "k",
    "test_elbo_nats": "ELBO = reconstruction - KL (a lower bound on log p(x))",
    "test_reconstruction_nats": "E_q[log p(x|z)]",
    "test_kl_nats": "KL(q(z|x) || p(z))",
    "test_bits_per_dim": "-log2 P(x) / D, for binary data under a Bernoulli likelihood and "
    "8-bit data: exact for the discretized logistic; for a density (gaussian, laplace, "
    "continuous_bernoulli) of 8-bit data P(x) = p(x) / 255^D, the density times the bin "
    "width 1/255 (an approximation, not a bound)",
    "test_accuracy": "m2: share of test examples whose most probable class under q(y|x) is "
    "the label",
    "test_labelled_elbo_nats": "m2: L(x, y), the ELBO with the class given",
    "test_unlabelled_elbo_nats": "m2: U(x), the ELBO with the class summed out",
    "test_exact_log_likelihood_nats": "closed-form log p(x) of the trained linear-Gaussian model",
    "test_true_log_likelihood_nats": "log p(x) under the parameters that generated the data",
    "train_elbo_nats": "ELBO on the training split",
    "train_objective_nats": "autoencoder: log p(x | g(f(x))) minus any penalty, training split",
    "validation_objective_nats": "the same on the validation split",
    "test_objective_nats": "the same on the test split",
    "validation_elbo_nats": "ELBO on the validation split",
    "active_units": "latent units with Cov_x(E_q[z_u]) > 0.01 (Burda et al.)",
    "latent_dim": "latent units in all",
    "epochs": "epochs trained",
    "seconds": "training wall time",
    "stop_reason": "why training stopped",
    "best_epoch": "epoch of the best validation ELBO (early stopping only)",
    "local_points": "test points whose p(z|x) was compared across methods",
    "local_log_likelihood_nats": "their mean log p(x) (importance-sampled with q*)",
    "local_approximation_gap_nats": "mean log p(x) - ELBO(q*)",
    "local_amortization_gap_nats": "mean ELBO(q*) - ELBO(q_phi)",
    "test_reconstruction_error": "squared error of reconstructions, summed over values",
    "test_corrupted_reconstruction_error": "the same, reconstructing from corrupted inputs",
    "latent_prior_energy_distance": "energy distance, decoded z ~ p(z) vs training data",
    "latent_fitted_energy_distance": "the same, z from a Gaussian fitted to the codes",
    "latent_prior_sample_distance": "decoded z ~ p(z) to the nearest training example",
    "latent_fitted_sample_distance": "decoded z ~ Gaussian fitted to the codes, the same",
    "latent_prior_coverage_distance": "training example to the nearest decoded z ~ p(z)",
    "latent_fitted_coverage_distance": "training example to the nearest decoded fitted z",
    "latent_reconstruction_distance": "reconstruction to the nearest training example",
    "latent_interpolation_distance": "interpolation frame to the nearest training example",
    "latent_interpolation_roughness": "largest / mean step along an interpolation (1: even)",
}
"""Meaning of each ``metrics.json`` key (pixel-space distances are Euclidean)."""


def manifold_grid(
    n: int,
    prior_scale: float,
    center: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(n*n, 2)`` latent points at normal quantiles 0.05..0.95, row-major from top-left.

    The quantiles are of N(0, prior_scale^2) on both axes, or of
    N(center_i, scale_i^2) on axis i when ``center`` and ``scale`` ``(2,)`` are given.
    """
    q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
    values = (math.sqrt(2) * torch.erfinv(2 * q - 1) * prior_scale).float()
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    grid = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)
    if center is not None and scale is not None:
        grid = grid * scale.float() + center.float()
    return grid


def _interpolations(model: LatentModel, x: torch.Tensor, pairs: int, steps: int) -> torch.Tensor:
    x = x[: 2 * pairs]
    return interpolation_paths(model, x[0::2], x[1::2], steps)


def _is_vae(model: LatentModel) -> bool:
    return model.spec.kind == "vae"


@torch.no_grad()
def make_figures(
    model: LatentModel,
    data: Dataset,
    history: Sequence[EpochRecord],
    evaluation: Evaluation | None,
    folder: Path,
    seed: int = 0,
) -> dict[str, Path]:
    """Write every figure that applies to ``folder``; return name -> path.

    The manifold traversal needs a 2-D latent space; the training curves at
    least one epoch of history; the KL per dimension an ``evaluation`` (a VAE);
    the unit features and denoising figures image data.
    """
    model = frozen(model)  # a CPU copy: the caller's model keeps its device and mode
    if isinstance(model, CVAE):
        return _label_model_figures(model, data, history, evaluation, folder, seed)
    test, shape = data.test, data.image_shape
    generator = torch.Generator().manual_seed(seed)
    vae = _is_vae(model)
    out: dict[str, Path] = {}
    if history:
        out["training_curves"] = figures.plot_training_curves(
            history,
            folder / "training_curves.png",
            "validation ELBO" if vae else "validation −loss",
        )
    x = test[:10]
    out["reconstructions"] = figures.plot_reconstructions(
        x, model.reconstruct(x), shape, folder / "reconstructions.png"
    )
    vamp = vae and model.spec.prior.name == "vamp"
    prior_title = (
        f"Samples from the prior (means of p(x|z), z ~ {'VampPrior' if vamp else 'N(0, I)'})"
    )
    out["samples"] = figures.plot_samples(
        model.sample(64, generator=generator),
        shape,
        folder / "samples.png",
        data=test,
        title=prior_title if vae else "Decoded codes z ~ N(0, I) (an autoencoder has no prior)",
    )
    fitted = fitted_gaussian(model.code(sample_rows(data.train)))
    out["fitted_samples"] = figures.plot_samples(
        model.decode(sample_fitted(fitted, 64, seed)),
        shape,
        folder / "fitted_samples.png",
        data=test,
        title="Decoded codes z ~ N(m, S), fitted to the training codes",
    )
    out["latent_space"] = figures.plot_latent_space(
        model.code(test), data.test_labels, folder / "latent_space.png"
    )
    if model.latent_dim == 2:
        grid = (
            manifold_grid(15, model.prior_scale)
            if vae and not vamp
            else manifold_grid(15, 1.0, fitted.mean, fitted.variance.sqrt())
        )
        out["manifold"] = figures.plot_manifold(
            model.decode(grid), grid, shape, folder / "manifold.png"
        )
    pairs = min(5, test.shape[0] // 2)
    if pairs:
        out["interpolation"] = figures.plot_interpolation(
            _interpolations(model, test, pairs, 10),
            shape,
            folder / "interpolation.png",
            "posterior means" if vae else "codes",
        )
    if evaluation is not None:
        out["kl_per_dimension"] = figures.plot_kl_per_dimension(
            evaluation.kl_per_dimension, evaluation.active, folder / "kl_per_dimension.png"
        )
    if shape is not None:
        out.update(_unit_figures(model, x, test, shape, folder, generator))
    return out


_CLASS_SAMPLES = 10  # columns of the class-samples figure
_TRANSFERRED = 6  # test inputs in the class-transfer figure


def _label_model_figures(
    model: CVAE,
    data: Dataset,
    history: Sequence[EpochRecord],
    evaluation: Evaluation | None,
    folder: Path,
    seed: int,
) -> dict[str, Path]:
    """The figures of a CVAE or M2 on rows with a class column: training curves,
    reconstructions, samples per class, the class transfer, codes coloured by class, KL
    per dimension and (M2) the classifier's confusion matrix."""
    test, shape = data.test, data.image_shape
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, Path] = {}
    if history:
        out["training_curves"] = figures.plot_training_curves(
            history, folder / "training_curves.png", "validation ELBO"
        )
    x = test[:10]
    out["reconstructions"] = figures.plot_reconstructions(
        model.pixels(x), model.reconstruct(x), shape, folder / "reconstructions.png"
    )
    c, n = model.classes, _CLASS_SAMPLES
    z = model.sample_prior(c * n, generator)
    classes = torch.arange(c).repeat_interleave(n)
    out["class_samples"] = label_figures.plot_class_samples(
        model.decode(z, classes).reshape(c, n, -1), shape, folder / "class_samples.png"
    )
    shown = test[:_TRANSFERRED]
    if shape is not None and shown.shape[0]:
        loc = model.encode(shown)[0].unsqueeze(1).expand(-1, c, -1)
        decoded = model.decode(loc, torch.arange(c).expand(shown.shape[0], c))
        out["class_transfer"] = label_figures.plot_class_transfer(
            model.pixels(shown), decoded, shape, folder / "class_transfer.png"
        )
    y = split_rows(test)[1]
    out["latent_space"] = figures.plot_latent_space(
        model.code(test), y, folder / "latent_space.png"
    )
    if evaluation is not None:
        out["kl_per_dimension"] = figures.plot_kl_per_dimension(
            evaluation.kl_per_dimension, evaluation.active, folder / "kl_per_dimension.png"
        )
    if isinstance(model, M2) and test.shape[0]:
        accuracy, confusion = classification(model, test)
        out["confusion"] = label_figures.plot_confusion(
            confusion, folder / "confusion.png", accuracy=accuracy
        )
    return out


_FILTER_ROWS = 1000
"""Test images searched for the patches that excite each conv filter most."""


def _unit_figures(
    model: LatentModel,
    x: torch.Tensor,
    test: torch.Tensor,
    shape: tuple[int, int, int],
    folder: Path,
    generator: torch.Generator,
) -> dict[str, Path]:
    noisy = corrupt(x, model.spec.autoencoder, generator)
    out = {
        "denoising": latent_figures.plot_denoising(
            x, noisy, model.reconstruct(noisy), shape, folder / "denoising.png"
        )
    }
    if isinstance(model.encoder, ConvEncoder):
        found = conv_filter_patches(model, test[:_FILTER_ROWS])
        out["conv_filters"] = latent_figures.plot_conv_filters(
            found.filters, found.patches, folder / "conv_filters.png"
        )
    else:
        out["max_activation"] = latent_figures.plot_max_activation(
            max_activation_inputs(model), shape, folder / "max_activation.png"
        )
    return out


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    return "–" if value is None else str(value)


def _autoencoder_headline(metrics: dict[str, Any]) -> str:
    return (
        f"Test reconstruction error **{metrics['test_reconstruction_error']:.3f}** (squared, "
        f"per example); from corrupted inputs "
        f"{metrics['test_corrupted_reconstruction_error']:.3f}. "
        f"Energy distance to the training data of decoded z ~ p(z): "
        f"{metrics['latent_prior_energy_distance']:.3f}; of decoded codes from a Gaussian "
        f"fitted to the codes: {metrics['latent_fitted_energy_distance']:.3f} (pixel space, "
        "0 = same distribution)."
    )


def _bits_clause(metrics: dict[str, Any]) -> str:
    """``", **b bits/dim**"`` when the run has bits per dimension, else empty."""
    bits = metrics.get("test_bits_per_dim")
    return "" if bits is None else f", **{bits:.4f} bits/dim**"


def render_report(
    spec: Spec,
    metrics: dict[str, Any],
    figures: dict[str, Path],
    run_dir: Path,
    sections: Sequence[tuple[str, str]] = (),
) -> str:
    """Markdown: headline, metrics table, figures inline (relative paths), extra
    ``(title, markdown)`` sections, the spec."""
    lines = [f"# pyrovae run: {spec.name}", ""]
    if "test_log_likelihood_nats" in metrics:
        lines += [
            f"Test log p(x) ≈ **{metrics['test_log_likelihood_nats']:.3f} ± "
            f"{metrics['test_log_likelihood_se']:.3f} nats** per example "
            f"(k = {metrics['test_log_likelihood_particles']} importance samples)"
            + _bits_clause(metrics)
            + f"; test ELBO {metrics['test_elbo_nats']:.3f} nats; "
            f"{metrics.get('active_units', '?')} of {metrics.get('latent_dim', '?')} latent "
            "units active.",
            "",
        ]
    elif "test_reconstruction_error" in metrics:
        lines += [_autoencoder_headline(metrics), ""]
    lines += [
        f"Data: `{spec.data.name}`; model: {spec.model.kind}, latent_dim = "
        f"{spec.model.latent_dim}, likelihood `{spec.model.likelihood.name}`; objective "
        f"`{spec.train.objective}`. All values are per example, in nats unless named "
        "otherwise; ELBOs and log p(x) are higher-is-better.",
        "",
        "## Metrics",
        "",
        "| metric | value | meaning |",
        "| --- | --- | --- |",
    ]
    for key, value in metrics.items():
        meaning = METRIC_DOCS.get(key, "").replace("|", "\\|")  # p(x|z) inside a table cell
        lines.append(f"| `{key}` | {_format(value)} | {meaning} |")
    if figures:
        lines += ["", "## Figures", ""]
        for name, path in figures.items():
            rel = path.relative_to(run_dir) if path.is_relative_to(run_dir) else path
            lines += [
                f"### {name.replace('_', ' ')}",
                "",
                FIGURES.get(name, ""),
                "",
                f"![{name}]({rel.as_posix()})",
                "",
            ]
    for title, body in sections:
        lines += [f"## {title}", "", body, ""]
    lines += ["## Spec", "", "```toml", spec_to_toml(spec).rstrip(), "```", ""]
    return "\n".join(lines)
