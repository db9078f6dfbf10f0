"""A Bayesian linear regression, as a user would write it for ``pyrovae compare``.

``pyrovae compare examples/models/regression.py:model --data examples/models/regression.json``
imports :func:`model`, calls it with the JSON object's arrays as keyword arguments
(float64 tensors) and compares the variational guides with NUTS on its posterior.
"""

import pyro
import pyro.distributions as dist
import torch


def model(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """y_n ~ Normal(alpha + beta * x_n, sigma), weakly informative priors; ``x`` ``(N,)``."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)
