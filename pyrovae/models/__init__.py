"""Models: the VAE, the autoencoder family and the small-model zoo.

:func:`build_model` picks the class a spec's ``model.kind`` declares.
"""

from __future__ import annotations

import copy
from typing import TypeVar

from pyrovae.models.autoencoders import Autoencoder
from pyrovae.models.vae import VAE
from pyrovae.spec import ModelSpec

__all__ = ["VAE", "Autoencoder", "LatentModel", "build_model", "frozen"]

LatentModel = VAE | Autoencoder
"""Any model a spec declares: both have ``model``, ``guide``, ``code``, ``decode``,
``reconstruct`` and ``sample``."""

_Model = TypeVar("_Model", bound=LatentModel)


def build_model(spec: ModelSpec, data_dim: int) -> LatentModel:
    """The VAE (``kind = "vae"``) or autoencoder a model spec declares, for ``data_dim`` values."""
    if spec.kind == "vae":
        return VAE(spec, data_dim)
    return Autoencoder(spec, data_dim)


def frozen(vae: _Model) -> _Model:
    """A copy of ``vae`` on the CPU whose weights need no gradients."""
    copy_ = copy.deepcopy(vae)
    copy_.cpu().eval()
    for p in copy_.parameters():
        p.requires_grad_(False)
    return copy_
