"""What a run's data and networks look like, as Markdown for ``report.md``.

:func:`describe` traces one example through each network (forward hooks on its leaf
layers) and lists every layer with its output shape and parameter count, after a line
on the data's shape. The training command writes it to ``architecture.md`` in the run
directory, and the report shows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ARCHITECTURE", "describe", "layer_table"]

ARCHITECTURE = "architecture.md"
"""The file in a run directory that holds :func:`describe`'s Markdown."""


def layer_table(network: nn.Module, inputs: torch.Tensor) -> list[tuple[str, str, int]]:
    """``(layer, output shape, parameters)`` of every leaf layer that runs on ``inputs``
    ``(1, in_dim)``, in the order they run; shapes leave out the batch axis."""
    rows: list[tuple[str, str, int]] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            shape = "×".join(str(s) for s in output.shape[1:])
            count = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append((_layer_name(module), shape, count))

    leaves = [m for m in network.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return rows


def _layer_name(module: nn.Module) -> str:
    """The class and its defining sizes, e.g. ``Conv2d(1→32, k4, s2, p1)``."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        extra = ""
        if isinstance(module, nn.ConvTranspose2d) and any(module.output_padding):
            extra = f", out+{module.output_padding[0]}"
        return (
            f"{type(module).__name__}({module.in_channels}→{module.out_channels}, "
            f"k{module.kernel_size[0]}, s{module.stride[0]}, p{module.padding[0]}{extra})"
        )
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}→{module.out_features})"
    if isinstance(module, nn.GroupNorm):
        return f"GroupNorm({module.num_groups} groups)"
    return type(module).__name__


def describe(
    model: nn.Module,
    data_dim: int,
    image_shape: Sequence[int] | None,
    levels: int | None,
    condition_dim: int = 0,
) -> str:
    """Markdown: the data's shape, then a table per network (encoder, decoder and an M2's
    classifier) of its layers, output shapes and parameters.

    Parameters
    ----------
    model : VAE or Autoencoder
        With ``encoder`` and ``decoder`` modules (and optionally ``classifier``).
    data_dim : int
        D, values per example.
    image_shape : (C, H, W) or None
    levels : int or None
        Values each pixel takes (256 for 8-bit images).
    condition_dim : int
        Extra inputs of the encoder and decoder (a label model's classes).
    """
    shape = "×".join(str(s) for s in image_shape) if image_shape else f"{data_dim}"
    kind = "images (channels × height × width)" if image_shape else "vectors"
    grid = f", pixels on {levels} levels" if levels else ""
    lines = [f"Data: {kind} of shape {shape} = {data_dim} values per example{grid}.", ""]
    latent = int(model.latent_dim)  # type: ignore[arg-type]
    networks = [
        ("encoder", data_dim + condition_dim),
        ("decoder", latent + condition_dim),
        ("classifier", data_dim),
    ]
    for name, width in networks:
        network = getattr(model, name, None)
        if not isinstance(network, nn.Module):
            continue
        device = next(model.parameters()).device
        rows = layer_table(network, torch.zeros(1, width, device=device))
        total = sum(p.numel() for p in network.parameters())
        lines += [f"**{name}** ({total:,} parameters, input {width} values)", ""]
        lines += ["| layer | output | parameters |", "| --- | --- | --- |"]
        lines += [f"| {layer} | {out} | {count:,} |" for layer, out, count in rows]
        if hasattr(network, "_encoder"):
            lines.append("| (the encoder's weights, transposed) | | |")
        lines.append("")
    return "\n".join(lines)
