"""pyrovae: declarative variational autoencoders on Pyro, checked against MCMC.

The public API, in the order data flow through it::

    spec = load_spec("examples/specs/digits.toml", overrides=["train.epochs=5"])
    outcome = train_model(spec, "runs/digits")        # data -> VAE -> fit -> run dir

or, stage by stage::

    data = load_data(spec.data, spec.model.likelihood.name)
    model = build_model(spec.model, data.dim, image=data.image_shape)  # a VAE or an Autoencoder
    result = fit(model, data, spec.train)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyrovae._version import __version__
from pyrovae.errors import DataError, NonFiniteLossError, PyrovaeError, SpecError, UserError

if TYPE_CHECKING:
    from pyrovae.data import Dataset, load_data
    from pyrovae.models import VAE, Autoencoder, build_model
    from pyrovae.pipeline import TrainOutcome, train_model
    from pyrovae.posterior.targets.flat import flat
    from pyrovae.spec import Spec, load_spec, spec_from_dict
    from pyrovae.train import FitResult, TrainState, fit

_LAZY = {
    "Dataset": "pyrovae.data",
    "load_data": "pyrovae.data",
    "VAE": "pyrovae.models",
    "Autoencoder": "pyrovae.models",
    "build_model": "pyrovae.models",
    "TrainOutcome": "pyrovae.pipeline",
    "train_model": "pyrovae.pipeline",
    "Spec": "pyrovae.spec",
    "load_spec": "pyrovae.spec",
    "spec_from_dict": "pyrovae.spec",
    "FitResult": "pyrovae.train",
    "TrainState": "pyrovae.train",
    "fit": "pyrovae.train",
    "flat": "pyrovae.posterior.targets.flat",
}
"""Public names imported on first use: ``import pyrovae`` (and the command line's
argument and spec checks) then costs milliseconds, not the seconds torch, Pyro and
ArviZ take to import."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pyrovae' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "VAE",
    "Autoencoder",
    "DataError",
    "Dataset",
    "FitResult",
    "NonFiniteLossError",
    "PyrovaeError",
    "Spec",
    "SpecError",
    "TrainOutcome",
    "TrainState",
    "UserError",
    "__version__",
    "build_model",
    "fit",
    "flat",
    "load_data",
    "load_spec",
    "spec_from_dict",
    "train_model",
]
