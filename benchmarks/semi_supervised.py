"""Semi-supervised M2 against its own classifier trained on the labels alone, and what
enumerating the class costs against a Python loop over the classes.

Data: the MNIST test set (``../shared/data/mnist``) split in order, first 8,000 images
for training (10% of them, labels hidden, for M2's validation ELBO) and the last 2,000
for testing, dynamically binarized; ``examples/specs/mnist_m2.toml``.

1. **Selection, on validation data only.** Each side gets its own settings chosen by
   the accuracy of its classifier on the 800 validation images (their labels are
   hidden from M2 in training and never used by the supervised side), 10 labels per
   class, seed 0, at two fifths of the budget; the test images are not read. M2 chooses
   its learning rate among ``LEARNING_RATES`` and its classifier weight (alpha / N, the
   one setting the paper leaves to the data) among ``CLASSIFIER_WEIGHTS``; the
   supervised-only side chooses its learning rate among the same ``LEARNING_RATES``.
2. **Accuracy at equal budget.** With the selected settings, for 10 and 100 labels per
   class (100 and 1,000 labels) and each seed, the labelled images are chosen with
   ``data.seed = seed``; M2 trains on them and on every other training image (labels
   hidden) for the budget;
   the **supervised-only** side is the same classifier network (784-500-10, softplus,
   the q(y|x) of M2) trained with the same Adam, batch size, dynamic binarization and
   wall-clock budget on the same labelled images alone, minimising the cross-entropy.
   Both are scored once on the 2,000 test images. The two sides of a seed run at the
   same time, in two processes of one torch thread each. Nothing is selected on the
   test images; M2's networks are the paper's (Kingma et al. 2014).
3. **Enumeration cost.** One training step (loss and gradients) of M2's unlabelled
   ELBO on a batch of 128 images: Pyro's ``TraceEnum_ELBO`` with the class enumerated
   in parallel (one batched pass over the 10 classes), against a hand-written loop over
   the 10 classes that computes the same U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)) class
   by class (its encoder's first layer, too, reads each image once); median of
   repeated steps, both in this process, interleaved.

Usage (from the project root)::

    python benchmarks/semi_supervised.py [--minutes M] [--seeds S] [--rates LR ...]
        [--weights W ...]

The last lines printed are ``enum_speedup=`` (loop time over enumeration time) and
``accuracy_gain=`` (M2 minus supervised-only test accuracy, 100 labels, percentage
points, mean over seeds).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from _jobs import mean_sd, pair_pool, require_mnist, run_pairs
from pyro.infer import TraceEnum_ELBO

from pyrovae.data import binarize, load_data
from pyrovae.data.labelled import HIDDEN, hide_labels, split_rows
from pyrovae.models import M2
from pyrovae.models.likelihoods import MIN_SCALE
from pyrovae.nets import build_encoder
from pyrovae.pipeline import build, load_spec_data
from pyrovae.spec import Spec, load_spec
from pyrovae.train import fit
from pyrovae.train.schedule import lr_at, set_lr

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "specs" / "mnist_m2.toml"
CLASSIFIER_WEIGHTS = (10.0, 100.0)
"""Default candidates for M2's train.classifier_weight (alpha / N). Kingma et al.'s 0.1,
and 1, were far behind on validation (``--weights 0.1 1 10 100 --rates 0.001``)."""
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
"""Default candidates for Adam's learning rate, for each side."""


def _spec(
    mnist: str, labels: int, seed: int, seconds: float, weight: float, lr: float = 1e-3
) -> Spec:
    return load_spec(
        SPEC,
        [
            f"data.path={mnist!r}",
            f"data.labelled={labels}",
            f"data.seed={seed}",
            f"train.seed={seed}",
            f"train.max_seconds={seconds}",
            f"train.classifier_weight={weight}",
            f"train.lr={lr}",
            "train.threads=1",
        ],
    )


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(-1) == y).double().mean().item()


