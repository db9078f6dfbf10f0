"""The family report: every kind's latent-space measures in one table, figures and family.md.

:func:`pyrovae.family.run_family` trains the kinds; this module reads their metrics
(:func:`family_table`), draws the side-by-side figures (:func:`family_figures`) and
writes the markdown (:func:`render_family`). The measures are those of
:mod:`pyrovae.evaluate.latent_space`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from pyrovae.data.dataset import Dataset
from pyrovae.data.disk import sample_rows
from pyrovae.evaluate.latent_space import fitted_gaussian, interpolation_paths, sample_fitted
from pyrovae.models import LatentModel, frozen
from pyrovae.report import latent_figures
from pyrovae.spec import Spec
from pyrovae.train.rundir import read_metrics

__all__ = [
    "COLUMNS",
    "family_csv",
    "family_figures",
    "family_table",
    "markdown_table",
    "reading",
    "render_family",
]

COLUMNS = {
    "latent_prior_energy_distance": "energy distance, N(0, I) samples",
    "latent_fitted_energy_distance": "energy distance, fitted samples",
    "test_reconstruction_error": "reconstruction error",
    "test_corrupted_reconstruction_error": "from corrupted input",
    "latent_prior_sample_distance": "N(0, I) samples → data",
    "latent_fitted_sample_distance": "fitted samples → data",
    "latent_prior_coverage_distance": "data → N(0, I) samples",
    "latent_fitted_coverage_distance": "data → fitted samples",
    "latent_reconstruction_distance": "reconstructions → data",
    "latent_interpolation_distance": "interpolations → data",
    "latent_interpolation_roughness": "interpolation roughness",
}
"""Columns of the family table: metrics.json key -> heading. Lower is better in each."""

_SAMPLES_SHOWN = 12


def family_table(runs: dict[str, Path]) -> dict[str, dict[str, float]]:
    """kind -> the :data:`COLUMNS` metrics (and the test objective) from each run's metrics.json."""
    table = {}
    for kind, run_dir in runs.items():
        metrics = read_metrics(run_dir)
        row = {k: float(metrics[k]) for k in COLUMNS if k in metrics}
        objective = metrics.get("test_elbo_nats", metrics.get("test_objective_nats"))
        if objective is not None:
            row["test_objective_nats"] = float(objective)
        table[kind] = row
    return table


@torch.no_grad()
def family_figures(
    trained: Mapping[str, tuple[LatentModel, Dataset]],
    table: dict[str, dict[str, float]],
    folder: Path,
    seed: int,
) -> dict[str, Path]:
    """The family's figures in ``folder``: decoded N(0, I) codes (the same z for every
    kind), decoded codes from each kind's fitted Gaussian, one interpolation (image data
    only), and the distances as bars.

    Parameters
    ----------
    trained : mapping
        kind -> (trained model, its data), in table order.
    table : dict
        :func:`family_table`.
    folder : Path
        Where the PNG files go.
    seed : int
        Seed of the codes drawn.
    """
    first_model, first_data = next(iter(trained.values()))
    shape, test = first_data.image_shape, first_data.test
    out: dict[str, Path] = {}
    if shape is not None:
        models = {kind: frozen(model) for kind, (model, _) in trained.items()}
        latent = first_model.latent_dim
        z = torch.randn(_SAMPLES_SHOWN, latent, generator=torch.Generator().manual_seed(seed))
        out["samples"] = latent_figures.plot_family_rows(
            {k: m.decode(z * m.prior_scale) for k, m in models.items()},
            shape,
            folder / "family_samples.png",
            "family_samples",
            "Decoded codes z ~ N(0, I), the same z in every row",
        )
        fitted = {
            kind: m.decode(
                sample_fitted(
                    fitted_gaussian(m.code(sample_rows(trained[kind][1].train))),
                    _SAMPLES_SHOWN,
                    seed,
                )
            )
            for kind, m in models.items()
        }
        out["fitted_samples"] = latent_figures.plot_family_rows(
            fitted,
            shape,
            folder / "family_fitted_samples.png",
            "family_samples",
            "Decoded codes from a Gaussian fitted to each model's training codes",
        )
        out["interpolation"] = latent_figures.plot_family_rows(
            {
                k: interpolation_paths(m, test[:1], test[1:2], _SAMPLES_SHOWN)[0]
                for k, m in models.items()
            },
            shape,
            folder / "family_interpolation.png",
            "family_interpolation",
            "Straight line between the codes of the same two test inputs",
        )
    out["distances"] = latent_figures.plot_family_distances(
        {k: {m.removeprefix("latent_"): v for m, v in row.items()} for k, row in table.items()},
        folder / "family_distances.png",
    )
    return out


