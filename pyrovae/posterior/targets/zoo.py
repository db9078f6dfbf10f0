"""Small Bayesian models with exact posteriors or reference draws, by name.

Each :class:`ZooModel` bundles a Pyro model, the keyword arguments it is
called with (``model(**data)``), the sites to report and, where they exist,
the exact Gaussian posterior and log evidence, or the name of a posteriordb
posterior whose reference draws apply.

=============================  ================================================  ===========
name                           model                                             truth
=============================  ================================================  ===========
``normal_normal``              y_i ~ N(mu, 1), mu ~ N(0, 10^2), 20 draws         exact
``blr_known_noise``            y ~ N(X beta, 0.5^2), beta ~ N(0, I_3), N = 50    exact
``regression_far``             y ~ N(X beta, 1), predictors near 100 and -40     exact
``regression_year``            y ~ N(alpha + beta x, sigma), x near 2000, flat   exact draws
``eight_schools_centered``     posteriordb's eight_schools_centered              posteriordb
``eight_schools_noncentered``  posteriordb's eight_schools_noncentered           posteriordb
``blr``                        posteriordb's blr with the sblrc data             posteriordb
``kidscore_momiq``             posteriordb's kidscore_momiq with the kidiq data  posteriordb
``logistic_regression``        y ~ Bernoulli(logits = X beta), beta ~ N(0, I_3)  none
=============================  ================================================  ===========

Conventions
-----------
- Data are float32 tensors (Pyro's and torch's default dtype; enough for
  these models). The models build their constants in the dtype of the data,
  so calling them with float64 data evaluates every density in float64.
  Exact posteriors and log evidences are computed in float64 from the
  float32 data as stored.
- Observations sit in ``pyro.plate("obs", N)`` (the schools for eight
  schools); global latents sit outside it and may carry batch dimensions left
  of the plate (as under ``Predictive(..., parallel=True)``).
- Synthetic data come from seeded ``torch.Generator`` s, so they are the same
  at every call.
- The posteriordb-backed models (``blr``, ``kidscore_momiq``) read their data
  with :func:`pyrovae.posterior.targets.posteriordb.load_data`; the eight-schools data are
  embedded here.
- ``parameters`` lists the reported sites in the order of posteriordb's
  reference draws, so ``flatten`` gives columns that line up with
  :func:`pyrovae.posterior.targets.posteriordb.load_reference_draws`.
"""

from __future__ import annotations

import difflib
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from pyrovae.errors import UserError
from pyrovae.posterior.targets import posteriordb
from pyrovae.posterior.targets.flat import flat
from pyrovae.stats.linear_gaussian import GaussianPosterior

__all__ = [
    "EIGHT_SCHOOLS",
    "MODELS",
    "ZooModel",
    "flatten",
    "get_model",
    "list_models",
    "parameter_names",
    "squeeze_padding",
]

MODELS: tuple[str, ...] = (
    "normal_normal",
    "blr_known_noise",
    "regression_far",
    "regression_year",
    "eight_schools_centered",
    "eight_schools_noncentered",
    "blr",
    "kidscore_momiq",
    "logistic_regression",
)
"""Names of the zoo models, in a stable order."""

EIGHT_SCHOOLS: dict[str, list[float]] = {
    "y": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
    "sigma": [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0],
}
"""The eight-schools data (Rubin 1981), as in posteriordb's ``eight_schools``."""

_EIGHT_SCHOOLS_REFERENCE = "eight_schools-eight_schools_noncentered"


@dataclass(frozen=True, eq=False)
class ZooModel:
    """A small Bayesian model and what is known of its posterior.

    Attributes
    ----------
    name : str
        Zoo name (posteriordb's model name where one exists).
    model : callable
        The Pyro model, called as ``model(**data)``.
    data : dict of str to Tensor
        Its keyword arguments (float32 tensors).
    parameters : dict of str to tuple of int
        Reported sites (latent or deterministic) and their event shapes, in
        flattening order; see :func:`parameter_names`.
    description : str
        One paragraph on the model and its data.
    exact : GaussianPosterior, optional
        Exact posterior over the flattened parameters: mean ``(P,)`` and
        covariance ``(P, P)``, float64.
    log_evidence : float, optional
        Exact log p(data) in nats.
    reference : str, optional
        posteriordb posterior whose reference draws apply.
    exact_draws : callable, optional
        ``exact_draws(generator, n)`` -> ``(n, P)`` float64 independent draws of the exact
        posterior over the flattened parameters, for exact posteriors that are not
        Gaussian (``generator`` a ``numpy.random.Generator``).
    """

    name: str
    model: Callable[..., None]
    data: dict[str, torch.Tensor]
    parameters: dict[str, tuple[int, ...]]
    description: str
    exact: GaussianPosterior | None = None
    log_evidence: float | None = None
    reference: str | None = None
    exact_draws: Callable[[np.random.Generator, int], np.ndarray] | None = None


