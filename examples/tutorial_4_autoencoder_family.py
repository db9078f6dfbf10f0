"""Tutorial 4: the autoencoder family on the same data, and what the VAE's prior buys.

Before the VAE there were deterministic autoencoders: an encoder f(x) = z and a decoder
g(z) = x_hat, trained to reconstruct. pyrovae declares each as a Pyro model/guide pair
(a point-mass guide at f(x), a flat prior), so one spec trains every kind:

- ae: plain reconstruction loss;
- tied_ae: the decoder reuses the encoder's weights, transposed;
- denoising_ae: reconstructs the clean image from a corrupted copy;
- sparse_ae: codes in (0, 1), pushed to be mostly near 0;
- vae: a Gaussian q(z|x) and the prior p(z) = N(0, I) in the objective (the KL term).

Only the VAE is trained to fill N(0, I), so only its decoder should turn z ~ N(0, I)
into digits. The table measures that, in pixel space (lower is better everywhere).

    python examples/tutorial_4_autoencoder_family.py [--out DIR] [--fast]
"""

import argparse
import shutil
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Circle

from pyrovae import load_spec
from pyrovae.family import run_family
from pyrovae.pipeline import load_trained
from pyrovae.report.family import COLUMNS, reading

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs/tutorial-4"))
parser.add_argument("--fast", action="store_true", help="tiny sizes, for a smoke test")
args = parser.parse_args()
family_dir = args.out / "family"
if family_dir.exists():  # run_family refuses a folder that already holds these runs
    shutil.rmtree(family_dir)

# 1. One spec for every kind: the digits, 2-D codes, the same networks, seed and epochs.
overrides = ["name=tutorial-4", "model.latent_dim=2", "train.epochs=200"]
if args.fast:  # a tied decoder must mirror the encoder: [64] reversed is [64]
    overrides += ["train.epochs=3", "data.limit=300"]
    overrides += ["model.encoder.hidden=[64]", "model.decoder.hidden=[64]"]
spec = load_spec(None, overrides)

# 2. Train and evaluate each kind into family/<kind>/ (a full run directory each), then
# measure the latent spaces; family/family.md is the report, family/figures/ its figures.
kinds = ["vae", "ae", "tied_ae", "denoising_ae", "sparse_ae"]
result = run_family(spec, family_dir, kinds, particles=50 if args.fast else 1000, progress=False)

# 3. The table: a few of the columns of family.md, one row per kind.
columns = [
    "latent_prior_energy_distance",
    "latent_fitted_energy_distance",
    "test_reconstruction_error",
    "test_corrupted_reconstruction_error",
    "latent_interpolation_roughness",
]
lines = [
    "| kind | " + " | ".join(COLUMNS[c] for c in columns) + " |",
    "| --- |" + " ---: |" * len(columns),
]
for kind, row in result.table.items():
    lines.append(f"| {kind} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
table = "\n".join(lines)
print(table)
for sentence in reading(result.table):  # the comparisons the table supports, in words
    print("-", sentence)
(args.out / "family_table.md").write_text(table + "\n")

# 4. Where each kind puts the test images: codes f(x) (for the VAE the means of q(z|x)),
# coloured by digit, with the circle |z| = 2 that holds 86% of N(0, I).
fig = Figure(figsize=(3.2 * len(kinds), 3.4), layout="constrained")
for ax, (kind, run_dir) in zip(fig.subplots(1, len(kinds)), result.runs.items(), strict=True):
    trained = load_trained(run_dir)  # spec, model with its final weights, data, state
    codes = trained.model.code(trained.data.test).detach()
    ax.scatter(codes[:, 0], codes[:, 1], s=4, c=trained.data.test_labels, cmap="tab10")
    ax.add_patch(Circle((0, 0), 2, fill=False, linestyle="--"))
    ax.set(title=kind, xlabel="z1", ylabel="z2")
    ax.set_aspect("equal", adjustable="datalim")
fig.savefig(args.out / "family_codes.png", dpi=70)
print(
    f"wrote {args.out / 'family_codes.png'}, {args.out / 'family_table.md'} and "
    f"{result.report} (figures: {', '.join(p.name for p in result.figures.values())})"
)
