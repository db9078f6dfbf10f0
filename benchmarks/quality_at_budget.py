"""Quality at equal wall-clock budget: pyrovae's default MNIST spec against the
classic Pyro-example recipe.

Data: the MNIST test set (``../shared/data/mnist``) split in order, first
8,000 images for training and last 2,000 for testing, dynamically binarized
(the test images binarized once, with a fixed seed, and shared by both).

- **pyrovae**: ``examples/specs/mnist.toml`` as shipped (all 8,000 images for
  training, a VampPrior over 100 pseudo-inputs, IWAE k=5 with doubly
  reparameterised gradients, a cosine learning-rate anneal), with
  ``train.max_seconds`` set to the budget, so the anneal ends with it.
- **Pyro-example recipe**: the VAE of Pyro's ``examples/vae/vae.py``:
  784-400-50 softplus MLPs, q scale ``exp(.)``, Bernoulli means
  ``sigmoid(.)``, ``SVI`` + ``pyro.optim.Adam`` (lr 1e-3) + ``Trace_ELBO``,
  batch 256, trained on all 8,000 images until the budget is spent.

Both are scored with the same k-sample importance-sampled test log p(x).

Usage (from the project root)::

    python benchmarks/quality_at_budget.py [--minutes M] [--mnist DIR] [--particles K]

The last line printed is ``advantage_nats=<pyrovae minus recipe>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyrovae.data import binarize, load_data
from pyrovae.evaluate.likelihood import importance_log_likelihood
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-7


class RecipeVAE(nn.Module):
    """784-400-50 VAE as in Pyro's VAE example (z scale exp, Bernoulli probs)."""

    def __init__(self, z_dim: int = 50, hidden: int = 400) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.enc = nn.ModuleDict(
            {
                "hidden": nn.Linear(784, hidden),
                "loc": nn.Linear(hidden, z_dim),
                "log_scale": nn.Linear(hidden, z_dim),
            }
        )
        self.dec = nn.Sequential(
            nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, 784), nn.Sigmoid()
        )

    def model(self, x: torch.Tensor) -> None:
        pyro.module("recipe_decoder", self.dec)
        with pyro.plate("data", x.shape[0], dim=-1):
            z = pyro.sample(
                "z", dist.Normal(x.new_zeros(self.z_dim), x.new_ones(self.z_dim)).to_event(1)
            )
            probs = (self.dec(z) + EPS) * (1 - 2 * EPS)
            pyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("recipe_encoder", self.enc)
        with pyro.plate("data", x.shape[0], dim=-1):
            h = nn.functional.softplus(self.enc["hidden"](x))
            loc, scale = self.enc["loc"](h), self.enc["log_scale"](h).exp()
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def train_recipe(x: torch.Tensor, seconds: float, seed: int = 0) -> tuple[RecipeVAE, int]:
    """Train the recipe for ``seconds`` of wall time; return it and the epochs done."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = RecipeVAE()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), loss=Trace_ELBO())
    g = torch.Generator().manual_seed(seed)
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], 256):
            svi.step(binarize(x[perm[i : i + 256]], g))
            if time.perf_counter() - start >= seconds:
                break
        epochs += 1
    return vae, epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="budget for each side")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--particles", type=int, default=1000, help="k for log p(x)")
    args = parser.parse_args()
    if not (Path(args.mnist) / "t10k-images-idx3-ubyte.gz").exists():
        sys.exit(f"no MNIST test images in {args.mnist}; pass --mnist DIR")
    budget = args.minutes * 60
    spec = load_spec(
        ROOT / "examples" / "specs" / "mnist.toml",
        [f"data.path={args.mnist!r}", f"train.max_seconds={budget}", "train.epochs=100000"],
    )
    data = load_data(spec.data, spec.model.likelihood.name)
    test = data.test

    vae = build(spec, data.dim)
    result = fit(vae, data, spec.train, progress=True)
    ours = importance_log_likelihood(vae.eval(), test, args.particles, progress=True)

    recipe, recipe_epochs = train_recipe(torch.cat([data.train, data.validation]), budget)
    theirs = importance_log_likelihood(recipe.eval(), test, args.particles, progress=True)

    a, b = ours.log_px.mean().item(), theirs.log_px.mean().item()
    print(
        f"MNIST test set split 8,000 train / 2,000 test, dynamically binarized; "
        f"budget {args.minutes:g} min each on {torch.get_num_threads()} threads; "
        f"log p(x) with k={args.particles}"
    )
    print("| model | epochs | stop | test log p(x) (nats) |")
    print("| --- | --- | --- | --- |")
    print(
        f"| pyrovae examples/specs/mnist.toml | {result.epochs}"
        f"{f' (best {result.state.best_epoch})' if result.state.best_epoch else ''} "
        f"| {result.stop_reason} | {a:.2f} ± {ours.mean_se:.2f} |"
    )
    print(
        f"| Pyro-example recipe (784-400-50) | {recipe_epochs} | time_limit "
        f"| {b:.2f} ± {theirs.mean_se:.2f} |"
    )
    print(f"advantage_nats={a - b:.2f}")


if __name__ == "__main__":
    main()
