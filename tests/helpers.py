"""Shared test helpers: tiny specs and the path of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrovae.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def tiny_spec(*overrides: str) -> Spec:
    """The digits VAE, small and short, with extra ``key=value`` overrides."""
    base = [
        "model.encoder.hidden=[32]",
        "model.decoder.hidden=[32]",
        "train.epochs=2",
        "train.batch_size=256",
        "data.limit=300",
    ]
    return load_spec(None, [*base, *overrides])


def synthetic_spec(*overrides: str) -> Spec:
    """The shipped probabilistic-PCA spec with extra overrides."""
    return load_spec(ROOT / "examples" / "specs" / "synthetic.toml", list(overrides))


needs_mnist = pytest.mark.skipif(
    not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="needs the MNIST test set in ../shared/data/mnist (absent in this checkout)",
)
