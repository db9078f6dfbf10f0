"""The autoencoder family: how close each kind's decoded N(0, I) samples lie to the data.

Runs what ``pyrovae family`` runs (``pyrovae.family.run_family``: train every
model kind, vae, ae, tied_ae, denoising_ae and sparse_ae, on the same spec,
data, seed and budget, evaluate each, read the latent-space measures) into a
temporary directory, on

- **digits**: the embedded default spec (``pyrovae family`` with no spec:
  8x8 digits, 2-D codes, 256-128 encoder, Bernoulli, 300 epochs, seed 0);
- **mnist**: ``examples/specs/mnist_family.toml`` (the 8,000 / 2,000 split of
  the MNIST test set, 16-D codes, 784-400 encoder, Bernoulli, 60 epochs,
  seed 0); about 6 minutes on 2 cores.

The measure is the energy distance between 1,000 decoded z ~ N(0, I) and 2,000
training images (pixel space, lower is closer); the VAE is compared with the
best autoencoder. Also printed: the same with z drawn from a Gaussian fitted
to each model's own training codes, where the autoencoders are expected to do
better than the VAE.

Usage (from the project root)::

    python benchmarks/family.py [--data digits|mnist|both] [--epochs E] [--mnist DIR]

``--epochs`` overrides every data set's budget (for quick checks: the figures
in the README come from the specs' own epochs).

Printed per data set: the table of kinds; then ``family_fitted_ratio_<data>=<the
VAE's fitted-samples energy distance / the best autoencoder's>`` and
``family_ratio_<data>=<the best autoencoder's N(0, I) energy distance / the
VAE's>``. The last line is ``family_ratio_mnist=`` when MNIST is run,
``family_ratio_digits=`` otherwise.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _jobs import require_mnist

from pyrovae.family import run_family
from pyrovae.report.family import reading
from pyrovae.spec import FAMILY_KINDS, Spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
PRIOR, FITTED = "latent_prior_energy_distance", "latent_fitted_energy_distance"
COLUMNS = {
    PRIOR: "energy distance, N(0, I)",
    FITTED: "energy distance, fitted",
    "latent_prior_sample_distance": "N(0, I) → data",
    "latent_prior_coverage_distance": "data → N(0, I)",
    "test_reconstruction_error": "reconstruction error",
}


def family_spec(data: str, args: argparse.Namespace) -> Spec:
    """The spec ``pyrovae family`` is given for ``data``, with ``--epochs`` if set."""
    overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
    if data == "digits":
        return load_spec(None, overrides)
    path = ROOT / "examples" / "specs" / "mnist_family.toml"
    return load_spec(path, [f"data.path={args.mnist!r}", *overrides])


def run(data: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Train the family on ``data``, print its table; returns the two ratios."""
    spec = family_spec(data, args)
    start = time.perf_counter()
    result = run_family(
        spec, out / data, FAMILY_KINDS, particles=args.particles, progress=not args.quiet
    )
    seconds = time.perf_counter() - start
    table = result.table
    print(
        f"\n{data}: spec {spec.name!r}, latent_dim={spec.model.latent_dim}, "
        f"{spec.train.epochs} epochs, seed {spec.train.seed}; {seconds:.0f} s"
    )
    widths = [max(len(h), 9) for h in COLUMNS.values()]
    print(
        "  "
        + f"{'kind':13s}"
        + "  ".join(f"{h:>{w}s}" for h, w in zip(COLUMNS.values(), widths, strict=True))
    )
    for kind, row in table.items():
        cells = [
            f"{row.get(key, float('nan')):>{w}.3f}" for key, w in zip(COLUMNS, widths, strict=True)
        ]
        print("  " + f"{kind:13s}" + "  ".join(cells))
    for line in reading(table):
        print("  " + line)
    autoencoders = {k: row for k, row in table.items() if k != "vae"}
    best_prior = min(autoencoders, key=lambda k: autoencoders[k][PRIOR])
    best_fitted = min(autoencoders, key=lambda k: autoencoders[k][FITTED])
    vae = table["vae"]
    for kind in ("ae", "tied_ae"):
        print(
            f"  fitted samples: the VAE's energy distance / {kind}'s = "
            f"{vae[FITTED] / autoencoders[kind][FITTED]:.2f}"
        )
    print(f"  best autoencoder: {best_prior} from N(0, I), {best_fitted} from fitted codes")
    return {
        "fitted": vae[FITTED] / autoencoders[best_fitted][FITTED],
        "prior": autoencoders[best_prior][PRIOR] / vae[PRIOR],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("digits", "mnist", "both"), default="both")
    parser.add_argument("--epochs", type=int, help="override every spec's train.epochs")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument(
        "--particles",
        type=int,
        default=1000,
        help="k for the VAE's test log p(x) (as pyrovae family)",
    )
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    datasets = ["digits", "mnist"] if args.data == "both" else [args.data]
    if "mnist" in datasets:
        require_mnist(args.mnist, " (or --data digits)")
    print(
        f"threads={torch.get_num_threads()} data={','.join(datasets)} "
        f"kinds={','.join(FAMILY_KINDS)} "
        f"epochs={args.epochs or 'from the spec'} particles={args.particles}"
    )
    with tempfile.TemporaryDirectory(prefix="pyrovae-family-") as tmp:
        out = args.out or Path(tmp)
        ratios = {data: run(data, args, out) for data in datasets}
    print()
    # literal names, so that tests/test_figures_docs.py can tie the docs to them
    if "digits" in ratios:
        print(f"family_fitted_ratio_digits={ratios['digits']['fitted']:.2f}")
    if "mnist" in ratios:
        print(f"family_fitted_ratio_mnist={ratios['mnist']['fitted']:.2f}")
    if "digits" in ratios:
        print(f"family_ratio_digits={ratios['digits']['prior']:.2f}")
    if "mnist" in ratios:
        print(f"family_ratio_mnist={ratios['mnist']['prior']:.2f}")


if __name__ == "__main__":
    main()
