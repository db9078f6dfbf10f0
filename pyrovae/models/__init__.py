"""Models: the VAE, the autoencoder family and the small-model zoo.

:func:`build_model` picks the class a spec's ``model.kind`` declares.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TypeVar

from pyrovae.models.autoencoders import Autoencoder
from pyrovae.models.conditional import CVAE
from pyrovae.models.m2 import M2
from pyrovae.models.vae import VAE
from pyrovae.spec import LABEL_KINDS, ModelSpec

__all__ = ["CVAE", "M2", "VAE", "Autoencoder", "LatentModel", "build_model", "frozen"]

LatentModel = VAE | Autoencoder
"""Any model a spec declares: both have ``model``, ``guide``, ``code``, ``decode``,
``reconstruct`` and ``sample`` (the label models :class:`CVAE` and :class:`M2` are VAEs
that train on rows with a class column)."""

_Model = TypeVar("_Model", bound=LatentModel)


def build_model(
    spec: ModelSpec,
    data_dim: int,
    classes: int | None = None,
    classifier_weight: float = 0.1,
    image: Sequence[int] | None = None,
) -> LatentModel:
    """The model ``spec.kind`` declares, for ``data_dim`` values per example.

    Parameters
    ----------
    spec : ModelSpec
    data_dim : int
        D.
    classes : int, optional
        C, for the label models (``cvae``, ``m2``).
    classifier_weight : float
        M2's alpha / N (``train.classifier_weight``).
    image : (C, H, W), optional
        The shape of each example when the data are images (C * H * W == D); a ``conv``
        network needs it.
    """
    if spec.kind in LABEL_KINDS:
        if classes is None:
            raise ValueError(f"model.kind = {spec.kind!r} needs the number of classes")
        if spec.kind == "cvae":
            return CVAE(spec, data_dim, classes, image)
        return M2(spec, data_dim, classes, classifier_weight, image)
    if spec.kind == "vae":
        return VAE(spec, data_dim, image=image)
    return Autoencoder(spec, data_dim, image)


def frozen(vae: _Model) -> _Model:
    """A copy of ``vae`` on the CPU whose weights need no gradients."""
    copy_ = copy.deepcopy(vae)
    copy_.cpu().eval()
    for p in copy_.parameters():
        p.requires_grad_(False)
    return copy_
