"""Figures of a trained VAE and the run's ``report.md``.

:func:`make_figures` computes what to draw from the model and data (the
plotting functions in :mod:`pyrovae.plots` take plain tensors), and
:func:`render_report` turns the spec, metrics and figures into markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pyrovae import plots
from pyrovae.data import Dataset
from pyrovae.evaluate import Evaluation
from pyrovae.infer.local import frozen
from pyrovae.infer.svi import EpochRecord
from pyrovae.models.vae import VAE
from pyrovae.spec import Spec, spec_to_toml

__all__ = [
    "FIGURES",
    "METRIC_DOCS",
    "local_section",
    "make_figures",
    "manifold_grid",
    "render_report",
]

FIGURES = {
    "training_curves": "Training objective and validation ELBO per epoch.",
    "reconstructions": "Test inputs (top) and their reconstructions E[x | z = mu_phi(x)].",
    "samples": "Means of p(x|z) for z drawn from the prior.",
    "latent_space": "Posterior means of the test set, coloured by label.",
    "manifold": "Decoded grid over the 2-D latent space (normal quantiles).",
    "interpolation": "Decoded straight lines between the posterior means of test pairs.",
    "kl_per_dimension": "KL(q(z|x) || p(z)) of each latent dimension; grey: inactive units.",
}
"""Figure names (files ``figures/<name>.png``) and their captions."""

METRIC_DOCS = {
    "test_log_likelihood_nats": "importance-sampled log p(x), k samples of q(z|x)",
    "test_log_likelihood_se": "Monte Carlo standard error of the line above",
    "test_log_likelihood_particles": "k",
    "test_elbo_nats": "ELBO = reconstruction - KL (a lower bound on log p(x))",
    "test_reconstruction_nats": "E_q[log p(x|z)]",
    "test_kl_nats": "KL(q(z|x) || p(z))",
    "test_bits_per_dim": "-log p(x) / (D ln 2), binary data only",
    "test_exact_log_likelihood_nats": "closed-form log p(x) of the trained linear-Gaussian model",
    "test_true_log_likelihood_nats": "log p(x) under the parameters that generated the data",
    "train_elbo_nats": "ELBO on the training split",
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
}


def manifold_grid(n: int, prior_scale: float) -> torch.Tensor:
    """``(n*n, 2)`` latent points at normal quantiles 0.05..0.95, row-major from top-left."""
    q = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
    values = (math.sqrt(2) * torch.erfinv(2 * q - 1) * prior_scale).float()
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)


def _interpolations(vae: VAE, x: torch.Tensor, pairs: int, steps: int) -> torch.Tensor:
    loc = vae.encode(x[: 2 * pairs])[0]
    start, end = loc[0::2], loc[1::2]
    t = torch.linspace(0, 1, steps).view(1, steps, 1)
    path = start.unsqueeze(1) * (1 - t) + end.unsqueeze(1) * t
    return vae.decode(path)


@torch.no_grad()
def make_figures(
    vae: VAE,
    data: Dataset,
    history: Sequence[EpochRecord],
    evaluation: Evaluation,
    folder: Path,
    seed: int = 0,
) -> dict[str, Path]:
    """Write every figure that applies to ``folder``; return name -> path.

    The manifold traversal needs a 2-D latent space; the training curves need
    at least one epoch of history.
    """
    vae = frozen(vae)  # a CPU copy: the caller's model keeps its device and mode
    test, shape = data.test, data.image_shape
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, Path] = {}
    if history:
        out["training_curves"] = plots.plot_training_curves(history, folder / "training_curves.png")
    x = test[:10]
    out["reconstructions"] = plots.plot_reconstructions(
        x, vae.reconstruct(x), shape, folder / "reconstructions.png"
    )
    out["samples"] = plots.plot_samples(
        vae.sample(64, generator=generator), shape, folder / "samples.png", data=test
    )
    out["latent_space"] = plots.plot_latent_space(
        vae.encode(test)[0], data.test_labels, folder / "latent_space.png"
    )
    if vae.latent_dim == 2:
        grid = manifold_grid(15, vae.prior_scale)
        out["manifold"] = plots.plot_manifold(
            vae.decode(grid), grid, shape, folder / "manifold.png"
        )
    pairs = min(5, test.shape[0] // 2)
    if pairs:
        out["interpolation"] = plots.plot_interpolation(
            _interpolations(vae, test, pairs, 10), shape, folder / "interpolation.png"
        )
    out["kl_per_dimension"] = plots.plot_kl_per_dimension(
        evaluation.kl_per_dimension, evaluation.active, folder / "kl_per_dimension.png"
    )
    return out


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    return "–" if value is None else str(value)


def _nest_headings(markdown: str) -> str:
    """Push every markdown heading one level down, to sit inside a report section."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())


def local_section(folder: Path, run_dir: Path) -> str:
    """The local-posterior part of the report, from the files in ``folder``."""
    rel = folder.relative_to(run_dir).as_posix()
    parts = [
        "With the decoder frozen, each test point's posterior p(z|x) is approximated by the "
        "encoder (amortized q_phi), by the same Gaussian family optimised for that point "
        "(per_point q*), and by Metropolis, and compared with NUTS. Gaps in nats "
        "(Cremer et al. 2018): approximation = log p(x) - ELBO(q*), amortization = "
        "ELBO(q*) - ELBO(q_phi).",
        "",
        (folder / "gaps.md").read_text().strip(),
        "",
        _nest_headings((folder / "comparison.md").read_text().strip()),
        "",
    ]
    for name in ("marginals", "pairs"):
        if (folder / "figures" / f"{name}.png").is_file():
            parts += [f"![{name}]({rel}/figures/{name}.png)", ""]
    return "\n".join(parts)


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
            f"(k = {metrics['test_log_likelihood_particles']} importance samples); "
            f"test ELBO {metrics['test_elbo_nats']:.3f} nats; "
            f"{metrics.get('active_units', '?')} of {metrics.get('latent_dim', '?')} latent "
            "units active.",
            "",
        ]
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
        lines.append(f"| `{key}` | {_format(value)} | {METRIC_DOCS.get(key, '')} |")
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