# ---------------------------------------------------------------------------
# Flattening


def parameter_names(parameters: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Stan-style names of the flattened parameters.

    Parameters
    ----------
    parameters : mapping of str to tuple of int
        Site name to event shape, e.g. ``{"mu": (), "theta": (2,), "a": (2, 2)}``.

    Returns
    -------
    list of str
        ``["mu", "theta[1]", "theta[2]", "a[1,1]", "a[1,2]", "a[2,1]", "a[2,2]"]``:
        1-based indices, row-major.
    """
    names: list[str] = []
    for name, shape in parameters.items():
        if not shape:
            names.append(name)
            continue
        for index in itertools.product(*(range(1, n + 1) for n in shape)):
            names.append(f"{name}[{','.join(map(str, index))}]")
    return names


def squeeze_padding(
    name: str, array: np.ndarray, event: tuple[int, ...], batch_ndim: int
) -> np.ndarray:
    """Drop singleton padding between the batch and the event dims.

    ``Predictive`` and vectorized guides pad scalar sites to ``(S, 1)`` and
    global vector sites to ``(S, 1, K)``; this returns ``(batch..., *event)``.

    Raises
    ------
    UserError
        When the shape is not ``batch_ndim`` batch dims, padding, then ``event``.
    """
    while array.ndim > batch_ndim + len(event) and array.shape[batch_ndim] == 1:
        array = array.squeeze(batch_ndim)
    if array.ndim < batch_ndim or tuple(array.shape[batch_ndim:]) != tuple(event):
        raise UserError(
            f"samples of '{name}' have shape {tuple(array.shape)}, expected {batch_ndim} batch "
            f"dimension(s) then the event shape {tuple(event)}; check batch_ndim"
        )
    return array


def _site_array(
    name: str, value: torch.Tensor | np.ndarray, event: tuple[int, ...], batch_ndim: int
) -> np.ndarray:
    """``(batch..., prod(event))`` float64 from one site's samples, dropping singleton padding."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = squeeze_padding(name, np.asarray(value, dtype=np.float64), event, batch_ndim)
    return array.reshape(*array.shape[:batch_ndim], -1)


def flatten(
    samples: Mapping[str, torch.Tensor | np.ndarray],
    parameters: Mapping[str, tuple[int, ...]],
    batch_ndim: int = 1,
) -> np.ndarray:
    """Stack the reported sites into one array, in the order of :func:`parameter_names`.

    Parameters
    ----------
    samples : mapping of str to Tensor or ndarray
        Site name to ``(*batch, *event)`` samples, e.g. ``MCMC.get_samples()``
        (``batch_ndim=1``) or ``get_samples(group_by_chain=True)``
        (``batch_ndim=2``). Singleton dimensions between the batch and the event
        dimensions (``Predictive``'s ``(S, 1)`` for a scalar) are dropped.
        Extra keys are ignored.
    parameters : mapping of str to tuple of int
        Site name to event shape, e.g. ``ZooModel.parameters``.
    batch_ndim : int
        Number of leading batch dimensions.

    Returns
    -------
    ndarray
        ``(*batch, P)`` float64.
    """
    missing = [name for name in parameters if name not in samples]
    if missing:
        raise UserError(
            f"samples lack site(s) {missing} (they have {sorted(samples)}); "
            "pass every reported site"
        )
    arrays = [
        _site_array(name, samples[name], tuple(event), batch_ndim)
        for name, event in parameters.items()
    ]
    batches = {a.shape[:batch_ndim] for a in arrays}
    if len(batches) > 1:
        raise UserError(
            f"the sites have different batch shapes {sorted(batches)}; "
            "pass samples from one run (same number of draws for every site)"
        )
    return np.concatenate(arrays, axis=-1)


# ---------------------------------------------------------------------------
# Helpers


def _linear(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``X beta`` for ``X`` ``(N, D)``: ``beta`` ``(D,)`` -> ``(N,)``, ``(*b, 1, D)`` -> ``(*b, N)``

    (the singleton in the batch shape of ``beta`` is the position of the ``obs`` plate).
    """
    return (x * beta).sum(-1)


def _gaussian_linear(
    x: torch.Tensor, y: torch.Tensor, prior_scale: float, noise: float
) -> tuple[GaussianPosterior, float]:
    """Exact posterior and log evidence of y ~ N(X beta, noise^2 I), beta ~ N(0, prior_scale^2 I).

    ``x`` is ``(N, D)``, ``y`` is ``(N,)``; all in float64.
    """
    x, y = x.double(), y.double()
    n, d = x.shape
    precision = torch.eye(d, dtype=x.dtype) / prior_scale**2 + x.T @ x / noise**2
    covariance = torch.linalg.inv(precision)
    covariance = (covariance + covariance.T) / 2
    mean = covariance @ x.T @ y / noise**2
    marginal = prior_scale**2 * x @ x.T + noise**2 * torch.eye(n, dtype=x.dtype)
    zeros = torch.zeros(n, dtype=x.dtype)
    log_evidence = dist.MultivariateNormal(zeros, covariance_matrix=marginal).log_prob(y)
    return GaussianPosterior(mean, covariance), float(log_evidence)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tensors(raw: Mapping[str, object], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(raw[k], dtype=torch.float32) for k in keys}


def _posteriordb_data(model: str, data_name: str, root: str | Path | None) -> dict:
    try:
        return posteriordb.load_data(data_name, root)
    except UserError as exc:
        raise UserError(f"model '{model}' needs posteriordb's '{data_name}' data: {exc}") from exc


# ---------------------------------------------------------------------------
# Models


def normal_normal_model(y: torch.Tensor) -> None:
    """y_i ~ N(mu, 1) for ``y`` ``(N,)``, mu ~ N(0, 10^2)."""
    mu = pyro.sample("mu", dist.Normal(y.new_zeros(()), 10.0))
    with pyro.plate("obs", y.shape[-1]):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def blr_known_noise_model(X: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """y ~ N(X beta, 0.5^2) for ``X`` ``(N, 3)``, beta ~ N(0, I_3)."""
    beta = pyro.sample("beta", dist.Normal(X.new_zeros(X.shape[-1]), 1.0).to_event(1))
    with pyro.plate("obs", X.shape[0]):
        pyro.sample("y", dist.Normal(_linear(X, beta), 0.5), obs=y)


def regression_far_model(X: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """y ~ N(X beta, 1) for ``X`` ``(N, D)`` (an intercept column first), beta ~ N(0, 100^2 I_D)."""
    beta = pyro.sample("beta", dist.Normal(X.new_zeros(X.shape[-1]), 100.0).to_event(1))
    with pyro.plate("obs", X.shape[0]):
        pyro.sample("y", dist.Normal(_linear(X, beta), 1.0), obs=y)


def regression_year_model(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Stan's ``y ~ normal(alpha + beta * x, sigma)`` with no prior statements: flat priors
    on alpha and beta and on sigma > 0 (:func:`~pyrovae.posterior.targets.flat.flat`)."""
    alpha = pyro.sample("alpha", flat())
    beta = pyro.sample("beta", flat())
    sigma = pyro.sample("sigma", flat(constraints.positive))
    with pyro.plate("obs", x.shape[-1]):
        pyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


def _eight_schools_hyper(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = pyro.sample("mu", dist.Normal(sigma.new_zeros(()), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(sigma.new_tensor(5.0)))
    return mu, tau


def eight_schools_centered_model(sigma: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """posteriordb's eight_schools_centered: theta_j ~ N(mu, tau), y_j ~ N(theta_j, sigma_j)."""
    mu, tau = _eight_schools_hyper(sigma)
    with pyro.plate("obs", sigma.shape[-1]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered_model(sigma: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """posteriordb's eight_schools_noncentered: theta = mu + tau * theta_trans.

    theta_trans_j ~ N(0, 1); ``theta`` is recorded as a deterministic site.
    """
    mu, tau = _eight_schools_hyper(sigma)
    with pyro.plate("obs", sigma.shape[-1]):
        theta_trans = pyro.sample("theta_trans", dist.Normal(sigma.new_zeros(()), 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_trans, event_dim=0)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def blr_model(X: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """posteriordb's blr: beta ~ N(0, 10^2 I), sigma ~ HalfNormal(10), y ~ N(X beta, sigma^2)."""
    beta = pyro.sample("beta", dist.Normal(X.new_zeros(X.shape[-1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(X.new_tensor(10.0)))
    with pyro.plate("obs", X.shape[0]):
        pyro.sample("y", dist.Normal(_linear(X, beta), sigma), obs=y)


def kidscore_momiq_model(mom_iq: torch.Tensor, kid_score: torch.Tensor | None = None) -> None:
    """posteriordb's kidscore_momiq: flat prior on beta (2,), sigma ~ HalfCauchy(2.5),
    kid_score ~ N(beta[1] + beta[2] * mom_iq, sigma)."""
    beta = pyro.sample("beta", flat(event_shape=(2,)))
    sigma = pyro.sample("sigma", dist.HalfCauchy(mom_iq.new_tensor(2.5)))
    with pyro.plate("obs", mom_iq.shape[-1]):
        mean = beta[..., 0] + beta[..., 1] * mom_iq
        pyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)


def logistic_regression_model(X: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """y ~ Bernoulli(logits = X beta) for ``X`` ``(N, D)``, beta ~ N(0, I_D), no intercept."""
    beta = pyro.sample("beta", dist.Normal(X.new_zeros(X.shape[-1]), 1.0).to_event(1))
    with pyro.plate("obs", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=_linear(X, beta)), obs=y)


# ---------------------------------------------------------------------------
# Builders


def _normal_normal(root: str | Path | None) -> ZooModel:
    y = (1.5 + torch.randn(20, generator=_generator(20250101), dtype=torch.float64)).float()
    ones = torch.ones(len(y), 1)
    exact, log_evidence = _gaussian_linear(ones, y, prior_scale=10.0, noise=1.0)
    return ZooModel(
        name="normal_normal",
        model=normal_normal_model,
        data={"y": y},
        parameters={"mu": ()},
        description=(
            "Normal mean with known noise: y_i ~ N(mu, 1), mu ~ N(0, 10^2); "
            "20 seeded observations with true mu = 1.5. Exact posterior and evidence."
        ),
        exact=exact,
        log_evidence=log_evidence,
    )


_BLR_CORRELATION = ((1.0, 0.9, 0.6), (0.9, 1.0, 0.8), (0.6, 0.8, 1.0))
_BLR_TRUE_BETA = (1.0, -0.5, 0.25)


def _blr_known_noise(root: str | Path | None) -> ZooModel:
    g = _generator(20250102)
    chol = torch.linalg.cholesky(torch.tensor(_BLR_CORRELATION, dtype=torch.float64))
    x = torch.randn(50, 3, generator=g, dtype=torch.float64) @ chol.T
    beta = torch.tensor(_BLR_TRUE_BETA, dtype=torch.float64)
    y = x @ beta + 0.5 * torch.randn(50, generator=g, dtype=torch.float64)
    x, y = x.float(), y.float()
    exact, log_evidence = _gaussian_linear(x, y, prior_scale=1.0, noise=0.5)
    return ZooModel(
        name="blr_known_noise",
        model=blr_known_noise_model,
        data={"X": x, "y": y},
        parameters={"beta": (3,)},
        description=(
            "Bayesian linear regression with known noise: y ~ N(X beta, 0.5^2), "
            "beta ~ N(0, I_3); 50 seeded rows whose columns are correlated (0.9, 0.6, 0.8), "
            f"true beta = {list(_BLR_TRUE_BETA)}. Exact correlated Gaussian posterior and evidence."
        ),
        exact=exact,
        log_evidence=log_evidence,
    )


_FAR_TRUE_BETA = (2.0, 0.5, -1.0)


def _regression_far(root: str | Path | None) -> ZooModel:
    g = _generator(20261206)
    n = 50
    x1 = 100.0 + 5.0 * torch.randn(n, generator=g, dtype=torch.float64)
    x2 = -40.0 + 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.stack([torch.ones(n, dtype=torch.float64), x1, x2], dim=1)
    y = x @ torch.tensor(_FAR_TRUE_BETA, dtype=torch.float64)
    y = y + torch.randn(n, generator=g, dtype=torch.float64)
    x, y = x.float(), y.float()
    exact, log_evidence = _gaussian_linear(x, y, prior_scale=100.0, noise=1.0)
    return ZooModel(
        name="regression_far",
        model=regression_far_model,
        data={"X": x, "y": y},
        parameters={"beta": (3,)},
        description=(
            "Linear regression with unscaled predictors far from zero: y ~ N(X beta, 1), "
            "beta ~ N(0, 100^2 I_3), X = [1, x1, x2] with x1 ~ N(100, 5^2), x2 ~ N(-40, 2^2); "
            f"50 seeded rows, true beta = {list(_FAR_TRUE_BETA)}. The posterior sds differ "
            "150-fold (intercept 4.7, slopes 0.03 and 0.07) and the covariance's condition "
            "number is 1e7. Exact Gaussian posterior and evidence."
        ),
        exact=exact,
        log_evidence=log_evidence,
    )


_YEAR_TRUE = (-40.0, 0.025, 0.5)


def _regression_year(root: str | Path | None) -> ZooModel:
    g = _generator(20261207)
    n = 30
    x = 1990.0 + 20.0 * torch.rand(n, generator=g, dtype=torch.float64)
    alpha, beta, sigma = _YEAR_TRUE
    y = alpha + beta * x + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    x, y = x.float(), y.float()
    return ZooModel(
        name="regression_year",
        model=regression_year_model,
        data={"x": x, "y": y},
        parameters={"alpha": (), "beta": (), "sigma": ()},
        description=(
            "Linear regression on a year-like predictor, as Stan writes it without priors: "
            "y ~ N(alpha + beta x, sigma^2), flat priors on alpha, beta and sigma > 0; 30 "
            "seeded rows with x uniform on (1990, 2010), true (alpha, beta, sigma) = "
            f"{list(_YEAR_TRUE)}. x is not centred, so alpha and beta are correlated "
            "-0.99999 a posteriori and their sds differ 2,000-fold: a diagonal mass matrix "
            "makes NUTS hit its maximum tree depth, a dense one does not. Exact draws "
            "(sigma^2 is inverse-gamma, (alpha, beta) given sigma Gaussian)."
        ),
        exact_draws=functools.partial(_flat_regression_draws, x.double(), y.double()),
    )


def _flat_regression_draws(
    x: torch.Tensor, y: torch.Tensor, generator: np.random.Generator, n: int
) -> np.ndarray:
    """``(n, 3)`` exact draws of (alpha, beta, sigma) for y ~ N(alpha + beta x, sigma^2)
    with flat priors: sigma^2 ~ InvGamma((N - 3) / 2, RSS / 2) and (alpha, beta) | sigma ~
    N(b_hat, sigma^2 (X'X)^-1), X = [1, x] (Gelman et al., BDA3 section 14.2, with
    p(sigma) flat instead of p(log sigma) flat)."""
    design = np.stack([np.ones(len(x)), x.numpy()], axis=1)
    target = y.numpy()
    gram_inv = np.linalg.inv(design.T @ design)
    b_hat = gram_inv @ design.T @ target
    rss = float(np.sum((target - design @ b_hat) ** 2))
    variance = (rss / 2) / generator.gamma((len(target) - 3) / 2, size=n)
    chol = np.linalg.cholesky(gram_inv)
    b = b_hat + np.sqrt(variance)[:, None] * (generator.standard_normal((n, 2)) @ chol.T)
    return np.column_stack([b, np.sqrt(variance)])


def _eight_schools(centered: bool) -> ZooModel:
    kind = "centered" if centered else "noncentered"
    how = (
        "theta_j ~ N(mu, tau)"
        if centered
        else "theta = mu + tau * theta_trans (deterministic), theta_trans_j ~ N(0, 1)"
    )
    return ZooModel(
        name=f"eight_schools_{kind}",
        model=eight_schools_centered_model if centered else eight_schools_noncentered_model,
        data=_tensors(EIGHT_SCHOOLS, ("sigma", "y")),
        parameters={"theta": (8,), "mu": (), "tau": ()},
        description=(
            f"Eight schools, {kind} (posteriordb's eight_schools_{kind}): mu ~ N(0, 5^2), "
            f"tau ~ HalfCauchy(5), {how}, y_j ~ N(theta_j, sigma_j)."
        ),
        reference=_EIGHT_SCHOOLS_REFERENCE,
    )


def _blr(root: str | Path | None) -> ZooModel:
    raw = _posteriordb_data("blr", "sblrc", root)
    return ZooModel(
        name="blr",
        model=blr_model,
        data=_tensors(raw, ("X", "y")),
        parameters={"beta": (int(raw["D"]),), "sigma": ()},
        description=(
            "Correlated-design linear regression (posteriordb's blr with the sblrc data, "
            "N = 100, D = 5): beta ~ N(0, 10^2 I), sigma ~ HalfNormal(10), y ~ N(X beta, sigma^2)."
        ),
        reference="sblrc-blr",
    )


def _kidscore_momiq(root: str | Path | None) -> ZooModel:
    raw = _posteriordb_data("kidscore_momiq", "kidiq", root)
    return ZooModel(
        name="kidscore_momiq",
        model=kidscore_momiq_model,
        data=_tensors(raw, ("mom_iq", "kid_score")),
        parameters={"beta": (2,), "sigma": ()},
        description=(
            "Kid's test score on mother's IQ (posteriordb's kidscore_momiq with the kidiq data, "
            "N = 434): flat improper prior on beta, sigma ~ HalfCauchy(2.5), "
            "kid_score ~ N(beta[1] + beta[2] * mom_iq, sigma^2)."
        ),
        reference="kidiq-kidscore_momiq",
    )


_LOGISTIC_TRUE_BETA = (1.0, -2.0, 0.5)


def _logistic_regression(root: str | Path | None) -> ZooModel:
    g = _generator(20250103)
    x = torch.randn(100, 3, generator=g, dtype=torch.float64)
    p = torch.sigmoid(x @ torch.tensor(_LOGISTIC_TRUE_BETA, dtype=torch.float64))
    y = (torch.rand(100, generator=g, dtype=torch.float64) < p).float()
    return ZooModel(
        name="logistic_regression",
        model=logistic_regression_model,
        data={"X": x.float(), "y": y},
        parameters={"beta": (3,)},
        description=(
            "Logistic regression without intercept: y ~ Bernoulli(logits = X beta), "
            f"beta ~ N(0, I_3); 100 seeded rows, true beta = {list(_LOGISTIC_TRUE_BETA)}. "
            "No exact posterior (use long NUTS runs as reference)."
        ),
    )


_BUILDERS: dict[str, Callable[[str | Path | None], ZooModel]] = {
    "normal_normal": _normal_normal,
    "blr_known_noise": _blr_known_noise,
    "regression_far": _regression_far,
    "regression_year": _regression_year,
    "eight_schools_centered": lambda root: _eight_schools(centered=True),
    "eight_schools_noncentered": lambda root: _eight_schools(centered=False),
    "blr": _blr,
    "kidscore_momiq": _kidscore_momiq,
    "logistic_regression": _logistic_regression,
}


def list_models() -> list[str]:
    """Names of the zoo models, in the order of :data:`MODELS`."""
    return list(MODELS)


def get_model(name: str, root: str | Path | None = None) -> ZooModel:
    """Build the zoo model called ``name``.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    root : str or Path, optional
        posteriordb folder for the models that read their data from it
        (``blr``, ``kidscore_momiq``); see :func:`pyrovae.posterior.targets.posteriordb.find_root`.

    Returns
    -------
    ZooModel
        A fresh instance (data are rebuilt at each call, identically).
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown zoo model '{name}'; {hint}choose one of {', '.join(MODELS)}")
    return builder(root)
