"""The local-posterior section of a run's report.md, read from the files the bridge wrote."""

from __future__ import annotations

from pathlib import Path

from pyrovae.posterior.diagnostics import MAX_FOREST_ROWS, MAX_PAIR_ELEMENTS, PAIR_POINTS
from pyrovae.posterior.plots import MAX_MARGINAL_PANELS

__all__ = ["local_section"]


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
    overlays = {
        "marginals": "Marginals of each method against the NUTS reference (the comparison's "
        "own figure, in its colours).",
        "pairs": "Joint draws of each method against the reference, two coordinates at a time.",
        # diagnostics.plot_overlays, called by pyrovae.posterior.files
        "density": f"ArviZ density overlay: each method's marginal of the first "
        f"{MAX_MARGINAL_PANELS} coordinates z[n,l] (point n, latent l) over its 99% HDI, dots "
        "at the means; the NUTS reference in grey.",
        "forest": f"ArviZ forest plot of the first {MAX_FOREST_ROWS} coordinates z[n,l] per "
        "method (chains combined): median (dot), quartiles (thick) and 94% HDI (thin).",
        "pair": f"ArviZ pair plot: every pair of the first {MAX_PAIR_ELEMENTS} coordinates "
        f"z[n,l], {PAIR_POINTS} draws per method (later methods drawn over earlier ones).",
    }
    for name, caption in overlays.items():
        if (folder / "figures" / f"{name}.png").is_file():
            parts += [caption, "", f"![{name}]({rel}/figures/{name}.png)", ""]
    for name in ("loo.md", "arviz_summary.md"):  # written by pyrovae.posterior.files
        if (folder / name).is_file():
            parts += [_nest_headings((folder / name).read_text().strip()), ""]
    return "\n".join(parts)
