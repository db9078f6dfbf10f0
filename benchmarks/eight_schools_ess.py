"""Eight schools (non-centered): NUTS effective samples per second.

Side by side in one process, 4 chains of 1000 warm-up + 1000 draws each:

- pyrovae's :func:`~pyrovae.posterior.inference.mcmc.run_mcmc` (NUTS with its defaults:
  a dense mass matrix for these 10 values, warm-up started from the Laplace
  approximation; ``jit_compile=True``);
- ``pyro.infer.NUTS`` with Pyro's defaults (diagonal mass matrix, started at the
  prior's median) and the same ``jit_compile=True``, chains one after the other;
- NumPyro's NUTS on the same model, when NumPyro is installed (optional).

Both Pyro sides run the zoo's model on the same float32 data with the same JIT flag,
so the ratio measures what pyrovae's sampler settings buy, not a compiler flag.
ESS is ArviZ's bulk ESS (rank-normalised, all chains), the smallest over the ten
parameters (mu, tau, theta[1..8]), for all three.

Usage (from the project root)::

    python benchmarks/eight_schools_ess.py

The last line printed is ``ratio=<pyrovae ESS/s / Pyro-defaults ESS/s>``; with NumPyro
installed, ``numpyro_lead=<NumPyro ESS/s / pyrovae ESS/s>`` comes before it.
"""

from __future__ import annotations

import importlib.util
import time

import arviz as az
import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS

from pyrovae.posterior.inference.mcmc import run_mcmc
from pyrovae.posterior.targets import zoo

CHAINS, WARMUP, DRAWS = 4, 1000, 1000


def min_ess(samples: dict) -> float:
    """Smallest ArviZ bulk ESS over all elements; samples are (chains, draws, ...)."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}
    ess = az.ess(az.convert_to_dataset(arrays), method="bulk")
    return min(float(ess[k].min()) for k in arrays)


def plain_pyro(model: zoo.ZooModel) -> tuple[float, float]:
    chains, start = [], time.perf_counter()
    for c in range(CHAINS):
        pyro.set_rng_seed(c)
        kernel = NUTS(model.model, jit_compile=True, ignore_jit_warnings=True)
        mcmc = MCMC(kernel, num_samples=DRAWS, warmup_steps=WARMUP, disable_progbar=True)
        mcmc.run(**model.data)
        chains.append(mcmc.get_samples())
    seconds = time.perf_counter() - start
    samples = {k: torch.stack([c[k] for c in chains]) for k in chains[0]}
    samples["theta"] = samples["mu"][..., None] + samples["tau"][..., None] * samples["theta_trans"]
    del samples["theta_trans"]
    return min_ess(samples), seconds


def numpyro_run(model: zoo.ZooModel) -> tuple[float, float] | None:
    if importlib.util.find_spec("numpyro") is None:
        return None
    import jax
    import numpyro
    import numpyro.distributions as nd

    def eight_schools(sigma, y):
        mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
        with numpyro.plate("obs", sigma.shape[0]):
            theta_trans = numpyro.sample("theta_trans", nd.Normal(0.0, 1.0))
            numpyro.deterministic("theta", mu + tau * theta_trans)
            numpyro.sample("y", nd.Normal(mu + tau * theta_trans, sigma), obs=y)

    data = {k: jax.numpy.asarray(v.numpy()) for k, v in model.data.items()}
    mcmc = numpyro.infer.MCMC(
        numpyro.infer.NUTS(eight_schools),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="sequential",
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), **data)
    samples = mcmc.get_samples(group_by_chain=True)
    seconds = time.perf_counter() - start
    return min_ess({k: jax.device_get(samples[k]) for k in ("mu", "tau", "theta")}), seconds


def main() -> None:
    model = zoo.get_model("eight_schools_noncentered")
    ours = run_mcmc(
        model.model,
        model.data,
        kernel="nuts",
        num_samples=DRAWS,
        warmup_steps=WARMUP,
        num_chains=CHAINS,
        seed=0,
        jit_compile=True,
    )
    ours_ess = min_ess({k: ours.samples[k] for k in ("mu", "tau", "theta")})
    plain_ess, plain_seconds = plain_pyro(model)
    rows = [
        ("pyrovae run_mcmc (NUTS, jit)", ours_ess, ours.seconds),
        ("pyro.infer.NUTS (defaults, jit)", plain_ess, plain_seconds),
    ]
    other = numpyro_run(model)
    if other is not None:
        rows.append(("NumPyro NUTS", *other))
    print(f"eight schools non-centered; {CHAINS} chains x ({WARMUP} warm-up + {DRAWS} draws)")
    for name, ess, seconds in rows:
        print(f"{name:30s} min ESS {ess:7.0f}  {seconds:6.1f} s  ESS/s {ess / seconds:7.1f}")
    if other is None:
        print("NumPyro: not installed (optional; pip install numpyro)")
    else:
        lead = (other[0] / other[1]) / (ours_ess / ours.seconds)
        print(f"numpyro_lead={lead:.2f}  (NumPyro ESS/s over pyrovae's)")
    print(f"ratio={(ours_ess / ours.seconds) / (plain_ess / plain_seconds):.2f}")


if __name__ == "__main__":
    main()
