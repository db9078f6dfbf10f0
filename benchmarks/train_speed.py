"""Training speed: pyrovae's ``fit`` against a hand-written PyTorch VAE loop.

Both train the same 784-400-50 Bernoulli VAE (softplus MLPs, Adam lr 1e-3,
batch 128, dynamic binarization, one reparameterised sample) for one epoch on
the 10,000 MNIST test images, side by side in one process, alternating, after
one warm-up epoch each. pyrovae's time is a whole ``fit`` call as a user makes
it: Pyro ``Trace_ELBO`` model/guide, progress bar and bookkeeping included, with
``train.threads`` set to the thread count the hand loop runs with (the automatic
count looks at the machine's load once per run, about 40 ms).

Usage (from the project root)::

    python benchmarks/train_speed.py [--mnist DIR] [--rounds R] [--case mlp|conv|all]

Two pairs compute the same estimator on both sides, each against the fastest hand
loop that computes it: a loop given every speed-up pyrovae uses (binarization as
``rand < p``, one fused Adam, and its loss traced once per shape with the same
``torch.jit.trace`` and interpreter settings, or not traced, whichever is faster):

- ``analytic``: pyrovae ``train.objective = "analytic_kl"`` (``TraceMeanField_ELBO``)
  against the hand loop with the KL in closed form, the VAE as people write it;
- ``mc``: pyrovae's default ``elbo`` (``Trace_ELBO``: log q(z) - log p(z) at the
  sample) against the hand loop computing that one-sample estimate.

pyrovae's sides run with ``train.jit = true`` (the default: each minibatch shape's
step traced once, :mod:`pyrovae.train.traced`); ``pyrovae elbo, eager`` is the same
with ``train.jit = false``. ``PyTorch loop`` is the loop as people usually write it
(``torch.bernoulli``, default ``torch.optim.Adam``, analytic KL).

The conv case (``--case conv``) trains a conv VAE of the issue's size on the same
images: encoder Conv2d(1→32, k4, s2) → Conv2d(32→64, k4, s2) → Linear(3136→2·16),
decoder Linear(16→3136) → ConvTranspose2d(64→32) → ConvTranspose2d(32→1), softplus
between layers, latent 16, against a hand loop of the same layers and the same
one-sample estimator, given the same speed-ups (traced or eager, whichever is faster).
It prints ``conv_ratio=`` (median epoch times) on its own line.

The last line of the MLP case is ``ratio=<the larger of ratio_analytic and ratio_mc>``
(median epoch times): what the declarative model, Pyro and the bookkeeping cost
against the fastest hand loop of the same estimator. Before it: ``ratio_usual=``
(pyrovae ``elbo`` against the usual loop), ``ratio_eager=`` (pyrovae ``elbo`` without
the trace against the tuned ``mc`` loop without it), ``ratio_analytic=`` and
``ratio_mc=``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, softplus
from torch.nn.utils.stateless import _reparametrize_module

from pyrovae.data import Dataset, binarize, read_idx
from pyrovae.models import VAE
from pyrovae.spec import ModelSpec, NetworkSpec, TrainSpec
from pyrovae.train import fit

HIDDEN, LATENT, BATCH, LR = 400, 50, 128, 1e-3
CONV_LATENT, CONV_CHANNELS, KERNEL, STRIDE = 16, (32, 64), 4, 2


class TorchVAE(nn.Module):
    """The classic hand-written VAE with the same layers as pyrovae's.

    ``kl="analytic"`` is the KL term as people write it (closed form, what pyrovae's
    ``analytic_kl`` computes); ``kl="mc"`` is the one-sample estimate log q(z) - log p(z)
    that Pyro's ``Trace_ELBO`` (pyrovae's ``elbo``) computes, written from the noise.
    """

    def __init__(
        self, d: int, kl: str = "analytic", networks: tuple[nn.Module, nn.Module] | None = None
    ) -> None:
        super().__init__()
        if networks is None:
            networks = (
                nn.Sequential(nn.Linear(d, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, 2 * LATENT)),
                nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, d)),
            )
        self.enc, self.dec = networks
        self.kl = kl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        loc, raw = self.enc(x).chunk(2, dim=-1)
        scale = softplus(raw) + 1e-3
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        recon = binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        if self.kl == "analytic":
            kl = 0.5 * (loc**2 + scale**2 - 1).sum() - scale.log().sum()
        else:  # log q(z) - log p(z); the log(2 pi) terms cancel
            kl = 0.5 * (z**2 - eps**2).sum() - scale.log().sum()
        return recon + kl


def conv_networks() -> tuple[nn.Module, nn.Module]:
    """The conv case's encoder and decoder, written by hand: 28x28 -> 14x14 -> 7x7 and back."""
    a, b = CONV_CHANNELS
    k, s, p = KERNEL, STRIDE, 1
    enc = nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, a, k, s, p),
        nn.Softplus(),
        nn.Conv2d(a, b, k, s, p),
        nn.Softplus(),
        nn.Flatten(),
        nn.Linear(b * 7 * 7, 2 * CONV_LATENT),
    )
    dec = nn.Sequential(
        nn.Linear(CONV_LATENT, b * 7 * 7),
        nn.Softplus(),
        nn.Unflatten(1, (b, 7, 7)),
        nn.ConvTranspose2d(b, a, k, s, p),
        nn.Softplus(),
        nn.ConvTranspose2d(a, 1, k, s, p),
        nn.Flatten(),
    )
    return enc, dec


