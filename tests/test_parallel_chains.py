"""MCMC chains in parallel processes draw what the chains drew one after the other."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.posterior.inference.chains import picklable, resolve_workers
from pyrovae.posterior.inference.mcmc import KERNELS, run_mcmc
from pyrovae.posterior.targets.zoo import get_model


@pytest.mark.parametrize(
    "kernel", [k if k != "hmc" else pytest.param(k, marks=pytest.mark.slow) for k in KERNELS]
)
def test_chains_in_two_processes_draw_the_sequential_chains(kernel: str) -> None:
    target = get_model("eight_schools_noncentered")
    options = {"kernel": kernel, "num_samples": 20, "warmup_steps": 20, "num_chains": 2}
    sequential = run_mcmc(target.model, target.data, seed=4, **options)
    parallel = run_mcmc(target.model, target.data, seed=4, workers=2, **options)
    assert sequential.samples.keys() == parallel.samples.keys()
    for name, draws in sequential.samples.items():
        assert torch.equal(draws, parallel.samples[name]), name
    assert torch.equal(sequential.step_size, parallel.step_size)
    assert torch.equal(sequential.acceptance_rate, parallel.acceptance_rate)
    assert not torch.equal(parallel.samples["mu"][0], parallel.samples["mu"][1])


def test_workers_follow_the_cores_and_a_closure_runs_in_sequence() -> None:
    assert resolve_workers(1, 4) == 1 and resolve_workers(8, 3) == 3
    assert 1 <= resolve_workers(0, 4) <= 4
    scale = torch.tensor(2.0)

    def model() -> None:  # a closure: it does not pickle
        pyro.sample("x", dist.Normal(0.0, scale))

    assert not picklable(model) and picklable(get_model("normal_normal").model)
    options = {"kernel": "metropolis", "num_samples": 10, "warmup_steps": 10, "num_chains": 2}
    alone = run_mcmc(model, seed=0, **options)
    assert torch.equal(
        alone.samples["x"], run_mcmc(model, seed=0, workers=2, **options).samples["x"]
    )
