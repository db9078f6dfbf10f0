"""NUTS over many local posteriors in one plate, against one NUTS run per point.

Trains the embedded digits VAE (2-D latent), freezes its decoder, and samples
p(z|x) of 64 test images with NUTS (1 chain, 500 warm-up, 1000 draws):

- **one plate**: one run whose target holds all 64 latents (z has shape (64, 2));
- **per point**: one run per image, for the first ``--separate`` images (8 by
  default; running all 64 one by one takes many minutes and changes nothing).

The figure is the effective sample size per second *per point*: the smaller
ESS of a point's two latent coordinates divided by the wall time spent on that
point, which is the whole run for a per-point run and the run's time divided
by the number of points for the one-plate run (one run serves them all).
Averaged over the same images on both sides.

Usage (from the project root)::

    python benchmarks/local_mcmc.py [--points 64] [--separate 8] [--epochs 300]

The last line printed is ``speedup=<one plate / per point>``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pyrovae.models import frozen
from pyrovae.pipeline import train_model
from pyrovae.posterior.inference.mcmc import run_mcmc
from pyrovae.spec import load_spec

SETTINGS = {"num_samples": 1000, "warmup_steps": 500, "num_chains": 1, "seed": 0}


def per_point_ess(result) -> torch.Tensor:
    """Smaller ESS of each point's latent coordinates: ``(N,)``."""
    ess = result.ess["z"]
    return ess.reshape(-1, ess.shape[-1]).min(-1).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--separate", type=int, default=8, help="points run one by one")
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(None, [f"train.epochs={args.epochs}"])
        outcome = train_model(spec, tmp, progress=False)
    vae = frozen(outcome.model)
    x = outcome.data.test[: args.points]

    joint = run_mcmc(vae.model, {"x": x}, kernel="nuts", **SETTINGS)
    joint_rate = per_point_ess(joint) / (joint.seconds / x.shape[0])
    separate_rates, separate_seconds = [], []
    for n in range(args.separate):
        one = run_mcmc(vae.model, {"x": x[n : n + 1]}, kernel="nuts", **SETTINGS)
        separate_rates.append(per_point_ess(one)[0].item() / one.seconds)
        separate_seconds.append(one.seconds)
    a = joint_rate[: args.separate].mean().item()
    b = statistics.mean(separate_rates)
    print(f"digits VAE, 2-D latent; NUTS {SETTINGS}; threads={torch.get_num_threads()}")
    print(
        f"one plate, {args.points} points: {joint.seconds:.1f} s, per-point ESS median "
        f"{per_point_ess(joint).median():.0f}, divergences {int(joint.divergences.sum())}"
    )
    print(f"per point, first {args.separate}: {statistics.mean(separate_seconds):.1f} s each")
    print(f"ESS/s per point (first {args.separate} points): one plate {a:.1f}, per point {b:.1f}")
    print(f"speedup={a / b:.1f}")


if __name__ == "__main__":
    main()