def torch_epoch(
    model: TorchVAE,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    tuned: bool = False,
    traced: bool = False,
) -> float:
    start = time.perf_counter()
    loss_fn = _traced_loss(model) if traced else model.loss  # traced once per model
    perm = torch.randperm(x.shape[0])
    for i in range(0, x.shape[0], BATCH):
        xb = x[perm[i : i + BATCH]]
        xb = binarize(xb) if tuned else torch.bernoulli(xb)
        loss = loss_fn(xb)
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _traced_loss(model: TorchVAE):
    """``model.loss`` traced once per batch shape, run as pyrovae runs its traces
    (TorchScript's interpreter without the optimizing passes). The traces are kept
    with the model, as pyrovae keeps its own, so the first epoch pays for them."""
    if hasattr(model, "traced_loss"):
        return model.traced_loss
    graphs: dict[tuple[int, ...], torch.jit.ScriptFunction] = {}
    names = [name for name, _ in model.named_parameters()]

    def flat(params: tuple[torch.Tensor, ...], xb: torch.Tensor) -> torch.Tensor:
        # as pyrovae does: torch.func.functional_call refuses to run inside a trace
        with _reparametrize_module(model, dict(zip(names, params, strict=True))):
            return model.loss(xb)

    def loss(xb: torch.Tensor) -> torch.Tensor:
        params = tuple(model.parameters())
        graph = graphs.get(tuple(xb.shape))
        if graph is None:
            with warnings.catch_warnings(), torch.random.fork_rng():
                warnings.simplefilter("ignore")
                graph = graphs[tuple(xb.shape)] = torch.jit.trace(
                    flat, (params, xb), check_trace=False
                )
        with torch.jit.optimized_execution(False):
            return graph(params, xb)

    model.traced_loss = loss
    return loss


