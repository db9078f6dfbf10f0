"""The run directory: the only module that reads and writes files of a run.

A run directory holds::

    spec.toml       the resolved spec (every field, defaults included)
    checkpoint.pt   weights, optimizer and random states, history (torch.save)
    history.csv     one row per epoch
    metrics.json    flat metrics, per example, nats unless the name says otherwise
    figures/*.png   what the model learned (pyrovae evaluate / run)
    report.md       spec, metrics and figures in one page
    local_posteriors/   p(z|x) of a few test points by every method (pyrovae compare / run)
    tensorboard/    TensorBoard event files, with train.tensorboard (written by
                    pyrovae.report.tensorboard)

Every file is written atomically (a temporary file in the same folder, then
``os.replace``), so an interrupted write never leaves a half file behind and
the previous version stays readable. Checkpoints hold only tensors, numbers,
strings, lists and dicts and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

from pyrovae.errors import UserError
from pyrovae.spec import Spec, load_spec, spec_from_dict, spec_to_dict, spec_to_toml
from pyrovae.train.state import EpochRecord, TrainState

__all__ = [
    "CHECKPOINT",
    "FIGURES_DIR",
    "HISTORY",
    "LOCAL_DIR",
    "METRICS",
    "REPORT",
    "SPEC",
    "Checkpoint",
    "load_checkpoint",
    "read_metrics",
    "read_run_spec",
    "save_checkpoint",
    "update_metrics",
    "write_atomic",
    "write_history",
    "write_report",
    "write_spec",
]

SPEC, CHECKPOINT, HISTORY, METRICS = "spec.toml", "checkpoint.pt", "history.csv", "metrics.json"
REPORT, FIGURES_DIR, LOCAL_DIR = "report.md", "figures", "local_posteriors"
CHECKPOINT_FORMAT = 1


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_spec(run_dir: Path, spec: Spec) -> None:
    """Save the resolved spec as ``spec.toml``."""
    write_atomic(run_dir / SPEC, spec_to_toml(spec).encode())


def read_run_spec(run_dir: Path) -> Spec:
    """The spec a run was trained with."""
    path = run_dir / SPEC
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no {SPEC})")
    return load_spec(path)


class Checkpoint(NamedTuple):
    """What ``checkpoint.pt`` holds."""

    spec: Spec
    data_dim: int
    state: TrainState


def save_checkpoint(run_dir: Path, spec: Spec, data_dim: int, state: TrainState) -> None:
    """Write ``checkpoint.pt`` atomically."""
    buffer = io.BytesIO()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": spec_to_dict(spec),
        "data_dim": data_dim,
        "state": state.to_checkpoint(),
    }
    torch.save(payload, buffer)
    write_atomic(run_dir / CHECKPOINT, buffer.getvalue())


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Read ``checkpoint.pt`` with ``weights_only=True`` (no arbitrary unpickling).

    Raises
    ------
    UserError
        When the file is missing, unreadable or of an unknown format.
    """
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise UserError(f"no checkpoint in {run_dir} (expected {CHECKPOINT})")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise UserError(f"{path} cannot be read as a checkpoint: {err}") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a pyrovae checkpoint of format {CHECKPOINT_FORMAT}")
    return Checkpoint(
        spec_from_dict(raw["spec"]), int(raw["data_dim"]), TrainState.from_checkpoint(raw["state"])
    )


def write_history(run_dir: Path, history: tuple[EpochRecord, ...]) -> None:
    """Write ``history.csv``: one row per epoch, columns as :class:`EpochRecord`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EpochRecord._fields)
    for record in history:
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in record])
    write_atomic(run_dir / HISTORY, out.getvalue().encode())


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The metrics of a run (empty when there are none yet)."""
    path = run_dir / METRICS
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge ``metrics`` into ``metrics.json`` (non-finite floats become null)."""
    merged = {**read_metrics(run_dir), **{k: _json_safe(v) for k, v in metrics.items()}}
    write_atomic(run_dir / METRICS, (json.dumps(merged, indent=2) + "\n").encode())
    return merged


def write_report(run_dir: Path, text: str) -> Path:
    """Write ``report.md``."""
    write_atomic(run_dir / REPORT, text.encode())
    return run_dir / REPORT
