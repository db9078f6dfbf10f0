"""Live training curves in TensorBoard: ``train.tensorboard = true``.

After every epoch :class:`TensorBoardLog` writes, under ``RUN_DIR/tensorboard/`` and
with the epoch as the step:

- ``history/<column>``: every number of that epoch's ``history.csv`` row (the objective,
  validation ELBO and bound, beta, seconds), the same values;
- ``train/lr``: the learning rate of the epoch's last step;
- for a VAE, ``validation/reconstruction_nats``, ``validation/kl_nats`` and
  ``kl_per_dimension/z<d>`` (1-based): the ELBO's parts on up to
  :data:`MONITORED` validation examples (training examples when there is no
  validation split), each z drawn once;
- for image data, ``images/reconstructions`` (inputs above, reconstructions below)
  and ``images/samples`` (decoded draws of the prior, the same draws every epoch).

Its random numbers come from a fork of torch's random state seeded by the epoch, so a
run trains the same with and without it, and a resumed run stays exact. On resume the
writer purges what an interrupted run had logged after the checkpoint
(``purge_step``), so every epoch appears once. ``torch.utils.tensorboard`` needs the
``tensorboard`` package (``pip install "pyrovae[tensorboard]"``); without it
:func:`require_tensorboard` raises one clear :class:`~pyrovae.errors.UserError`
before training starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrovae.data.dataset import Dataset
from pyrovae.errors import UserError
from pyrovae.evaluate.likelihood import elbo_parts
from pyrovae.models import VAE, LatentModel
from pyrovae.report.figures import as_images, as_rgb, image_range, mosaic
from pyrovae.train.state import TrainState

__all__ = ["MONITORED", "TENSORBOARD_DIR", "TensorBoardLog", "require_tensorboard"]

TENSORBOARD_DIR = "tensorboard"
"""Folder of the event files inside a run directory."""

MONITORED = 1000
"""Examples whose ELBO parts are logged each epoch."""

_SHOWN = 8  # examples reconstructed, and columns of the sample grid
_SEED = 7919  # offsets the epoch's seed away from training's own


def require_tensorboard() -> None:
    """Check that ``torch.utils.tensorboard`` can be used.

    Raises
    ------
    UserError
        One line naming the package to install, when ``tensorboard`` is missing.
    """
    try:
        importlib.import_module("tensorboard")
        importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        raise UserError(
            "train.tensorboard = true needs the tensorboard package: "
            'pip install "pyrovae[tensorboard]" (or pip install tensorboard)'
        ) from None


class TensorBoardLog:
    """Per-epoch TensorBoard scalars and images of one training run.

    Parameters
    ----------
    run_dir : Path
        The run directory; events go to ``run_dir / "tensorboard"``.
    model : VAE or Autoencoder
        The model being trained; read (in evaluation mode) after each epoch.
    data : Dataset
        Its data; the first :data:`MONITORED` validation rows are monitored.
    first_epoch : int
        The first epoch this writer logs (1, or the resumed epoch + 1); anything
        logged earlier at this epoch or later is purged.
    """

    def __init__(self, run_dir: Path, model: LatentModel, data: Dataset, first_epoch: int) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self._model = model
        self._image_shape = data.image_shape
        source = data.validation if data.validation.shape[0] else data.train
        self._x = source[:MONITORED]
        self._writer = SummaryWriter(
            str(Path(run_dir) / TENSORBOARD_DIR), purge_step=first_epoch, flush_secs=30
        )

    def log(self, state: TrainState, seed: int) -> None:
        """Write epoch ``state.epoch``'s values (nothing for a mid-epoch state)."""
        if state.mid_epoch or not state.history:
            return
        record = state.history[-1]
        step = record.epoch
        for name, value in record._asdict().items():
            if name != "epoch":
                self._writer.add_scalar(f"history/{name}", value, step)
        self._writer.add_scalar("train/lr", _last_lr(state.optimizer), step)
        device = next(self._model.parameters()).device
        was_training = self._model.training
        self._model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed + _SEED * step)
                self._log_model(step, device)
        finally:
            self._model.train(was_training)
        self._writer.flush()

    @torch.no_grad()
    def _log_model(self, step: int, device: torch.device) -> None:
        x = self._x.to(device)
        if isinstance(self._model, VAE) and x.shape[0]:
            parts = elbo_parts(self._model, x, samples=1)
            self._writer.add_scalar(
                "validation/reconstruction_nats", parts.reconstruction.mean().item(), step
            )
            self._writer.add_scalar("validation/kl_nats", parts.kl.mean().item(), step)
            for d, value in enumerate(parts.kl_per_dimension.mean(0).tolist(), start=1):
                self._writer.add_scalar(f"kl_per_dimension/z{d}", value, step)
        if self._image_shape is None:
            return
        shown = x[:_SHOWN]
        generator = torch.Generator(device=device).manual_seed(0)
        pictures = {
            "images/reconstructions": torch.cat(
                [self._model.pixels(shown), self._model.reconstruct(shown)]
            ),
            "images/samples": self._model.sample(2 * _SHOWN, generator),
        }
        for tag, rows in pictures.items():
            grid = _grid(rows, self._image_shape)
            self._writer.add_image(tag, grid, step, dataformats="HWC" if grid.ndim == 3 else "HW")

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


def _last_lr(optimizer_state: dict[str, Any]) -> float:
    return float(optimizer_state["param_groups"][0]["lr"])


def _grid(rows: torch.Tensor, image_shape: Sequence[int]) -> np.ndarray:
    """Rows ``(n, C * H * W)`` tiled in two rows of images, in [0, 1] (the data's own range
    mapped there), gutters white: ``(H', W')`` for one channel, ``(H', W', 3)`` for more
    (colour for 3, the channels' mean as grey otherwise), float32."""
    values = rows.detach().to("cpu", torch.float64).numpy()
    images = as_images(values, image_shape, "images")
    tiled = mosaic(images, 2, -(-images.shape[0] // 2))
    lo, hi = image_range(values)
    if tiled.ndim == 3:  # colour, or 2 or 4+ channels shown as grey: (H', W', 3)
        return as_rgb(tiled, (lo, hi)).astype(np.float32)
    scaled = np.clip((tiled - lo) / (hi - lo), 0.0, 1.0)
    return np.nan_to_num(scaled, nan=1.0).astype(np.float32)