def pyrovae_epoch(vae: VAE, data: Dataset, train: TrainSpec) -> float:
    start = time.perf_counter()
    fit(vae, data, train, progress=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--rounds", type=int, default=11, help="timed epochs per side (MLP)")
    parser.add_argument("--conv-rounds", type=int, default=3, help="timed epochs per side (conv)")
    parser.add_argument("--case", choices=("mlp", "conv", "all"), default="all")
    args = parser.parse_args()
    folder = Path(args.mnist)
    images = folder / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        sys.exit(f"no MNIST test images at {images}; pass --mnist DIR")
    x = torch.from_numpy(read_idx(images).reshape(-1, 784)).float() / 255.0
    data = Dataset("mnist", x, x[:0], x[:0], None, None, None, (1, 28, 28), True, None)
    threads = torch.get_num_threads()
    print(f"images={x.shape[0]} batch={BATCH} threads={threads}")
    if args.case in ("conv", "all"):
        conv_case(x, data, threads, args.conv_rounds)
    if args.case in ("mlp", "all"):
        mlp_case(x, data, threads, args.rounds)


def _time_sides(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median epoch seconds per side, the sides alternating, after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(rounds + 1):
        for name, run in sides.items():
            seconds = run()
            if round_:  # the first round warms up
                times[name].append(seconds)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"{name:22s} epoch: {med[name]:.3f} s  (median of {rounds}, "
            f"min {min(t):.3f}, max {max(t):.3f})"
        )
    return med


def conv_case(x: torch.Tensor, data: Dataset, threads: int, rounds: int) -> None:
    """pyrovae's conv VAE (``elbo``, traced and eager) against the hand loop of its layers."""
    torch.manual_seed(0)
    conv = NetworkSpec(kind="conv", hidden=(), channels=CONV_CHANNELS, kernel=KERNEL)
    spec = ModelSpec(
        latent_dim=CONV_LATENT,
        encoder=conv,
        decoder=NetworkSpec(kind="conv", hidden=(), channels=CONV_CHANNELS[::-1], kernel=KERNEL),
    )

    def pyrovae_side(jit: bool) -> Callable[[], float]:
        vae = VAE(spec, 784, image=(1, 28, 28))
        train = TrainSpec(epochs=1, batch_size=BATCH, lr=LR, threads=threads, jit=jit)
        return lambda: pyrovae_epoch(vae, data, train)

    def torch_side(traced: bool) -> Callable[[], float]:
        model = TorchVAE(784, "mc", conv_networks())
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
        return lambda: torch_epoch(model, opt, x, tuned=True, traced=traced)

    hand = sum(p.numel() for p in TorchVAE(784, "mc", conv_networks()).parameters())
    ours = sum(p.numel() for p in VAE(spec, 784, image=(1, 28, 28)).parameters())
    print(f"conv parameters: pyrovae {ours:,}, hand loop {hand:,}")
    med = _time_sides(
        {
            "pyrovae conv elbo": pyrovae_side(True),
            "pyrovae conv, eager": pyrovae_side(False),
            "tuned conv, mc": torch_side(True),
            "tuned conv, mc, eager": torch_side(False),
        },
        rounds,
    )
    best = min(med["pyrovae conv elbo"], med["pyrovae conv, eager"])
    print(f"conv_ratio={best / min(med['tuned conv, mc'], med['tuned conv, mc, eager']):.3f}")


def mlp_case(x: torch.Tensor, data: Dataset, threads: int, rounds: int) -> None:
    """The MLP VAE against the usual and the tuned hand loops (see the module docstring)."""
    torch.manual_seed(0)
    spec = ModelSpec(
        latent_dim=LATENT,
        encoder=NetworkSpec(hidden=(HIDDEN,)),
        decoder=NetworkSpec(hidden=(HIDDEN,)),
    )

    def pyrovae_side(objective: str, jit: bool = True) -> Callable[[], float]:
        vae = VAE(spec, 784)
        train = TrainSpec(
            epochs=1, batch_size=BATCH, lr=LR, threads=threads, objective=objective, jit=jit
        )
        return lambda: pyrovae_epoch(vae, data, train)

    def torch_side(kl: str, tuned: bool = True, traced: bool = False) -> Callable[[], float]:
        model = TorchVAE(784, kl)
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True if tuned else None)
        return lambda: torch_epoch(model, opt, x, tuned=tuned, traced=traced)

    med = _time_sides(
        {
            "pyrovae elbo": pyrovae_side("elbo"),
            "pyrovae analytic_kl": pyrovae_side("analytic_kl"),
            "pyrovae elbo, eager": pyrovae_side("elbo", jit=False),
            "PyTorch loop": torch_side("analytic", tuned=False),
            "tuned, analytic": torch_side("analytic", traced=True),
            "tuned, analytic, eager": torch_side("analytic"),
            "tuned, mc": torch_side("mc", traced=True),
            "tuned, mc, eager": torch_side("mc"),
        },
        rounds,
    )
    analytic = med["pyrovae analytic_kl"] / min(
        med["tuned, analytic"], med["tuned, analytic, eager"]
    )
    mc = med["pyrovae elbo"] / min(med["tuned, mc"], med["tuned, mc, eager"])
    print(f"ratio_usual={med['pyrovae elbo'] / med['PyTorch loop']:.3f}")
    print(f"ratio_eager={med['pyrovae elbo, eager'] / med['tuned, mc, eager']:.3f}")
    print(f"ratio_analytic={analytic:.3f}")
    print(f"ratio_mc={mc:.3f}")
    print(f"ratio={max(analytic, mc):.3f}")


if __name__ == "__main__":
    main()
