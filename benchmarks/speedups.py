"""Three speed-ups pyrovae's training relies on, each against the obvious alternative.

1. **The VampPrior's density.** ``pyrovae.models.priors.GaussianMixture``
   (three matrix products) against torch's ``MixtureSameFamily(Categorical,
   Independent(Normal))`` with the same components, at the shapes of training
   on the MNIST budget (examples/specs/mnist.toml): K=100 components of a
   50-D latent, z of shape (k=5, batch=128, 50). The components are built as
   the VAE builds them, by a 784-400-50 encoder (at initialisation) at 100
   pseudo-inputs set from MNIST images; z are draws of its guide for a batch
   of 128 images. Timed: ``log_prob(z).sum()`` forward and backward, with
   gradients to the component locs and scales and to z (as in training).
   Before timing, the two log densities (and their gradients) are checked to
   agree to float32 tolerance.
2. **pyrovae's optimizer step.** One epoch (79 steps of 128 of the 10,000
   MNIST test images, dynamically binarized) of the same 784-400-50 Bernoulli
   VAE (``pyrovae.models.VAE``, N(0, I) prior), from the same initial weights:
   plain Pyro, ``SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}),
   Trace_ELBO())`` with the module registered by ``pyro.module`` (as Pyro's
   examples do), against what ``pyrovae.train.fit`` does, the same
   ``Trace_ELBO().differentiable_loss`` + ``loss.backward()`` + one fused
   ``torch.optim.Adam`` step over ``vae.parameters()``. Both binarize with
   ``pyrovae.data.binarize`` and run with Pyro's validation off, as ``fit``
   does. A third side, for reference only, runs the same SVI with Pyro's
   validation on, its default.
3. **Dynamic binarization.** ``pyrovae.data.binarize`` (``rand < p``, cast back
   to float) against ``torch.bernoulli(p)`` on a (128, 784) batch, many
   repetitions per round: the headline on the first 128 MNIST images (what
   training binarizes; most pixels are exactly 0), and also on p ~ U(0, 1),
   where ``torch.bernoulli`` is slower.

Each pair runs side by side in one process, alternating, after one warm-up
round each; the figures are medians over rounds.

Usage (from the project root)::

    python benchmarks/speedups.py [--mnist DIR] [--rounds R] [--only mixture,svi,binarize]

Printed at the end, each on its own line: ``mixture_speedup=<MixtureSameFamily
seconds / GaussianMixture seconds>``, ``pyro_optim_slowdown=<SVI epoch seconds
/ fused loop epoch seconds>`` (validation off on both), and
``binarize_speedup_uniform_p=`` then ``binarize_speedup=<torch.bernoulli
seconds / binarize seconds>`` (MNIST batch); only the parts asked for by
``--only``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from pyrovae.data import binarize, read_idx
from pyrovae.models import VAE
from pyrovae.models.priors import GaussianMixture
from pyrovae.spec import ModelSpec, NetworkSpec, PriorSpec

HIDDEN, LATENT, BATCH, LR = 400, 50, 128, 1e-3
COMPONENTS, PARTICLES = 100, 5
PARTS = ("mixture", "svi", "binarize")


def model_spec(prior: str = "normal") -> ModelSpec:
    """The 784-400-50 Bernoulli VAE (softplus MLPs) of the MNIST budget."""
    return ModelSpec(
        latent_dim=LATENT,
        encoder=NetworkSpec(hidden=(HIDDEN,)),
        decoder=NetworkSpec(hidden=(HIDDEN,)),
        prior=PriorSpec(name=prior, components=COMPONENTS),
    )


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each side once per round, in turn; the first round warms up and is dropped."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(rounds + 1):
        for name, run in sides.items():
            seconds = run()
            if round_:
                times[name].append(seconds)
    return times


def report(times: dict[str, list[float]], unit: str, scale: float = 1.0) -> dict[str, float]:
    """Print each side's median (min, max) in ``unit`` (seconds times ``scale``)."""
    med = {name: statistics.median(t) for name, t in times.items()}
    width = max(len(name) for name in times)
    for name, t in times.items():
        print(
            f"  {name:{width}s}: {med[name] * scale:9.3f} {unit}  (median of {len(t)}, "
            f"min {min(t) * scale:.3f}, max {max(t) * scale:.3f})"
        )
    return med


# ------------------------------------------------------------------ 1. mixture density


