"""Gradient noise of DReG against IWAE, with a VampPrior and with N(0, I).

With ``model.prior.name = "vamp"`` the encoder also sets the prior's
components (the guide's Gaussians at the pseudo-inputs), so the encoder and
the pseudo-inputs reach the bound through log p(z) as well as through z.
``iwae_dreg`` keeps the direct IWAE term of log p(z) for those parameters, so
it stays unbiased; the README says its gradient for them is then noisier than
plain IWAE's. With the N(0, I) prior only the path through z is left and
DReG should be less noisy than IWAE. This measures both.

Measured on a small digits model: the embedded default spec
(examples/specs/digits.toml: 8x8 digits, 2-D latent, 256-128 MLPs,
Bernoulli), trained with ``train.objective = "iwae_dreg"`` and
``train.particles = 5`` (the MNIST spec's), once with ``model.prior.name =
"vamp"`` and once with the normal prior. The comparison depends on how far
training has got, so it is made at several points of one run (``--epochs``,
default after 5, 50 and 300 epochs; the default spec trains 300): at each,
for one fixed minibatch of 128 training images (binarized once), R gradient
draws of each objective as ``pyrovae.train.objectives.make_objective``
builds it (``iwae`` and ``iwae_dreg``, k=5, scaled to the training set as in
``fit``), each draw with fresh z. Per parameter group (encoder,
pseudo-inputs, decoder):

- total variance: the variance across draws summed over the group's
  elements; the ratio DReG / IWAE is the headline;
- signal-to-noise: ||mean|| / sqrt(total variance), and the median over
  elements of |mean| / sd;
- a sanity check that both estimate the same gradient: the largest z-score
  of the difference of the two mean gradients over the group's elements
  (the draws of the two estimators are independent), beside the value the
  largest of that many standard normal z-scores typically takes. The
  decoder and the pseudo-inputs reach the bound only through the model's
  log-densities, not through z, so on the same draws their two gradients are
  equal (checked, to float32 rounding); only the encoder's differ.

Usage (from the project root)::

    python benchmarks/dreg_variance.py [--draws R] [--epochs E1,E2,...] [--particles K]

Printed last: ``dreg_variance_ratio_<prior>_epochs_<E>=`` for every point,
then ``dreg_variance_ratio_normal=`` and, the last line,
``dreg_variance_ratio_vamp=<DReG / IWAE total gradient variance of the
encoder's parameters, VampPrior>``, both at the last point (the trained model,
where training spends most of its steps; early in training the VampPrior's
ratio is far above 1, see the per-point lines).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import pyro
import torch

from pyrovae.data import binarize, load_data
from pyrovae.models import VAE
from pyrovae.pipeline import build
from pyrovae.spec import load_spec
from pyrovae.train import fit
from pyrovae.train.objectives import make_objective

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = ("iwae", "iwae_dreg")


def groups(vae: VAE) -> dict[str, list[torch.nn.Parameter]]:
    """Parameter groups: the encoder's, the pseudo-inputs (VampPrior only), the decoder's."""
    out = {"encoder": list(vae.encoder.parameters())}
    if vae.spec.prior.name == "vamp":
        out["pseudo-inputs"] = [vae.pseudo_inputs]
    out["decoder"] = list(vae.decoder.parameters())
    return out


def gradient_draws(
    vae: VAE, x: torch.Tensor, n_total: int, objective: str, k: int, draws: int, seed: int
) -> dict[str, torch.Tensor]:
    """``draws`` gradients of the objective on ``x``: group -> ``(draws, elements)`` float64."""
    loss_fn = make_objective(objective, k)
    named = groups(vae)
    params = [p for ps in named.values() for p in ps]
    sizes = [sum(p.numel() for p in ps) for ps in named.values()]
    rows = []
    torch.manual_seed(seed)
    for _ in range(draws):
        loss = loss_fn(vae.model, vae.guide, x, n_total, 1.0)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        flat = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
        rows.append(torch.cat([g.reshape(-1) for g in flat]).double())
    table = torch.stack(rows)
    return dict(zip(named, table.split(sizes, dim=1), strict=True))


def typical_max_z(n: int) -> float:
    """The median of the largest of ``n`` independent |N(0, 1)| values."""
    p = 1 - (1 - 0.5 ** (1 / n)) / 2  # P(max |Z| <= m) = (2 Phi(m) - 1)^n = 1/2
    return math.sqrt(2) * torch.erfinv(torch.tensor(2 * p - 1, dtype=torch.float64)).item()


def summarise(draws: torch.Tensor) -> tuple[float, float, float, torch.Tensor, torch.Tensor]:
    """Total variance, ||mean|| / sqrt(total variance), median |mean| / sd; mean, var."""
    mean, var = draws.mean(0), draws.var(0)
    total = var.sum().item()
    snr = mean.norm().item() / math.sqrt(total) if total > 0 else math.inf
    sd = var.sqrt()
    elementwise = (mean.abs() / sd)[sd > 0]
    median = elementwise.median().item() if elementwise.numel() else math.nan
    return total, snr, median, mean, var


def compare(
    vae: VAE, x: torch.Tensor, n_total: int, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, float]]:
    """R draws of each estimator at the model's current weights, and a table of them;
    returns group -> DReG / IWAE total variance, and group -> IWAE / DReG signal-to-noise."""
    vae.train()
    with pyro.validation_enabled(False):
        g = {
            name: gradient_draws(
                vae, x, n_total, name, args.particles, args.draws, args.seed + 1 + i
            )
            for i, name in enumerate(ESTIMATORS)
        }
        # on the same draws, parameters that only the model uses get the same gradient
        same = [
            gradient_draws(vae, x, n_total, name, args.particles, 1, args.seed)
            for name in ESTIMATORS
        ]
    gaps = {
        group: (same[0][group] - same[1][group]).abs().max().item()
        / same[0][group].abs().max().item()
        for group in same[0]
        if group != "encoder"
    }
    ratios, snr_ratios = {}, {}
    print(
        f"  {'group':13s} {'elements':>8s}  {'total var IWAE':>14s} {'DReG':>10s} "
        f"{'DReG/IWAE':>9s}  {'SNR IWAE':>8s} {'DReG':>6s}  {'median SNR':>10s} {'DReG':>6s}  "
        f"mean gradients: max |z| (typical)"
    )
    for group in g["iwae"]:
        iwae, dreg = summarise(g["iwae"][group]), summarise(g["iwae_dreg"][group])
        ratios[group] = dreg[0] / iwae[0]
        snr_ratios[group] = iwae[1] / dreg[1]
        se = ((iwae[4] + dreg[4]) / args.draws).sqrt()
        z = ((dreg[3] - iwae[3]) / se)[se > 0]
        n = z.numel()
        print(
            f"  {group:13s} {n:8d}  {iwae[0]:14.4g} {dreg[0]:10.4g} {ratios[group]:9.4g}  "
            f"{iwae[1]:8.3f} {dreg[1]:6.3f}  {iwae[2]:10.3f} {dreg[2]:6.3f}  "
            f"{z.abs().max().item():.2f} ({typical_max_z(n):.2f})"
        )
    for group, gap in gaps.items():
        print(f"  {group} gradients on the same draws: max relative difference {gap:.1e}")
    return ratios, snr_ratios


def measure(
    prior: str, args: argparse.Namespace
) -> dict[int, tuple[dict[str, float], dict[str, float]]]:
    """Train the digits VAE with ``prior``, comparing the estimators after each of
    ``args.epochs``; returns epochs -> what :func:`compare` returns."""
    spec = load_spec(
        ROOT / "examples" / "specs" / "digits.toml",
        [
            f"model.prior.name={prior!r}",
            "train.objective='iwae_dreg'",
            f"train.particles={args.particles}",
            f"train.seed={args.seed}",
        ],
    )
    data = load_data(spec.data, spec.model.likelihood.name)
    vae = build(spec, data.dim)
    x = binarize(data.train[: args.batch], torch.Generator().manual_seed(args.seed))
    n_total = data.train.shape[0]
    what = f"VampPrior, K={spec.model.prior.components}" if prior == "vamp" else "N(0, I)"
    out, state, trained = {}, None, 0.0
    for epochs in args.epochs:
        # one run, continued from its state: the same weights as one fit of `epochs`
        start = time.perf_counter()
        result = fit(vae, data, replace(spec.train, epochs=epochs), state=state, progress=False)
        trained += time.perf_counter() - start
        state = result.state
        print(
            f"\n{what}: after {result.epochs} epochs of iwae_dreg k={args.particles} "
            f"({trained:.1f} s; train objective {result.history[-1].train_objective_nats:.3f} "
            f"nats per image), {args.draws} gradient draws per estimator on a batch of "
            f"{x.shape[0]}"
        )
        out[epochs] = compare(vae, x, n_total, args)
    return out


def epoch_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1 or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(
            f"expected increasing positive integers separated by commas, got {text!r}"
        )
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200, help="R, gradient draws per estimator")
    parser.add_argument(
        "--epochs",
        type=epoch_list,
        default=(5, 50, 300),
        help="training before each measurement, comma-separated (default 5,50,300); the "
        "headline is the last",
    )
    parser.add_argument("--particles", type=int, default=5, help="k, importance samples")
    parser.add_argument("--batch", type=int, default=128, help="size of the fixed minibatch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.draws < 2:
        parser.error("--draws must be at least 2")
    print(
        f"threads={torch.get_num_threads()} draws={args.draws} k={args.particles} "
        f"epochs={','.join(map(str, args.epochs))} batch={args.batch} seed={args.seed}"
    )
    results = {"vamp": measure("vamp", args), "normal": measure("normal", args)}
    print()
    for prior, stages in results.items():
        for epochs, (ratios, snr_ratios) in stages.items():
            for group, ratio in ratios.items():
                print(
                    f"{prior:6s} after {epochs:4d} epochs, {group:13s}: DReG / IWAE total "
                    f"gradient variance {ratio:9.4g}, IWAE / DReG signal-to-noise "
                    f"{snr_ratios[group]:7.4g}"
                )
    for prior, stages in results.items():
        for epochs, (ratios, _) in stages.items():
            print(f"dreg_variance_ratio_{prior}_epochs_{epochs}={ratios['encoder']:.4g}")
    last = args.epochs[-1]
    print(f"dreg_variance_ratio_normal={results['normal'][last][0]['encoder']:.4g}")
    print(f"dreg_variance_ratio_vamp={results['vamp'][last][0]['encoder']:.4g}")


if __name__ == "__main__":
    main()
