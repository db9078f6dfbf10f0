"""Tutorial 3: how good is the encoder? Local posteriors p(z|x) and the amortization gap.

A VAE's encoder q_phi(z|x) is *amortized*: one network answers for every image at once.
Its answer for one image x can be off in two ways (Cremer, Li and Duvenaud 2018):

- the family: q is a diagonal Gaussian, and the true posterior p(z|x) may not be one;
- the amortization: even within that family, the encoder may not output the best member.

With the decoder frozen, p(z|x) of a single test image is a small posterior that we can
attack directly: fit the best diagonal Gaussian for that image alone (q*, "per point"),
and sample it with NUTS. Then, per image, in nats:

    approximation gap = log p(x) - ELBO(q*)          what the Gaussian family costs
    amortization gap  = ELBO(q*) - ELBO(q_phi)       what sharing one encoder costs

    python examples/tutorial_3_local_posteriors.py [--out DIR] [--fast]
"""

import argparse
import shutil
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from pyrovae import load_spec, train_model
from pyrovae.local.posteriors import gap_table
from pyrovae.pipeline import compare_run

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs/tutorial-3"))
parser.add_argument("--fast", action="store_true", help="tiny sizes, for a smoke test")
args = parser.parse_args()
run_dir = args.out / "run"
if run_dir.exists():  # train_model refuses a folder that holds a run: start afresh
    shutil.rmtree(run_dir)

# 1. Train the default digits VAE (2-D latent space) into a run directory.
overrides = ["name=tutorial-3", "train.epochs=200"]
if args.fast:
    overrides = ["name=tutorial-3", "train.epochs=3", "data.limit=300"]
outcome = train_model(load_spec(None, overrides), run_dir, progress=False)
print(f"trained {outcome.fit.epochs} epochs: test ELBO {outcome.metrics['test_elbo_nats']:.2f}")

# 2. Compare local posteriors of the first few test images: the encoder ("amortized"),
# the per-point fit q*, Metropolis and NUTS, which is the reference. Every posterior is
# also saved as ArviZ InferenceData in run/local_posteriors/posteriors/.
points = 2 if args.fast else 4
draws, warmup = (50, 50) if args.fast else (1000, 500)  # per NUTS chain, two chains
comparison, local, files = compare_run(
    run_dir, points=points, num_samples=draws, warmup_steps=warmup, progress=False
)

# 3. The gaps. log p(x) is importance-sampled with q* as the proposal. Both gaps are
# >= 0 up to Monte Carlo noise. A large amortization gap says the encoder under-fits
# (train longer, or a bigger encoder); a large approximation gap says p(z|x) is not
# Gaussian-shaped (a richer q would help, e.g. a flow or importance weighting).
table = gap_table(local)
print(table)
(args.out / "gaps.md").write_text(table + "\n")
for row in comparison.method_rows:  # each method's draws against NUTS, all points
    print(
        f"{row['method']:10} vs NUTS: sd ratio {row['min_sd_ratio']:.2f}-"
        f"{row['max_sd_ratio']:.2f}, max mean error {row['max_abs_mean_error_sd']:.2f} sd"
    )

# 4. Per image: the image, NUTS draws of p(z|x) (grey), and the two diagonal Gaussians as
# ellipses of two standard deviations: the encoder's q_phi (blue) and the per-point q*
# (orange). Where blue sits off the cloud and orange on it, that is the amortization gap.
fig = Figure(figsize=(3 * points, 5), layout="constrained")
axes = fig.subplots(2, points, height_ratios=[1, 2], squeeze=False)
for i in range(points):
    axes[0, i].imshow(local.x[i].reshape(8, 8), cmap="gray_r")
    axes[0, i].set(title=f"test image {i + 1}", xticks=[], yticks=[])
    z = local.draws["nuts"][:, i]  # draws: (draw, point, latent)
    axes[1, i].scatter(z[:, 0], z[:, 1], s=3, color="0.6", label="p(z|x), NUTS")
    for method, colour in [("amortized", "tab:blue"), ("per_point", "tab:orange")]:
        z = local.draws[method][:, i]
        (mx, my), (sx, sy) = z.mean(0), z.std(0)
        axes[1, i].add_patch(Ellipse((mx, my), 4 * sx, 4 * sy, fill=False, color=colour, lw=2))
        axes[1, i].plot(mx, my, "+", color=colour, ms=12, mew=2, label=method)
    axes[1, i].set(xlabel="z1", ylabel="z2")
axes[1, 0].legend(fontsize="small")
fig.savefig(args.out / "local_posteriors.png", dpi=80)
print(
    f"wrote {args.out / 'local_posteriors.png'} and {args.out / 'gaps.md'}; "
    f"the full comparison is in {run_dir / 'local_posteriors'}"
)
