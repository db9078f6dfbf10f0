"""NetCDF files of InferenceData whose attrs survive the round trip.

NetCDF attrs hold only strings and numbers; :func:`save` writes the others (lists, dicts,
``None``, booleans) as JSON strings and lists them, and :func:`load` decodes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import arviz as az

from pyrovae.errors import UserError
from pyrovae.posterior.diagnostics._build import plain

__all__ = ["load", "save"]

_JSON_ATTRS = "pyrovae_json_attrs"
"""Dataset/InferenceData attribute listing (as a JSON list) the attrs :func:`save` stored
as JSON strings."""


def _encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs NetCDF can store: str, int and float as they are, anything else as JSON."""
    out: dict[str, Any] = {}
    encoded = []
    for key, value in attrs.items():
        value = plain(value)
        if isinstance(value, str) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            out[key] = value
        else:
            out[key] = json.dumps(value)
            encoded.append(key)
    if encoded:
        out[_JSON_ATTRS] = json.dumps(encoded)
    return out


def _decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_encode_attrs`; numpy scalars and arrays become Python values."""
    out = {k: plain(v) for k, v in attrs.items() if k != _JSON_ATTRS}
    if _JSON_ATTRS in attrs:
        for key in json.loads(attrs[_JSON_ATTRS]):
            if key in out:
                out[key] = json.loads(out[key])
    return out


def save(idata: az.InferenceData, path: str | Path) -> Path:
    """Write ``idata`` to a NetCDF file (parents created, an existing file replaced).

    ``idata`` itself is not changed: attrs of the InferenceData and of each group that
    NetCDF cannot hold (lists, dicts, ``None``, booleans) are written as JSON strings and
    listed in the attr ``pyrovae_json_attrs``, which :func:`load` decodes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = {}
    for group in idata.groups():
        dataset = getattr(idata, group).copy(deep=False)
        dataset.attrs = _encode_attrs(dataset.attrs)
        groups[group] = dataset
    encoded = az.InferenceData(attrs=_encode_attrs(idata.attrs), **groups)
    try:
        encoded.to_netcdf(str(path))
    except (OSError, ValueError, TypeError) as err:
        raise UserError(f"{path}: cannot write the NetCDF file ({_one_line(err)})") from None
    return path


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def load(path: str | Path) -> az.InferenceData:
    """Read a file written by :func:`save` (attrs decoded).

    Raises
    ------
    pyrovae.errors.UserError
        One line, if the file is missing or is not an InferenceData NetCDF file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; write it with pyrovae.posterior.diagnostics.save")
    try:
        idata = az.from_netcdf(str(path))
    except Exception as err:  # h5py/xarray raise OSError, ValueError, KeyError, ...
        raise UserError(f"{path}: cannot read as an ArviZ NetCDF file ({_one_line(err)})") from None
    if not idata.groups():
        raise UserError(f"{path}: the file holds no InferenceData groups")
    for group in idata.groups():
        dataset = getattr(idata, group)
        dataset.attrs = _decode_attrs(dataset.attrs)
    idata.attrs = _decode_attrs(idata.attrs)
    return idata
