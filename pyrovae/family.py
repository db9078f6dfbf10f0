"""The autoencoder family side by side: one spec, every kind, one latent-space table.

:func:`run_family` (``pyrovae family``) trains the spec once per model kind
(``vae``, ``ae``, ``tied_ae``, ``denoising_ae``, ``sparse_ae`` by default),
each into ``OUT/<kind>/`` with the same data, networks, seed and budget, runs
the usual evaluation, and writes ``OUT/family.csv``, ``OUT/family.md`` (the
report) and ``OUT/figures/``: decoded N(0, I) codes (the same z for every
kind), decoded codes from each kind's fitted Gaussian, one interpolation,
and the distances as bars. The measures are those of
:mod:`pyrovae.latent_space`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from pyrovae import latent_plots
from pyrovae.errors import UserError
from pyrovae.infer.local import frozen
from pyrovae.latent_space import fitted_gaussian, interpolation_paths, sample_fitted
from pyrovae.pipeline import load_trained, run_pipeline
from pyrovae.runs import CHECKPOINT, read_metrics, write_atomic
from pyrovae.spec import KINDS, Spec, spec_from_dict, spec_to_dict

__all__ = [
    "COLUMNS",
    "FamilyResult",
    "family_specs",
    "family_table",
    "markdown_table",
    "reading",
    "render_family",
    "run_family",
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


class FamilyResult(NamedTuple):
    """What :func:`run_family` wrote."""

    out_dir: Path
    runs: dict[str, Path]
    """kind -> its run directory."""
    table: dict[str, dict[str, float]]
    """kind -> metrics.json key -> value, for the keys of :data:`COLUMNS`."""
    figures: dict[str, Path]
    report: Path


def family_specs(spec: Spec, kinds: Sequence[str]) -> dict[str, Spec]:
    """``spec`` with ``model.kind`` set to each of ``kinds``, every one validated up front.

    Raises
    ------
    UserError
        An unknown or repeated kind, or a spec that is invalid for a kind (e.g. the
        ``iwae`` objective, which an autoencoder cannot use), before anything trains.
    """
    if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(KINDS):
        raise UserError(
            f"--kinds: expected distinct names from {', '.join(KINDS)}, got {', '.join(kinds)}"
        )
    out = {}
    for kind in kinds:
        raw = spec_to_dict(spec)
        raw["model"]["kind"] = kind
        raw["name"] = f"{spec.name}-{kind}"
        try:
            out[kind] = spec_from_dict(raw)
        except UserError as err:
            raise UserError(f"for model.kind = '{kind}': {err}") from None
    return out


def run_family(
    spec: Spec,
    out_dir: str | Path,
    kinds: Sequence[str] = KINDS,
    *,
    particles: int = 1000,
    progress: bool = True,
) -> FamilyResult:
    """Train and evaluate every kind on ``spec``'s data, then compare their latent spaces.

    Parameters
    ----------
    spec : Spec
        Everything but ``model.kind`` is shared by the kinds.
    out_dir : str or Path
        Must not hold runs of these kinds yet.
    kinds : sequence of str
        Model kinds to train, in table order.
    particles : int
        Importance samples of the VAE's test log p(x).
    progress : bool
        Progress bars while training.
    """
    out_dir = Path(out_dir)
    specs = family_specs(spec, kinds)
    taken = [k for k in kinds if (out_dir / k / CHECKPOINT).exists()]
    if taken:
        raise UserError(f"{out_dir} already holds runs of {', '.join(taken)}; choose another --out")
    runs = {}
    for kind, kind_spec in specs.items():
        runs[kind] = out_dir / kind
        run_pipeline(kind_spec, runs[kind], particles=particles, local_points=0, progress=progress)
    table = family_table(runs)
    figures = _figures(runs, table, out_dir / "figures", spec.train.seed)
    write_atomic(out_dir / "family.csv", _csv(table).encode())
    report = out_dir / "family.md"
    write_atomic(report, render_family(spec, table, runs, figures, out_dir).encode())
    return FamilyResult(out_dir, runs, table, figures, report)


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
def _figures(
    runs: dict[str, Path], table: dict[str, dict[str, float]], folder: Path, seed: int
) -> dict[str, Path]:
    trained = {kind: load_trained(path) for kind, path in runs.items()}
    first = next(iter(trained.values()))
    shape, test = first.data.image_shape, first.data.test
    out: dict[str, Path] = {}
    if shape is not None:
        models = {kind: frozen(t.model) for kind, t in trained.items()}
        latent = first.spec.model.latent_dim
        z = torch.randn(_SAMPLES_SHOWN, latent, generator=torch.Generator().manual_seed(seed))
        out["samples"] = latent_plots.plot_family_rows(
            {k: m.decode(z * m.prior_scale) for k, m in models.items()},
            shape,
            folder / "family_samples.png",
            "family_samples",
            "Decoded codes z ~ N(0, I), the same z in every row",
        )
        fitted = {
            kind: m.decode(
                sample_fitted(
                    fitted_gaussian(m.code(trained[kind].data.train)), _SAMPLES_SHOWN, seed
                )
            )
            for kind, m in models.items()
        }
        out["fitted_samples"] = latent_plots.plot_family_rows(
            fitted,
            shape,
            folder / "family_fitted_samples.png",
            "family_samples",
            "Decoded codes from a Gaussian fitted to each model's training codes",
        )
        out["interpolation"] = latent_plots.plot_family_rows(
            {
                k: interpolation_paths(m, test[:1], test[1:2], _SAMPLES_SHOWN)[0]
                for k, m in models.items()
            },
            shape,
            folder / "family_interpolation.png",
            "family_interpolation",
            "Straight line between the codes of the same two test inputs",
        )
    out["distances"] = latent_plots.plot_family_distances(
        {k: {m.removeprefix("latent_"): v for m, v in row.items()} for k, row in table.items()},
        folder / "family_distances.png",
    )
    return out


def _csv(table: dict[str, dict[str, float]]) -> str:
    keys = [*COLUMNS, "test_objective_nats"]
    lines = [",".join(["kind", *keys])]
    for kind, row in table.items():
        lines.append(",".join([kind, *(repr(row[k]) if k in row else "" for k in keys)]))
    return "\n".join(lines) + "\n"


def _best(table: dict[str, dict[str, float]], key: str) -> str | None:
    values = {k: row[key] for k, row in table.items() if key in row}
    return min(values, key=values.get) if values else None


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
        "column; the best is in bold. See `pyrovae.latent_space` for the definitions.",
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