def family_csv(table: dict[str, dict[str, float]]) -> str:
    """``family.csv``: one row per kind, the :data:`COLUMNS` and the test objective."""
    keys = [*COLUMNS, "test_objective_nats"]
    lines = [",".join(["kind", *keys])]
    for kind, row in table.items():
        lines.append(",".join([kind, *(repr(row[k]) if k in row else "" for k in keys)]))
    return "\n".join(lines) + "\n"


def _best(table: dict[str, dict[str, float]], key: str) -> str | None:
    values = {k: row[key] for k, row in table.items() if key in row}
    return min(values, key=values.__getitem__) if values else None


def markdown_table(table: dict[str, dict[str, float]]) -> str:
    """The family table in markdown, the best value of each column in bold."""
    keys = [k for k in COLUMNS if any(k in row for row in table.values())]
    lines = [
        "| kind | " + " | ".join(COLUMNS[k] for k in keys) + " |",
        "| --- |" + " ---: |" * len(keys),
    ]
    best = {k: _best(table, k) for k in keys}
    for kind, row in table.items():
        cells = []
        for k in keys:
            cell = f"{row[k]:.3f}" if k in row else "–"
            cells.append(f"**{cell}**" if best[k] == kind else cell)
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(table: dict[str, dict[str, float]]) -> list[str]:
    """Sentences that state what the table shows, computed from it."""
    out = []
    autoencoders = {k: row for k, row in table.items() if k != "vae"}
    if "vae" in table and autoencoders:
        for key, what in (
            ("latent_prior_energy_distance", "Decoded N(0, I) codes"),
            ("latent_fitted_energy_distance", "Decoded codes from a fitted Gaussian"),
        ):
            best = min(autoencoders, key=lambda k: autoencoders[k][key])
            vae, ae = table["vae"][key], autoencoders[best][key]
            winner = "the VAE's" if vae < ae else f"{best}'s"
            out.append(
                f"{what}: energy distance to the data {vae:.3f} for the VAE, {ae:.3f} for the "
                f"best autoencoder ({best}); {winner} samples are "
                f"{max(vae, ae) / max(min(vae, ae), 1e-12):.1f}x closer."
            )
    if {"ae", "denoising_ae"} <= set(table):
        key = "test_corrupted_reconstruction_error"
        plain, dae = table["ae"][key], table["denoising_ae"][key]
        verdict = "better" if dae < plain else "no better"
        out.append(
            f"From corrupted inputs the denoising autoencoder reconstructs {verdict} than the "
            f"plain one: squared error {dae:.3f} against {plain:.3f}."
        )
    return out


def render_family(
    spec: Spec,
    table: dict[str, dict[str, float]],
    runs: dict[str, Path],
    figures: dict[str, Path],
    out_dir: Path,
) -> str:
    """The family report (markdown): what was compared, the table, the reading, the figures."""
    corruption = spec.model.autoencoder
    lines = [
        f"# pyrovae family: {spec.name}",
        "",
        f"The same spec (data `{spec.data.name}`, latent_dim = {spec.model.latent_dim}, "
        f"likelihood `{spec.model.likelihood.name}`, {spec.train.epochs} epochs, seed "
        f"{spec.train.seed}) trained as each model kind. Energy distances compare 1,000 decoded "
        "means with the training data as distributions (0 = the same); the other distances "
        "are from decoded means to the nearest training example (or back). All are Euclidean, "
        "in pixel space. Errors are squared and summed over values; corrupted inputs use "
        f"`{corruption.corruption}` at {corruption.corruption_level:g}. Lower is better in every "
        "column; the best is in bold. See `pyrovae.evaluate.latent_space` for the definitions.",
        "",
        markdown_table(table),
        "",
        *[f"- {line}" for line in reading(table)],
        "",
        "Runs: " + ", ".join(f"[{k}]({_rel(p, out_dir)}/report.md)" for k, p in runs.items()) + ".",
        "",
    ]
    for name, path in figures.items():
        lines += [f"## {name.replace('_', ' ')}", "", f"![{name}]({_rel(path, out_dir)})", ""]
    return "\n".join(lines)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
