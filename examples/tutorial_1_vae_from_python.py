"""Tutorial 1: declare a VAE from Python, train it, evaluate it, and look at it.

A variational autoencoder (VAE) is two networks trained together. The decoder
p(x|z) turns a latent code z, drawn from the prior p(z) = N(0, I), into a
distribution over images. The encoder q(z|x) guesses which codes could have
produced an image. In Pyro the pair is a *model* (prior and decoder) and a
*guide* (encoder), trained by maximising the ELBO, a lower bound on log p(x).

pyrovae builds that pair from a declarative spec. Here we use the embedded
default (a 2-D latent space on scikit-learn's 8x8 digits, nothing downloaded),
change a few fields, train, estimate the test log-likelihood, and draw a figure.

    python examples/tutorial_1_vae_from_python.py [--out DIR] [--fast]
"""

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure

from pyrovae import build_model, fit, load_data, load_spec
from pyrovae.evaluate import evaluate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs/tutorial-1"))
parser.add_argument("--fast", action="store_true", help="tiny sizes, for a smoke test")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# 1. Declare. load_spec(None) is the default digits spec; each override is the
# `--set key=value` of the command line. Every field is checked here, before training.
overrides = ["name=tutorial-1", "model.latent_dim=2", "train.epochs=300", "train.seed=0"]
if args.fast:  # fewer images, smaller networks, three passes over the data
    overrides += ["data.limit=300", "model.encoder.hidden=[64]", "model.decoder.hidden=[64]"]
    overrides += ["train.epochs=3"]
spec = load_spec(None, overrides)
print(spec.model.encoder)  # the spec is a tree of frozen dataclasses: read any field

# 2. Build and train. load_data splits the digits (train / validation / test) and
# binarizes the training images afresh every minibatch for the Bernoulli likelihood.
data = load_data(spec.data, spec.model.likelihood.name)
torch.manual_seed(spec.train.seed)  # the same initial weights on every run
vae = build_model(spec.model, data.dim)  # a PyroModule with .model(x) and .guide(x)
result = fit(vae, data, spec.train, progress=False)  # SVI with Trace_ELBO
last = result.history[-1]
print(
    f"trained {result.epochs} epochs in {result.seconds:.1f} s; "
    f"validation ELBO {last.validation_elbo_nats:.2f} nats per image"
)

# 3. Evaluate on held-out images. The ELBO is a bound; log p(x) itself is estimated
# by importance sampling with k draws from q(z|x) (the k-sample IWAE bound), with a
# Monte Carlo standard error. ELBO = reconstruction - KL(q(z|x) || p(z)).
vae.eval()
k = 50 if args.fast else 1000
ev = evaluate(vae, data.test, particles=k, seed=spec.train.seed)
print(
    f"test log p(x) = {ev.log_likelihood:.3f} ± {ev.log_likelihood_se:.3f} nats "
    f"(k = {k}, {data.test.shape[0]} images)"
)
print(
    f"test ELBO = {ev.elbo:.3f} = reconstruction {ev.reconstruction:.3f} - KL {ev.kl:.3f}; "
    f"active units {int(ev.active.sum())} of {spec.model.latent_dim}"
)
# to_metrics() is what `pyrovae evaluate` writes into metrics.json.
rows = [f"| {key} | {round(value, 3)} |" for key, value in ev.to_metrics().items()]
(args.out / "metrics.md").write_text(
    "\n".join(["| metric | value |", "| --- | ---: |", *rows]) + "\n"
)


def tile(images, rows, cols, shape):
    """Flattened grey images ``(rows * cols, H * W)`` as one grid, a blank pixel around
    each; ``shape`` is the data's ``(C, H, W)`` with C = 1."""
    framed = torch.nn.functional.pad(images.reshape(-1, *shape[-2:]), (1, 1, 1, 1))
    h, w = framed.shape[1:]
    return framed.reshape(rows, cols, h, w).permute(0, 2, 1, 3).reshape(rows * h, cols * w)


# 4. Look. Reconstructions E[x | z = mean of q(z|x)], samples from the prior, and the
# test images' codes (the means of q(z|x)) coloured by the digit they show.
with torch.no_grad():
    x = data.test[:16]
    x_hat = vae.reconstruct(x)
    pairs = tile(torch.cat([x[:8], x_hat[:8], x[8:], x_hat[8:]]), 4, 8, data.image_shape)
    samples = tile(vae.sample(25, torch.Generator().manual_seed(0)), 5, 5, data.image_shape)
    codes = vae.code(data.test)
fig = Figure(figsize=(12, 4), layout="constrained")
ax_pairs, ax_samples, ax_codes = fig.subplots(1, 3, width_ratios=[1.6, 1, 1.4])
ax_pairs.imshow(pairs, cmap="gray_r")
ax_pairs.set_title("test images (rows 1, 3), reconstructions (2, 4)")
ax_samples.imshow(samples, cmap="gray_r")
ax_samples.set_title("decoded z ~ N(0, I)")
ax_pairs.set_axis_off()
ax_samples.set_axis_off()
dots = ax_codes.scatter(codes[:, 0], codes[:, 1], c=data.test_labels, cmap="tab10", s=8)
fig.colorbar(dots, ax=ax_codes, label="digit")
ax_codes.set(title="latent space: means of q(z|x)", xlabel="z1", ylabel="z2")
fig.savefig(args.out / "vae.png", dpi=80)
print(f"wrote {args.out / 'vae.png'} and {args.out / 'metrics.md'}")