def train_supervised(spec: Spec, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple:
    """The classifier network alone on labelled ``x`` ``(n, D)``, ``y`` ``(n,)``, for the
    spec's budget, its learning rate on the spec's schedule over the budget (as M2's
    runs under a time budget); returns it and the epochs done."""
    torch.manual_seed(seed)
    net = build_encoder(x.shape[1], int(y.max()) + 1, spec.model.encoder)
    optimizer = torch.optim.Adam(net.parameters(), lr=spec.train.lr)
    g = torch.Generator().manual_seed(seed)
    batch, start, epochs = spec.train.batch_size, time.perf_counter(), 0
    while time.perf_counter() - start < spec.train.max_seconds:
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], batch):
            rows = perm[i : i + batch]
            set_lr(optimizer, lr_at(spec.train, 0.0, time.perf_counter() - start))
            loss = torch.nn.functional.cross_entropy(net(binarize(x[rows], g)), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epochs += 1
    return net.eval(), epochs


def job(task: dict) -> dict:
    """Train one side for the budget in this (worker) process and score it on the test set."""
    torch.set_num_threads(1)
    spec = _spec(
        task["mnist"], task["labels"], task["seed"], task["budget"], task["weight"], task["lr"]
    )
    data = load_spec_data(spec)
    test_x, test_y = split_rows(data.test)
    if task["validation"]:  # score on the validation images, whose labels M2 never saw
        test_x = split_rows(data.validation)[0]
        test_y = load_data(spec.data, spec.model.likelihood.name).validation_labels
    if task["side"] == "m2":
        model = build(spec, data.dim, data.classes, data.image_shape)
        result = fit(model, data, spec.train, progress=False)
        assert isinstance(model, M2)
        with torch.no_grad():
            accuracy = _accuracy(model.eval().class_logits(test_x), test_y)
        epochs = result.epochs
    else:
        x, y = split_rows(data.train)
        known = y != HIDDEN
        net, epochs = train_supervised(spec, x[known], y[known], task["seed"])
        with torch.no_grad():
            accuracy = _accuracy(net(test_x), test_y)
    return {**task, "epochs": epochs, "accuracy": 100 * accuracy}


def _hand_loop_loss(model: M2, x: torch.Tensor) -> torch.Tensor:
    """-U(x) summed over the batch ``(B, D)``, class by class in a Python loop. Like the
    enumerated pass, the loop runs the encoder's first layer on the images once and
    adds each class's weight column to it (an MLP encoder)."""
    q = torch.softmax(model.class_logits(x), -1)
    total = (q * q.clamp_min(1e-30).log()).sum(-1)  # -H(q)
    prior = torch.distributions.Normal(0.0, 1.0)
    first, rest = model.encoder[0], model.encoder[1:]
    d = x.shape[-1]
    image_part = torch.nn.functional.linear(x, first.weight[:, :d], first.bias)
    for c in range(model.classes):
        y = torch.full((x.shape[0],), c)
        loc, raw = rest(image_part + first.weight[:, d + c]).chunk(2, dim=-1)
        scale = torch.nn.functional.softplus(raw) + MIN_SCALE
        z = loc + scale * torch.randn_like(loc)
        elbo = (
            -math.log(model.classes)
            + prior.log_prob(z).sum(-1)
            + model.observation_with(z, y).log_prob(x)
            - torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
        )
        total = total - q[:, c] * elbo
    return total.sum()


def enumeration_cost(mnist: str, repeats: int = 30) -> tuple[float, float, float, float]:
    """Median seconds per step (loss + backward) of TraceEnum_ELBO and of the hand loop on
    one batch of 128 unlabelled images, and both mean losses (nats per image)."""
    torch.set_num_threads(1)
    spec = _spec(mnist, 10, 0, 60, 0.1)
    data = load_spec_data(spec)
    model = build(spec, data.dim, data.classes, data.image_shape)
    assert isinstance(model, M2)
    rows = hide_labels(data.train[:128])
    rows = torch.cat([binarize(rows[:, :-1], torch.Generator().manual_seed(0)), rows[:, -1:]], 1)
    x = rows[:, :-1]
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    times: dict[str, list[float]] = {"enum": [], "loop": []}
    losses: dict[str, list[float]] = {"enum": [], "loop": []}
    steps = {
        "enum": lambda: elbo.differentiable_loss(model.model, model.guide, rows),
        "loop": lambda: _hand_loop_loss(model, x),
    }
    for i in range(repeats + 3):
        for name, step in steps.items():
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            loss = step()
            loss.backward()
            if i >= 3:  # warm-up
                times[name].append(time.perf_counter() - start)
                losses[name].append(loss.item() / 128)
    return (
        statistics.median(times["enum"]),
        statistics.median(times["loop"]),
        statistics.mean(losses["enum"]),
        statistics.mean(losses["loop"]),
    )


def _describe(r: dict) -> str:
    where = "validation" if r["validation"] else "test"
    weight = f", weight {r['weight']:g}" if r["side"] == "m2" else ""
    return (
        f"{r['side']} (lr {r['lr']:g}{weight}) {r['labels']}/class seed {r['seed']}: "
        f"{r['epochs']} epochs, {where} accuracy {r['accuracy']:.1f}%"
    )


def _candidates(mnist: str, minutes: float, rates: list[float], weights: list[float]) -> list[dict]:
    """The selection runs: M2 over learning rates x classifier weights, the supervised
    side over learning rates; 10 labels per class, seed 0, scored on validation."""
    common = {"mnist": mnist, "budget": 24 * minutes, "labels": 10, "seed": 0}
    m2 = [
        {**common, "side": "m2", "lr": lr, "weight": w, "validation": True}
        for lr in rates
        for w in weights
    ]
    alone = [
        {**common, "side": "supervised", "lr": lr, "weight": 0.0, "validation": True}
        for lr in rates
    ]
    return m2 + alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="budget for each run")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--seeds", type=int, default=3, help="runs per side and label count")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=list(LEARNING_RATES), help="lr candidates"
    )
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=list(CLASSIFIER_WEIGHTS),
        help="classifier weight candidates (alpha / N)",
    )
    args = parser.parse_args()
    require_mnist(args.mnist)
    enum_s, loop_s, enum_loss, loop_loss = enumeration_cost(args.mnist)
    print(
        f"one step on 128 unlabelled images, 1 thread: TraceEnum_ELBO {1000 * enum_s:.1f} ms "
        f"(-U {enum_loss:.2f} nats/image), loop over 10 classes {1000 * loop_s:.1f} ms "
        f"(-U {loop_loss:.2f})",
        flush=True,
    )
    print(
        f"MNIST 8,000 train / 2,000 test; budget {args.minutes:g} min per run, two runs at a "
        "time, 1 thread each",
        flush=True,
    )
    with pair_pool() as pool:
        print("selection: validation accuracy, 10 labels per class, seed 0", flush=True)
        candidates = _candidates(args.mnist, args.minutes, args.rates, args.weights)
        selection = run_pairs(pool, job, candidates, _describe)
        chosen = {
            side: max((r for r in selection if r["side"] == side), key=lambda r: r["accuracy"])
            for side in ("m2", "supervised")
        }
        print(
            f"selected: M2 lr {chosen['m2']['lr']:g}, classifier weight "
            f"{chosen['m2']['weight']:g}; supervised-only lr {chosen['supervised']['lr']:g}",
            flush=True,
        )
        tasks = [
            {
                **{key: chosen[side][key] for key in ("mnist", "side", "lr", "weight")},
                "budget": 60 * args.minutes,
                "labels": labels,
                "seed": seed,
                "validation": False,
            }
            for labels in (10, 100)
            for seed in range(args.seeds)
            for side in ("m2", "supervised")
        ]
        results = run_pairs(pool, job, tasks, _describe)
    print("| labels | M2 accuracy (%) | supervised-only (%) | gain (points) | M2 epochs |")
    print("| --- | --- | --- | --- | --- |")
    gains = {}
    for labels in (10, 100):
        ours = [r for r in results if r["labels"] == labels and r["side"] == "m2"]
        theirs = [r for r in results if r["labels"] == labels and r["side"] == "supervised"]
        gain = [a["accuracy"] - b["accuracy"] for a, b in zip(ours, theirs, strict=True)]
        gains[labels] = gain
        print(
            f"| {10 * labels} | {mean_sd([r['accuracy'] for r in ours], 1)} | "
            f"{mean_sd([r['accuracy'] for r in theirs], 1)} | {mean_sd(gain, 1)} | "
            f"{statistics.mean(r['epochs'] for r in ours):.0f} |"
        )
    print("(mean ± sd over seeds)")
    print(f"enum_speedup={loop_s / enum_s:.2f}")
    print(f"accuracy_gain={statistics.mean(gains[10]):.1f}")


if __name__ == "__main__":
    main()