def mixture_inputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Component locs and scales ``(K, L)`` as the VampPrior builds them, and guide draws
    z ``(k, B, L)``, all leaves that require gradients."""
    torch.manual_seed(0)
    vae = VAE(model_spec("vamp"), x.shape[1])
    g = torch.Generator().manual_seed(0)
    vae.init_from_data(x, g)
    with torch.no_grad():
        prior = vae.prior(x)
        q_loc, q_scale = vae.encode(binarize(x[:BATCH], g))
        z = q_loc + q_scale * torch.randn((PARTICLES, *q_loc.shape), generator=g)
    assert isinstance(prior, GaussianMixture), type(prior)
    leaves = (prior.loc.detach(), prior.scale.detach(), z)
    return tuple(t.clone().requires_grad_(True) for t in leaves)


def gaussian_mixture_log_prob(loc, scale, z):
    return GaussianMixture(loc, scale, validate_args=False).log_prob(z)


def torch_mixture_log_prob(loc, scale, z):
    mix = Categorical(logits=loc.new_zeros(loc.shape[0]), validate_args=False)
    comp = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
    return MixtureSameFamily(mix, comp, validate_args=False).log_prob(z)


def forward_backward(log_prob, leaves) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    value = log_prob(*leaves)
    return value, torch.autograd.grad(value.sum(), leaves)


def check_mixture(leaves) -> None:
    """The two densities and their gradients agree to float32 tolerance."""
    ours, our_grads = forward_backward(gaussian_mixture_log_prob, leaves)
    theirs, their_grads = forward_backward(torch_mixture_log_prob, leaves)
    gap = (ours - theirs).abs().max().item()
    print(
        f"  log p(z) range {theirs.min().item():.2f} .. {theirs.max().item():.2f} nats; "
        f"max |GaussianMixture - MixtureSameFamily| = {gap:.2e}"
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    for name, a, b in zip(("loc", "scale", "z"), our_grads, their_grads, strict=True):
        rel = ((a - b).norm() / b.norm()).item()
        print(f"  gradient wrt {name}: relative difference {rel:.1e}")
        if not rel < 1e-4:
            raise AssertionError(f"the gradients wrt {name} differ: relative {rel:.1e}")


def bench_mixture(x: torch.Tensor, rounds: int, reps: int) -> float:
    leaves = mixture_inputs(x)
    print(
        f"VampPrior density: K={COMPONENTS}, L={LATENT}, z {tuple(leaves[2].shape)}, "
        f"log_prob forward + backward, {reps} calls per round"
    )
    check_mixture(leaves)

    def timed(log_prob) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(reps):
                forward_backward(log_prob, leaves)
            return (time.perf_counter() - start) / reps

        return run

    sides = {
        "GaussianMixture": timed(gaussian_mixture_log_prob),
        "MixtureSameFamily": timed(torch_mixture_log_prob),
    }
    med = report(alternate(sides, rounds), "ms per call", 1e3)
    return med["MixtureSameFamily"] / med["GaussianMixture"]


# ------------------------------------------------------------------ 2. SVI vs fused Adam


def svi_epoch(svi: SVI, x: torch.Tensor, g: torch.Generator) -> float:
    start = time.perf_counter()
    perm = torch.randperm(x.shape[0], generator=g)
    for i in range(0, x.shape[0], BATCH):
        loss = svi.step(binarize(x[perm[i : i + BATCH]], g))
        if not loss == loss:
            raise RuntimeError("non-finite loss")
    return time.perf_counter() - start


def fused_epoch(
    vae: VAE, elbo: Trace_ELBO, opt: torch.optim.Optimizer, x: torch.Tensor, g: torch.Generator
) -> float:
    """As ``pyrovae.train.loop._epoch`` steps: loss, its item, zero_grad, backward, step."""
    start = time.perf_counter()
    perm = torch.randperm(x.shape[0], generator=g)
    for i in range(0, x.shape[0], BATCH):
        loss = elbo.differentiable_loss(vae.model, vae.guide, binarize(x[perm[i : i + BATCH]], g))
        if not loss.item() == loss.item():
            raise RuntimeError("non-finite loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def plain_svi(vae: VAE, name: str) -> SVI:
    """Pyro's recipe: the module registered in the param store, ``pyro.optim.Adam``."""

    def model(xb):
        pyro.module(name, vae)
        vae.model(xb)

    def guide(xb):
        pyro.module(name, vae)
        vae.guide(xb)

    return SVI(model, guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO())


def validated(on: bool, run: Callable[[], float]) -> Callable[[], float]:
    def wrapped() -> float:
        with pyro.validation_enabled(on):
            return run()

    return wrapped


