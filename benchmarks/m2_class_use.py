"""Whether M2's decoder uses the class: its own generative classifier during training,
at two learning rates.

M2 learns from unlabelled images only as far as p(x | y, z) depends on y: the gradient
of U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)) pushes q(y|x) towards the classes whose
labelled ELBO L(x, y) is highest, and if L(x, y) is nearly the same for every y (the
class written into z instead) there is nothing to learn. This script trains
``examples/specs/mnist_m2.toml`` (10 labels per class, seed 0, classifier weight 100)
with Adam at lr 1e-3 and at 1e-2, in two processes of one thread each at the same time,
and every 5 epochs scores the 800 validation images (labels hidden from training):

- ``q(y|x)``: the accuracy of M2's classifier;
- ``argmax_y L``: the accuracy of the generative model's own classifier, the class whose
  labelled ELBO (4 draws of z per class) is highest;
- ``gap``: the mean difference in nats between the best and the second-best class's
  L(x, y), how strongly the decoder tells the classes apart.

Usage (from the project root)::

    python benchmarks/m2_class_use.py [--minutes M]

The last line printed is ``generative_accuracy_gain=`` (argmax_y L accuracy at lr 1e-2
minus at lr 1e-3, at the end of the budget, percentage points).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _jobs import pair_pool, require_mnist, run_pairs

from pyrovae.data import load_data
from pyrovae.data.labelled import split_rows
from pyrovae.models import M2
from pyrovae.pipeline import build, load_spec_data
from pyrovae.spec import load_spec
from pyrovae.train import TrainState, fit

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "specs" / "mnist_m2.toml"
RATES = (1e-3, 1e-2)
EVERY = 5
"""Epochs between two scorings."""


@torch.no_grad()
def class_use(model: M2, x: torch.Tensor, y: torch.Tensor, draws: int = 4) -> tuple:
    """Accuracy of q(y|x), accuracy of argmax_y L(x, y) and the mean gap in nats between
    the two highest L(x, y), for images ``x`` ``(N, D)`` with labels ``y`` ``(N,)``."""
    every = torch.arange(model.classes).unsqueeze(-1)  # (C, 1)
    loc, scale = model.encode_with(x, every)  # (C, N, L)
    q = torch.distributions.Normal(loc, scale)
    prior = torch.distributions.Normal(0.0, 1.0)
    elbo = torch.zeros(loc.shape[:-1])
    for _ in range(draws):
        z = q.sample()
        log_px = model.observation_with(z, every).log_prob(x)
        elbo += (prior.log_prob(z).sum(-1) + log_px - q.log_prob(z).sum(-1)) / draws
    best = elbo.topk(2, dim=0).values
    return (
        100 * (model.class_logits(x).argmax(-1) == y).double().mean().item(),
        100 * (elbo.argmax(0) == y).double().mean().item(),
        (best[0] - best[1]).mean().item(),
    )


def job(task: dict) -> dict:
    """Train M2 at ``task["lr"]`` for the budget, scoring the validation images as it goes."""
    torch.set_num_threads(1)
    spec = load_spec(
        SPEC,
        [
            f"data.path={task['mnist']!r}",
            "data.labelled=10",
            "train.classifier_weight=100",
            f"train.lr={task['lr']}",
            f"train.max_seconds={task['seconds']}",
            "train.threads=1",
        ],
    )
    data = load_spec_data(spec)
    x = split_rows(data.validation)[0]
    y = load_data(spec.data, spec.model.likelihood.name).validation_labels
    model = build(spec, data.dim, data.classes, data.image_shape)
    assert isinstance(model, M2)
    start, rows = time.perf_counter(), []

    def score(state: TrainState) -> None:
        if state.epoch % EVERY == 0:
            model.eval()
            rows.append((state.epoch, time.perf_counter() - start, *class_use(model, x, y)))
            model.train()

    result = fit(model, data, spec.train, progress=False, on_epoch_end=score)
    if not rows or rows[-1][0] != result.epochs:  # the end of the budget, if not scored yet
        model.eval()
        rows.append((result.epochs, time.perf_counter() - start, *class_use(model, x, y)))
    return {**task, "rows": rows}


def _describe(r: dict) -> str:
    return f"lr {r['lr']:g}: {r['rows'][-1][0]} epochs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="budget for each run")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    args = parser.parse_args()
    require_mnist(args.mnist)
    tasks = [{"mnist": args.mnist, "lr": lr, "seconds": 60 * args.minutes} for lr in RATES]
    with pair_pool() as pool:
        results = run_pairs(pool, job, tasks, _describe)
    print("| lr | epoch | seconds | q(y\\|x) (%) | argmax_y L (%) | gap (nats) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        for epoch, seconds, accuracy, generative, gap in r["rows"]:
            print(
                f"| {r['lr']:g} | {epoch} | {seconds:.0f} | {accuracy:.1f} | "
                f"{generative:.1f} | {gap:.1f} |"
            )
    last = {r["lr"]: r["rows"][-1] for r in results}
    print(f"generative_accuracy_gain={last[RATES[1]][3] - last[RATES[0]][3]:.1f}")


if __name__ == "__main__":
    main()
