"""Training speed: pyrovae's ``fit`` against a hand-written PyTorch VAE loop.

Both train the same 784-400-50 Bernoulli VAE (softplus MLPs, Adam lr 1e-3,
batch 128, dynamic binarization, one reparameterised sample) for one epoch on
the 10,000 MNIST test images, side by side in one process, alternating, after
one warm-up epoch each. pyrovae's time is a whole ``fit`` call as a user makes
it: Pyro ``Trace_ELBO`` model/guide, progress bar and bookkeeping included.

Usage (from the project root)::

    python benchmarks/train_speed.py [--mnist DIR] [--rounds R]

The hand-written loop is run twice: as people usually write it
(``torch.bernoulli``, default ``torch.optim.Adam``), which is the baseline of
the ratio, and "tuned" with the two things pyrovae does differently
(binarization as ``rand < p`` and fused Adam), which isolates what Pyro's
tracing and pyrovae's bookkeeping cost.

The last line printed is ``ratio=<pyrovae seconds / PyTorch seconds>``
(median epoch times, against the usual hand-written loop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, softplus

from pyrovae.data import Dataset, binarize, read_idx
from pyrovae.models import VAE
from pyrovae.spec import ModelSpec, NetworkSpec, TrainSpec
from pyrovae.train import fit

HIDDEN, LATENT, BATCH, LR = 400, 50, 128, 1e-3


class TorchVAE(nn.Module):
    """The classic hand-written VAE with the same layers as pyrovae's."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, 2 * LATENT))
        self.dec = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, d))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        loc, raw = self.enc(x).chunk(2, dim=-1)
        scale = softplus(raw) + 1e-3
        z = loc + scale * torch.randn_like(loc)
        recon = binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = 0.5 * (loc**2 + scale**2 - 1).sum() - scale.log().sum()
        return recon + kl


def torch_epoch(
    model: TorchVAE, opt: torch.optim.Optimizer, x: torch.Tensor, tuned: bool = False
) -> float:
    start = time.perf_counter()
    perm = torch.randperm(x.shape[0])
    for i in range(0, x.shape[0], BATCH):
        xb = x[perm[i : i + BATCH]]
        xb = binarize(xb) if tuned else torch.bernoulli(xb)
        loss = model.loss(xb)
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def pyrovae_epoch(vae: VAE, data: Dataset, train: TrainSpec) -> float:
    start = time.perf_counter()
    fit(vae, data, train, progress=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--rounds", type=int, default=7, help="timed epochs per side")
    args = parser.parse_args()
    folder = Path(args.mnist)
    images = folder / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        sys.exit(f"no MNIST test images at {images}; pass --mnist DIR")
    x = torch.from_numpy(read_idx(images).reshape(-1, 784)).float() / 255.0
    data = Dataset("mnist", x, x[:0], x[:0], None, None, None, (28, 28), True, None)

    torch.manual_seed(0)
    spec = ModelSpec(
        latent_dim=LATENT,
        encoder=NetworkSpec(hidden=(HIDDEN,)),
        decoder=NetworkSpec(hidden=(HIDDEN,)),
    )
    vae = VAE(spec, 784)
    train = TrainSpec(epochs=1, batch_size=BATCH, lr=LR)
    model, tuned_model = TorchVAE(784), TorchVAE(784)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    tuned_opt = torch.optim.Adam(tuned_model.parameters(), lr=LR, fused=True)

    sides = {
        "pyrovae fit": lambda: pyrovae_epoch(vae, data, train),
        "PyTorch loop": lambda: torch_epoch(model, opt, x),
        "PyTorch tuned": lambda: torch_epoch(tuned_model, tuned_opt, x, tuned=True),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds + 1):
        for name, run in sides.items():
            seconds = run()
            if round_:  # the first round warms up
                times[name].append(seconds)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"images={x.shape[0]} batch={BATCH} threads={torch.get_num_threads()}")
    for name, t in times.items():
        print(
            f"{name:14s} epoch: {med[name]:.3f} s  (median of {args.rounds}, "
            f"min {min(t):.3f}, max {max(t):.3f})"
        )
    overhead = med["pyrovae fit"] / med["PyTorch tuned"]
    print(f"framework overhead (pyrovae / tuned loop): {overhead:.3f}")
    print(f"ratio={med['pyrovae fit'] / med['PyTorch loop']:.3f}")


if __name__ == "__main__":
    main()