def bench_svi(x: torch.Tensor, rounds: int) -> float:
    torch.manual_seed(0)
    pyro.clear_param_store()
    vaes = {"svi": VAE(model_spec(), x.shape[1])}
    vaes["validated"] = copy.deepcopy(vaes["svi"])
    vaes["fused"] = copy.deepcopy(vaes["svi"])
    svi, svi_validated = plain_svi(vaes["svi"], "vae"), plain_svi(vaes["validated"], "vae2")
    elbo = Trace_ELBO()
    opt = torch.optim.Adam(vaes["fused"].parameters(), lr=LR, fused=True)
    g = {name: torch.Generator().manual_seed(1) for name in vaes}
    steps = -(-x.shape[0] // BATCH)
    print(
        f"one epoch of SVI: {x.shape[0]} images, {steps} steps of {BATCH}, "
        f"784-{HIDDEN}-{LATENT} Bernoulli VAE, Trace_ELBO, Adam lr {LR}"
    )
    before = [p.detach().clone() for p in vaes["svi"].parameters()]
    plain, fused = "SVI + pyro.optim.Adam", "loss.backward + fused Adam"
    sides = {
        plain: validated(False, lambda: svi_epoch(svi, x, g["svi"])),
        fused: validated(False, lambda: fused_epoch(vaes["fused"], elbo, opt, x, g["fused"])),
        "the same SVI, Pyro's validation on (its default)": validated(
            True, lambda: svi_epoch(svi_validated, x, g["validated"])
        ),
    }
    times = alternate(sides, rounds)
    after = vaes["svi"].parameters()
    if not all(not torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        # without pyro.module, SVI would see none of the VAE's parameters
        raise RuntimeError("SVI left some of the VAE's parameters unchanged")
    with torch.no_grad():
        xb = binarize(x[:1000], torch.Generator().manual_seed(2))
        losses = {k: Trace_ELBO().loss(v.model, v.guide, xb) / 1000 for k, v in vaes.items()}
    shown = ", ".join(f"{v:.1f} ({k})" for k, v in losses.items())
    print(f"  after {rounds + 1} epochs each, -ELBO per image: {shown}")
    med = report(times, "s per epoch")
    print(f"  (validation on: {med[list(sides)[2]] / med[fused]:.2f}x the fused loop)")
    return med[plain] / med[fused]


# ------------------------------------------------------------------ 3. binarization


def bench_binarize(p: torch.Tensor, what: str, rounds: int, reps: int) -> float:
    print(f"binarization of a {tuple(p.shape)} batch of {what}, {reps} draws per round")

    def timed(draw: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(reps):
                draw(p)
            return (time.perf_counter() - start) / reps

        return run

    sides = {
        "binarize (rand < p)": timed(binarize),
        "torch.bernoulli": timed(torch.bernoulli),
    }
    med = report(alternate(sides, rounds), "us per batch", 1e6)
    return med["torch.bernoulli"] / med["binarize (rand < p)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with t10k files")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side")
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated parts (default: all three)"
    )
    parser.add_argument("--mixture-reps", type=int, default=20, help="calls per round")
    parser.add_argument("--binarize-reps", type=int, default=2000, help="draws per round")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if not parts or not set(parts) <= set(PARTS):
        sys.exit(f"--only: expected names from {','.join(PARTS)}, got {args.only!r}")
    images = Path(args.mnist) / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        sys.exit(f"no MNIST test images at {images}; pass --mnist DIR")
    x = torch.from_numpy(read_idx(images).reshape(-1, 784)).float() / 255.0

    print(
        f"threads={torch.get_num_threads()} images={x.shape[0]} batch={BATCH} "
        f"latent={LATENT} components={COMPONENTS} particles={PARTICLES} rounds={args.rounds}"
    )
    results = {}
    for part in PARTS:
        if part not in parts:
            continue
        if part == "mixture":
            results["mixture_speedup"] = bench_mixture(x, args.rounds, args.mixture_reps)
        elif part == "svi":
            results["pyro_optim_slowdown"] = bench_svi(x, args.rounds)
        else:
            uniform = torch.rand((BATCH, x.shape[1]), generator=torch.Generator().manual_seed(0))
            results["binarize_speedup_uniform_p"] = bench_binarize(
                uniform, "p ~ U(0, 1)", args.rounds, args.binarize_reps
            )
            results["binarize_speedup"] = bench_binarize(
                x[:BATCH].contiguous(), "MNIST intensities", args.rounds, args.binarize_reps
            )
    # literal names, so that tests/test_figures_docs.py can tie the docs to them
    if "mixture_speedup" in results:
        print(f"mixture_speedup={results['mixture_speedup']:.2f}")
    if "pyro_optim_slowdown" in results:
        print(f"pyro_optim_slowdown={results['pyro_optim_slowdown']:.2f}")
    if "binarize_speedup" in results:
        print(f"binarize_speedup_uniform_p={results['binarize_speedup_uniform_p']:.2f}")
        print(f"binarize_speedup={results['binarize_speedup']:.2f}")


if __name__ == "__main__":
    main()
