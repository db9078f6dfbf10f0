"""pyrovae: declarative variational autoencoders on Pyro, checked against MCMC.

The public API, in the order data flow through it::

    spec = load_spec("examples/specs/digits.toml", overrides=["train.epochs=5"])
    outcome = train_model(spec, "runs/digits")        # data -> VAE -> fit -> run dir

or, stage by stage::

    data = load_data(spec.data, spec.model.likelihood.name)
    model = build_model(spec.model, data.dim)   # a VAE, or an Autoencoder for the AE kinds
    result = fit(model, data, spec.train)
"""

from pyrovae.data import Dataset, load_data
from pyrovae.errors import DataError, NonFiniteLossError, PyrovaeError, SpecError, UserError
from pyrovae.models import VAE, Autoencoder, build_model
from pyrovae.pipeline import TrainOutcome, train_model
from pyrovae.spec import Spec, load_spec, spec_from_dict
from pyrovae.train import FitResult, TrainState, fit

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
    "build_model",
    "fit",
    "load_data",
    "load_spec",
    "spec_from_dict",
    "train_model",
]

__version__ = "0.1.0"
