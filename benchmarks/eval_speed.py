"""Evaluation speed: k=1000 importance-sampled log p(x) on 2,000 MNIST images.

Trains the package's default MNIST spec (examples/specs/mnist.toml) briefly on
the first 8,000 images of the MNIST test set (dynamically binarized), then
times a full ``pyrovae.evaluate.likelihood.evaluate`` call (ELBO parts, KL per
dimension, active units and k=1000 importance-sampled log p(x)) on the last
2,000, as ``pyrovae evaluate`` runs it.

Usage (from the project root)::

    python benchmarks/eval_speed.py [--mnist DIR] [--particles K] [--epochs E]

The last line printed is ``seconds=<value>``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _jobs import require_mnist

from pyrovae.data import load_data
from pyrovae.evaluate.likelihood import evaluate
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="training before timing")
    args = parser.parse_args()
    require_mnist(args.mnist)
    spec = load_spec(
        ROOT / "examples" / "specs" / "mnist.toml",
        [f"data.path={args.mnist!r}", f"train.epochs={args.epochs}"],
    )
    data = load_data(spec.data, spec.model.likelihood.name)
    vae = build(spec, data.dim)
    fit(vae, data, spec.train, progress=False)
    start = time.perf_counter()
    result = evaluate(vae.eval(), data.test, particles=args.particles, progress=True)
    seconds = time.perf_counter() - start
    print(f"images={data.test.shape[0]} k={args.particles} threads={torch.get_num_threads()}")
    print(
        f"test log p(x) = {result.log_likelihood:.3f} ± {result.log_likelihood_se:.3f} nats "
        f"(ELBO {result.elbo:.3f}) after {args.epochs} epochs"
    )
    print(f"seconds={seconds:.2f}")


if __name__ == "__main__":
    main()
