"""Will a spec's model fit? Its training memory estimated from shapes, before anything is
allocated.

The model is built on PyTorch's ``meta`` device (shapes, no storage), so the estimate
costs milliseconds for any network kind, even for a model a thousand times too big.
Training holds each parameter about :data:`COPIES_PER_PARAMETER` times (weights,
gradients, Adam's two moments, the epoch's snapshot and the best weights) and each
activation of a minibatch about :data:`COPIES_PER_ACTIVATION` times (forward values,
their gradients, temporaries), once per importance sample.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from pyrovae.errors import SpecError
from pyrovae.models import build_model
from pyrovae.spec import IWAE_OBJECTIVES, Spec

__all__ = [
    "COPIES_PER_ACTIVATION",
    "COPIES_PER_PARAMETER",
    "MemoryEstimate",
    "available_bytes",
    "check_memory",
    "estimate_memory",
]

COPIES_PER_PARAMETER = 6
"""Weights, gradient, Adam's first and second moments, the epoch snapshot, the best weights."""

COPIES_PER_ACTIVATION = 3
"""Forward value, its gradient, and one temporary, per element of a layer's output."""

_GIB = 2**30


class MemoryEstimate(NamedTuple):
    """What training a spec's model needs, in bytes."""

    parameters: int
    """Number of parameters of the model."""
    activations: int
    """Numbers in the layers' outputs for one minibatch (all importance samples)."""
    bytes: int
    """Estimated peak training memory."""


def _activations(network: nn.Module, inputs: torch.Tensor) -> int:
    """Elements in the outputs of every leaf module of ``network`` on ``inputs`` (meta)."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    hooks = [m.register_forward_hook(count) for m in network.modules() if not list(m.children())]
    try:
        network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def estimate_memory(
    spec: Spec, data_dim: int, classes: int | None = None, image: Sequence[int] | None = None
) -> MemoryEstimate:
    """Parameters, activations and training bytes of ``spec``'s model on ``data_dim`` values
    (and ``classes``, for a label model: its networks also take the one-hot class, and M2
    runs them once per class under enumeration)."""
    with torch.device("meta"):
        model = build_model(spec.model, data_dim, classes, spec.train.classifier_weight, image)
        parameters = sum(p.numel() for p in model.parameters())
        rows = spec.train.batch_size
        if spec.train.objective in IWAE_OBJECTIVES:
            rows *= spec.train.particles
        extra = classes or 0
        if model.discrete_latents:
            rows *= extra
        activations = _activations(model.encoder, torch.empty(rows, data_dim + extra))
        activations += _activations(model.decoder, torch.empty(rows, spec.model.latent_dim + extra))
    itemsize = torch.get_default_dtype().itemsize
    total = itemsize * (COPIES_PER_PARAMETER * parameters + COPIES_PER_ACTIVATION * activations)
    return MemoryEstimate(parameters, activations, total)


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (``MemAvailable`` for the CPU), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    spec: Spec,
    data_dim: int,
    device: torch.device,
    classes: int | None = None,
    image: Sequence[int] | None = None,
) -> MemoryEstimate:
    """The estimate, or a one-line :class:`SpecError` when it exceeds the free memory.

    Raises
    ------
    SpecError
        Naming the model's sizes, the estimate and what the device has free.
    """
    estimate = estimate_memory(spec, data_dim, classes, image)
    free = available_bytes(device)
    if free is not None and estimate.bytes > free:
        raise SpecError(
            "model",
            f"training needs about {estimate.bytes / _GIB:.1f} GiB ({estimate.parameters:,} "
            f"parameters, latent_dim = {spec.model.latent_dim}, data of {data_dim} values), "
            f"more than the {free / _GIB:.1f} GiB free on {device.type}; use a smaller "
            "model.latent_dim, smaller hidden sizes or a smaller train.batch_size",
        )
    return estimate
