"""Quality at equal wall-clock budget: pyrovae's MNIST spec, chosen on a validation
split, against the classic Pyro-example recipe, over several seeds.

Data: the MNIST test set (``../shared/data/mnist``) split in order, first
8,000 images for training and last 2,000 for testing, dynamically binarized
(held-out images binarized once, with a fixed seed, and shared by both sides).

1. **Selection, on validation data only.** Each candidate spec (``CANDIDATES``:
   ``examples/specs/mnist.toml`` and the variants it was chosen among) trains on the
   first 7,000 training images for the budget and is scored by its importance-sampled
   log p(x) on the other 1,000 training images. The best is selected; the test images
   are not read.
2. **Test, once per seed.** The selected spec trains on all 8,000 images, and so does
   the **Pyro-example recipe** (the VAE of Pyro's ``examples/vae/vae.py``: 784-400-50
   softplus MLPs, q scale ``exp(.)``, Bernoulli means ``sigmoid(.)``, ``SVI`` +
   ``pyro.optim.Adam`` (lr 1e-3) + ``Trace_ELBO``, batch 256), for seeds 0, 1, 2...;
   each is scored once on the 2,000 test images with the same k-sample
   importance-sampled log p(x).

Jobs run two at a time in separate processes with one torch thread each, so that the
two sides of a seed (and two candidates) train at the same time on the same machine
and get one core each.

Usage (from the project root)::

    python benchmarks/quality_at_budget.py [--minutes M] [--seeds S] [--particles K]

The last lines printed are ``advantage_sd=<sd over seeds of the paired difference>``
and ``advantage_nats=<mean over seeds of pyrovae minus recipe>``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from _jobs import pair_pool, paired_difference, print_budget_tables, require_mnist, run_pairs
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


CANDIDATES: dict[str, list[str]] = {
    "iwae k=5, N(0, I)": ["model.prior.name=normal", "train.objective=iwae"],
    "iwae_dreg k=5, N(0, I)": ["model.prior.name=normal"],
    "iwae k=5, VampPrior K=100": ["train.objective=iwae"],
    "iwae_dreg k=5, VampPrior K=100 (mnist.toml)": [],
}
"""Overrides of ``examples/specs/mnist.toml`` (cosine lr 3e-3, batch 128, 784-400-50)."""


def _spec(mnist: str, budget: float, overrides: list[str], seed: int, validation: bool):
    return load_spec(
        ROOT / "examples" / "specs" / "mnist.toml",
        [
            f"data.path={mnist!r}",
            f"train.max_seconds={budget}",
            "train.epochs=100000",
            "train.threads=1",
            f"train.seed={seed}",
            f"data.validation_fraction={0.125 if validation else 0.0}",
            *overrides,
        ],
    )


def job(task: dict) -> dict:
    """Train one side for the budget in this (worker) process and score it.

    ``task``: side (``pyrovae`` or ``recipe``), overrides, seed, validation (score on
    the 1,000 validation images instead of the test images), mnist, budget, particles.
    """
    torch.set_num_threads(1)
    spec = _spec(task["mnist"], task["budget"], task["overrides"], task["seed"], task["validation"])
    data = load_data(spec.data, spec.model.likelihood.name)
    scored = data.validation if task["validation"] else data.test
    if task["side"] == "pyrovae":
        vae = build(spec, data.dim)
        result = fit(vae, data, spec.train, progress=False)
        epochs = result.epochs
    else:
        vae, epochs = train_recipe(data.train, task["budget"], task["seed"])
    estimate = importance_log_likelihood(vae.eval(), scored, task["particles"])
    return {**task, "epochs": epochs, "log_px": estimate.log_px.mean().item()}


def _describe(r: dict) -> str:
    where = "validation" if r["validation"] else "test"
    name = r.get("name", r["side"])
    return f"{name} seed {r['seed']}: {r['epochs']} epochs, {where} log p(x) {r['log_px']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="budget for each run")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--particles", type=int, default=1000, help="k for log p(x)")
    parser.add_argument("--seeds", type=int, default=3, help="test runs per side")
    args = parser.parse_args()
    require_mnist(args.mnist)
    common = {"mnist": args.mnist, "budget": args.minutes * 60, "particles": args.particles}
    print(
        f"MNIST test set split 8,000 train / 2,000 test; budget {args.minutes:g} min per run, "
        f"two runs at a time, 1 thread each; log p(x) with k={args.particles}",
        flush=True,
    )
    with pair_pool() as pool:
        print("selection: 7,000 training images, scored on the other 1,000", flush=True)
        candidates = [
            {
                **common,
                "side": "pyrovae",
                "name": name,
                "overrides": o,
                "seed": 0,
                "validation": True,
            }
            for name, o in CANDIDATES.items()
        ]
        selection = run_pairs(pool, job, candidates, _describe)
        best = max(selection, key=lambda r: r["log_px"])
        print(f"selected={best['name']}", flush=True)
        print("test: all 8,000 training images, scored once on the 2,000 test images")
        tests = []
        for seed in range(args.seeds):
            for side in ("pyrovae", "recipe"):
                tests.append(
                    {
                        **common,
                        "side": side,
                        "overrides": best["overrides"],
                        "seed": seed,
                        "validation": False,
                    }
                )
        results = run_pairs(pool, job, tests, _describe)
    ours = [r for r in results if r["side"] == "pyrovae"]
    theirs = [r for r in results if r["side"] == "recipe"]
    print_budget_tables(selection, [("pyrovae (selected)", ours), ("Pyro-example recipe", theirs)])
    mean, sd = paired_difference(ours, theirs)
    clears = "yes" if mean - 2.0 > sd else "no"
    print(f"clears 2 nats by more than the spread: {clears}")
    print(f"advantage_sd={sd:.2f}")
    print(f"advantage_nats={mean:.2f}")


if __name__ == "__main__":
    main()
