"""The autoencoder family side by side: one spec, every kind, one latent-space table.

:func:`run_family` (``pyrovae family``) trains the spec once per model kind
(``vae``, ``ae``, ``tied_ae``, ``denoising_ae``, ``sparse_ae`` by default),
each into ``OUT/<kind>/`` with the same data, networks, seed and budget, runs
the usual evaluation, and writes ``OUT/family.csv``, ``OUT/family.md`` (the
report) and ``OUT/figures/`` through :mod:`pyrovae.report.family`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pyrovae.errors import UserError
from pyrovae.pipeline import load_trained, run_pipeline
from pyrovae.report.family import family_csv, family_figures, family_table, render_family
from pyrovae.spec import FAMILY_KINDS, Spec, spec_from_dict, spec_to_dict
from pyrovae.train.guard import ensure_writable
from pyrovae.train.rundir import CHECKPOINT, write_atomic

__all__ = ["FamilyResult", "family_specs", "run_family"]


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
    if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(FAMILY_KINDS):
        raise UserError(
            f"--kinds: expected distinct names from {', '.join(FAMILY_KINDS)}, "
            f"got {', '.join(kinds)}"
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
    kinds: Sequence[str] = FAMILY_KINDS,
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
    specs = family_specs(spec, kinds)
    out_dir = ensure_writable(out_dir)
    taken = [k for k in kinds if (out_dir / k / CHECKPOINT).exists()]
    if taken:
        raise UserError(f"{out_dir} already holds runs of {', '.join(taken)}; choose another --out")
    runs = {}
    for kind, kind_spec in specs.items():
        runs[kind] = out_dir / kind
        run_pipeline(kind_spec, runs[kind], particles=particles, local_points=0, progress=progress)
    table = family_table(runs)
    trained = {kind: load_trained(path) for kind, path in runs.items()}
    figures = family_figures(
        {kind: (t.model, t.data) for kind, t in trained.items()},
        table,
        out_dir / "figures",
        spec.train.seed,
    )
    write_atomic(out_dir / "family.csv", family_csv(table).encode())
    report = out_dir / "family.md"
    write_atomic(report, render_family(spec, table, runs, figures, out_dir).encode())
    return FamilyResult(out_dir, runs, table, figures, report)
