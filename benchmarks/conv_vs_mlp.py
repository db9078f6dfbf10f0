"""Conv against MLP networks at equal wall-clock budget on MNIST: ``mnist_conv.toml``
against ``mnist.toml``, both scored by the importance-sampled log p(x).

Data: the MNIST test set (``../shared/data/mnist``) split in order, first 8,000 images
for training and last 2,000 for testing, dynamically binarized (held-out images
binarized once, with a fixed seed, and shared by both sides).

1. **Selection, on validation data only.** Each conv candidate (``CANDIDATES``:
   overrides of ``examples/specs/mnist_conv.toml``) trains on the first 7,000 training
   images for the budget and is scored by its log p(x) (k = ``--select-particles``) on
   the other 1,000. The best is selected; the test images are not read. (The MLP side,
   ``mnist.toml``, was selected the same way by ``quality_at_budget.py``.)
2. **Test, once per seed.** The selected conv spec and ``mnist.toml`` train on all
   8,000 images for the budget, side by side (two processes, one torch thread each),
   and are scored once on the 2,000 test images with the same k-sample log p(x).

Usage (from the project root)::

    python benchmarks/conv_vs_mlp.py [--minutes M] [--seeds S] [--particles K]

The last line printed is ``conv_minus_mlp_nats=<mean over seeds of conv minus MLP test
log p(x)>``, after ``conv_minus_mlp_sd=`` (sd over seeds; nan for one seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _jobs import pair_pool, paired_difference, print_budget_tables, require_mnist, run_pairs

from pyrovae.data import load_data
from pyrovae.evaluate.likelihood import importance_log_likelihood
from pyrovae.pipeline import build
from pyrovae.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

CANDIDATES: dict[str, list[str]] = {
    "conv, iwae_dreg k=5, VampPrior K=100 (mnist.toml's recipe)": [],
    "conv, elbo (1 sample), N(0, I)": [
        "train.objective=elbo",
        "train.particles=1",
        "model.prior.name=normal",
    ],
}
"""Overrides of ``examples/specs/mnist_conv.toml``."""


def _spec(task: dict):
    return load_spec(
        ROOT / "examples" / "specs" / task["file"],
        [
            f"data.path={task['mnist']!r}",
            f"train.max_seconds={task['budget']}",
            "train.epochs=100000",
            "train.threads=1",
            f"train.seed={task['seed']}",
            f"data.validation_fraction={0.125 if task['validation'] else 0.0}",
            *task["overrides"],
        ],
    )


def job(task: dict) -> dict:
    """Train one spec for the budget in this (worker) process and score it.

    ``task``: name, file (a spec in examples/specs), overrides, seed, validation (score
    on the 1,000 validation images instead of the test images), mnist, budget, particles.
    """
    from pyrovae.train import fit

    torch.set_num_threads(1)
    spec = _spec(task)
    data = load_data(spec.data, spec.model.likelihood.name)
    scored = data.validation if task["validation"] else data.test
    model = build(spec, data.dim, image=data.image_shape)
    result = fit(model, data, spec.train, progress=False)
    estimate = importance_log_likelihood(model.eval(), scored, task["particles"])
    return {**task, "epochs": result.epochs, "log_px": estimate.log_px.mean().item()}


def _describe(r: dict) -> str:
    where = "validation" if r["validation"] else "test"
    return (
        f"{r['name']} seed {r['seed']}: {r['epochs']} epochs, {where} log p(x) "
        f"{r['log_px']:.2f} (k={r['particles']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="budget for each run")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--particles", type=int, default=1000, help="k for the test log p(x)")
    parser.add_argument(
        "--select-particles", type=int, default=200, help="k for the validation log p(x)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="test runs per side")
    args = parser.parse_args()
    require_mnist(args.mnist)
    common = {"mnist": args.mnist, "budget": args.minutes * 60}
    print(
        f"MNIST test set split 8,000 train / 2,000 test; budget {args.minutes:g} min per run, "
        f"two runs at a time, 1 thread each; test log p(x) with k={args.particles}",
        flush=True,
    )
    with pair_pool() as pool:
        print("selection: 7,000 training images, scored on the other 1,000", flush=True)
        candidates = [
            {
                **common,
                "name": name,
                "file": "mnist_conv.toml",
                "overrides": o,
                "seed": 0,
                "validation": True,
                "particles": args.select_particles,
            }
            for name, o in CANDIDATES.items()
        ]
        selection = run_pairs(pool, job, candidates, _describe)
        best = max(selection, key=lambda r: r["log_px"])
        print(f"selected={best['name']}", flush=True)
        print("test: all 8,000 training images, scored once on the 2,000 test images")
        tests = []
        for seed in range(args.seeds):
            for name, file, overrides in (
                ("conv (selected)", "mnist_conv.toml", best["overrides"]),
                ("mlp (mnist.toml)", "mnist.toml", []),
            ):
                tests.append(
                    {
                        **common,
                        "name": name,
                        "file": file,
                        "overrides": overrides,
                        "seed": seed,
                        "validation": False,
                        "particles": args.particles,
                    }
                )
        results = run_pairs(pool, job, tests, _describe)
    conv = [r for r in results if r["file"] == "mnist_conv.toml"]
    mlp = [r for r in results if r["file"] == "mnist.toml"]
    print_budget_tables(selection, [(conv[0]["name"], conv), (mlp[0]["name"], mlp)])
    mean, sd = paired_difference(conv, mlp)
    print(f"conv_minus_mlp_sd={sd:.2f}")
    print(f"conv_minus_mlp_nats={mean:.2f}")


if __name__ == "__main__":
    main()
