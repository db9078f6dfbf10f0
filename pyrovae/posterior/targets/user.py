"""A user's own Pyro model as a comparison target: ``path/to/file.py:function``.

The function is imported from its file and called with keyword data from a JSON
object; its latent sample sites are the parameters the comparison reports.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyrovae.errors import UserError
from pyrovae.posterior.targets.flat import flat_priors
from pyrovae.posterior.targets.zoo import ZooModel

__all__ = ["load_user_model"]


def _import_function(target: str) -> tuple[Callable[..., Any], str]:
    path_text, sep, function = target.rpartition(":")
    if not sep or not path_text or not function:
        raise UserError(f"expected path/to/file.py:function, got {target!r}")
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"model file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"pyrovae_user_{path.stem}", path)
    if spec is None or spec.loader is None:  # a file Python cannot import, e.g. not .py
        raise UserError(f"model file {str(path)!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report, never crash
        raise UserError(f"importing {path} failed: {type(err).__name__}: {err}") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UserError(f"{path} has no function {function!r} (it has: {', '.join(found)})")
    return fn, path.stem


def _numbers(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    else:
        yield value


def _tensor(name: str, value: Any) -> Any:
    """A JSON array as a tensor: int64 when every entry is an integer (indices, counts),
    bool when every entry is true/false, float64 otherwise; other values as they are."""
    if not isinstance(value, list):
        return value
    entries = list(_numbers(value))
    if not all(isinstance(v, int | float) for v in entries):
        raise UserError(f"--data: {name!r} must be an array of numbers")
    if entries and all(isinstance(v, bool) for v in entries):
        dtype = torch.bool
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in entries):
        dtype = torch.int64
    else:
        dtype = torch.float64
    try:
        return torch.tensor(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise UserError(f"--data: {name!r} is not a rectangular array ({err})") from None


def load_user_model(target: str, data_file: str | Path | None = None) -> ZooModel:
    """A user's Pyro model ``path/to/file.py:function`` with keyword data from JSON.

    Arrays in the JSON become tensors: float64 (the comparison casts them to its
    ``dtype``), int64 when every entry is an integer (group indices, counts: cast them
    in the model where a float is needed), bool for true/false; numbers stay numbers.
    ``ImproperUniform`` priors are read as :func:`~pyrovae.posterior.targets.flat.flat`
    (:func:`~pyrovae.posterior.targets.flat.flat_priors`). The reported parameters are
    the model's latent sample sites, in the order they appear.

    Raises
    ------
    UserError
        Missing file or function, unreadable data, or a model that fails on the data.
    """
    fn, stem = _import_function(target)
    fn = flat_priors(fn)
    data: dict[str, Any] = {}
    if data_file is not None:
        try:
            raw = json.loads(Path(data_file).read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"--data: cannot read {data_file}: {err}") from None
        if not isinstance(raw, dict):
            raise UserError(f"--data: {data_file} must hold a JSON object of keyword arguments")
        data = {k: _tensor(k, v) for k, v in raw.items()}
    try:
        with torch.no_grad():
            trace = poutine.trace(fn).get_trace(**data)
    except NotImplementedError as err:  # e.g. an improper prior's missing sample()
        raise UserError(
            f"{target}: a sample site cannot be drawn ({' '.join(str(err).split())}); for a "
            "flat (improper) prior use pyrovae.flat(support), which Pyro can initialise"
        ) from None
    except Exception as err:  # the user's model on the user's data
        raise UserError(
            f"{target} failed on the data: {type(err).__name__}: "
            f"{' '.join(str(err).split())}; check the data's keys and shapes{_integer_hint(data)}"
        ) from None
    latent: dict[str, tuple[int, ...]] = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        infer, value = site["infer"], site["value"]
        assert infer is not None and value is not None
        if not infer.get("is_auxiliary"):
            latent[name] = tuple(value.shape)
    if not latent:
        raise UserError(f"{target} has no latent sample sites to infer")
    if any(math.prod(shape) > 100 for shape in latent.values()):
        raise UserError(
            f"{target}: a latent site has more than 100 values; pyrovae compares small posteriors"
        )
    return ZooModel(
        name=stem, model=fn, data=data, parameters=latent, description=f"user model {target}"
    )


def _integer_hint(data: dict[str, Any]) -> str:
    """A hint when the data hold integer tensors (a likely cause of dtype errors)."""
    ints = [k for k, v in data.items() if isinstance(v, torch.Tensor) and not v.is_floating_point()]
    if not ints:
        return ""
    return (
        f" (JSON arrays of integers stay integer tensors: {', '.join(ints)}; "
        "cast them in the model, e.g. y.to(X.dtype), where a float is needed)"
    )
