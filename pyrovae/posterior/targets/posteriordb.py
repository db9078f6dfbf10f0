"""Read posteriors, data and reference draws from a posteriordb folder.

posteriordb (https://github.com/stan-dev/posteriordb) keeps, under its root:

``posteriors/NAME.json``
    ``name``, ``model_name``, ``data_name``, ``reference_posterior_name``
    (null or missing when there is none) and ``dimensions``.
``data/data/DATA.json.zip``
    A zip holding ``DATA.json``: a dict of data (numbers and nested lists).
``models/stan/MODEL.stan``
    The Stan program.
``reference_posteriors/draws/draws/NAME.json.zip``
    A zip holding ``NAME.json``: a list of chains, each a dict from Stan-style
    names (``"theta[1]"``, ``"mu"``) to a list of draws.

The root is the folder holding ``posteriors/``; a posteriordb git checkout
(with the database under ``posterior_database/``) is accepted too. Every
problem raises a one-line :class:`~pyrovae.errors.UserError`.
"""

from __future__ import annotations

import difflib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pyrovae.errors import UserError

__all__ = [
    "DEFAULT_ROOTS",
    "ENV_VAR",
    "PosteriorInfo",
    "available_posteriors",
    "find_root",
    "load_data",
    "load_reference_draws",
    "posterior_info",
]

ENV_VAR = "POSTERIORDB"
"""Environment variable naming a posteriordb root; looked at before the default folder."""

_DEFAULT_FOLDER = Path("../shared/data/posteriordb")


def _default_roots() -> tuple[Path, ...]:
    env = os.environ.get(ENV_VAR)
    return (Path(env), _DEFAULT_FOLDER) if env else (_DEFAULT_FOLDER,)


DEFAULT_ROOTS: tuple[Path, ...] = _default_roots()
"""Where :func:`find_root` looks when given no root, as at import time: ``$POSTERIORDB``
(if set), then ``../shared/data/posteriordb`` relative to the current directory.
:func:`find_root` reads the environment variable again at each call."""


class PosteriorInfo(NamedTuple):
    """What ``posteriors/NAME.json`` says about one posterior.

    ``dimensions`` maps each parameter to its number of scalars (1 for a scalar).
    """

    name: str
    model_name: str
    data_name: str
    reference_posterior_name: str | None
    dimensions: dict[str, int]


def _as_db(folder: Path) -> Path | None:
    """``folder`` (or its ``posterior_database/``) if it holds ``posteriors/``, else None."""
    for candidate in (folder, folder / "posterior_database"):
        if (candidate / "posteriors").is_dir():
            return candidate.resolve()
    return None


def find_root(root: str | Path | None = None) -> Path:
    """The posteriordb folder to read from.

    Parameters
    ----------
    root : str or Path, optional
        A posteriordb folder (holding ``posteriors/``). By default the first of
        ``$POSTERIORDB`` and ``../shared/data/posteriordb`` that exists.

    Returns
    -------
    Path
        The resolved folder that holds ``posteriors/``.
    """
    places = (Path(root),) if root is not None else _default_roots()
    for place in places:
        found = _as_db(place)
        if found is not None:
            return found
    looked = ", ".join(f"'{p}'" for p in places)
    raise UserError(
        f"no posteriordb folder (one holding posteriors/) at {looked}; "
        f"pass root= or set ${ENV_VAR} to a posteriordb checkout"
    )


def _names(folder: Path, suffix: str) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def _unknown(kind: str, name: str, available: list[str], root: Path) -> UserError:
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(available) if available else "none"
    return UserError(f"unknown {kind} '{name}' in {root}; {hint}available: {listed}")


def available_posteriors(root: str | Path | None = None) -> list[str]:
    """Sorted names of the posteriors in ``root/posteriors``."""
    return _names(find_root(root) / "posteriors", ".json")


def _read_json_file(path: Path) -> Any:
    """JSON from a ``.json`` file or from the single ``.json`` member of a ``.zip``."""
    try:
        if path.suffix != ".zip":
            return json.loads(path.read_text(encoding="utf-8"))
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".json")]
            wanted = path.name[: -len(".zip")]
            member = wanted if wanted in members else (members[0] if len(members) == 1 else None)
            if member is None:
                raise UserError(
                    f"{path}: expected one .json file inside the zip, found {len(members)}; "
                    "re-download it from posteriordb"
                )
            return json.loads(archive.read(member).decode("utf-8"))
    except zipfile.BadZipFile as exc:
        raise UserError(f"{path} is not a valid zip file ({exc}); re-download it") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} does not hold valid JSON ({exc}); re-download it") from exc
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc


def posterior_info(name: str, root: str | Path | None = None) -> PosteriorInfo:
    """Read ``posteriors/NAME.json``.

    Parameters
    ----------
    name : str
        Posterior name, e.g. ``"eight_schools-eight_schools_noncentered"``.
    root : str or Path, optional
        See :func:`find_root`.
    """
    db = find_root(root)
    path = db / "posteriors" / f"{name}.json"
    if not path.is_file():
        raise _unknown("posterior", name, _names(db / "posteriors", ".json"), db)
    raw = _read_json_file(path)
    missing = [k for k in ("model_name", "data_name") if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; is it a posteriordb posterior file?")
    dimensions = raw.get("dimensions") or {}
    return PosteriorInfo(
        name=str(raw.get("name", name)),
        model_name=str(raw["model_name"]),
        data_name=str(raw["data_name"]),
        reference_posterior_name=raw.get("reference_posterior_name") or None,
        dimensions={str(k): int(v) for k, v in dimensions.items()},
    )


def load_data(data_name: str, root: str | Path | None = None) -> dict[str, Any]:
    """Read ``data/data/DATA.json.zip`` (or ``DATA.json``) as a dict of plain Python values.

    Parameters
    ----------
    data_name : str
        Data name, e.g. ``"eight_schools"`` (a posterior's ``data_name``).
    root : str or Path, optional
        See :func:`find_root`.
    """
    db = find_root(root)
    folder = db / "data" / "data"
    for suffix in (".json.zip", ".json"):
        path = folder / f"{data_name}{suffix}"
        if path.is_file():
            data = _read_json_file(path)
            if not isinstance(data, dict):
                raise UserError(
                    f"{path}: expected a JSON object of data, got {type(data).__name__}"
                )
            return data
    raise _unknown("data", data_name, _names(folder, ".json.zip"), db)


def _reference_path(source: str | Path, root: str | Path | None) -> Path:
    """The draws file named by ``source``: a path, or a posterior name looked up in ``root``."""
    text = str(source)
    if isinstance(source, Path) or text.endswith((".json", ".zip")) or os.sep in text:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"no reference-draws file at {path}; check the path")
        return path
    info = posterior_info(text, root)
    if info.reference_posterior_name is None:
        raise UserError(
            f"posterior '{text}' has no reference draws in posteriordb; "
            "compute them (e.g. a long NUTS run) or pick another posterior"
        )
    folder = find_root(root) / "reference_posteriors" / "draws" / "draws"
    path = folder / f"{info.reference_posterior_name}.json.zip"
    if not path.is_file():
        raise UserError(
            f"posterior '{text}' names reference '{info.reference_posterior_name}' "
            f"but {path} is missing; copy it from posteriordb"
        )
    return path


def _chain_array(chain: Any, index: int, names: list[str], path: Path) -> np.ndarray:
    """One chain's draws as ``(draws, P)`` float64, columns in the order of ``names``."""
    if not isinstance(chain, dict) or list(chain) != names:
        got = list(chain) if isinstance(chain, dict) else type(chain).__name__
        raise UserError(
            f"{path}: chain {index + 1} has parameters {got}, chain 1 has {names}; "
            "every chain must list the same parameters"
        )
    lengths = {len(v) if isinstance(v, list) else -1 for v in chain.values()}
    if -1 in lengths or len(lengths) != 1:
        raise UserError(
            f"{path}: in chain {index + 1} the parameters have different numbers of draws "
            "(or are not lists); every parameter needs one value per draw"
        )
    try:
        return np.array([chain[k] for k in names], dtype=np.float64).T
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: chain {index + 1} holds non-numeric draws ({exc})") from exc


def load_reference_draws(
    source: str | Path, root: str | Path | None = None
) -> tuple[list[str], np.ndarray]:
    """Read posteriordb reference draws.

    Parameters
    ----------
    source : str or Path
        A posterior name (its ``reference_posterior_name`` is looked up in
        ``root``) or the path of a ``.json.zip`` or ``.json`` draws file.
    root : str or Path, optional
        See :func:`find_root`; unused when ``source`` is a path.

    Returns
    -------
    names : list of str
        Parameter names in file order, e.g. ``['theta[1]', ..., 'mu', 'tau']``.
    draws : ndarray
        ``(chains, draws, P)`` float64.
    """
    path = _reference_path(source, root)
    raw = _read_json_file(path)
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], dict) or not raw[0]:
        raise UserError(
            f"{path}: expected a non-empty list of chains (dicts from parameter name to draws)"
        )
    names = [str(k) for k in raw[0]]
    chains = [_chain_array(chain, i, names, path) for i, chain in enumerate(raw)]
    lengths = [c.shape[0] for c in chains]
    if len(set(lengths)) != 1:
        raise UserError(
            f"{path}: chains have different numbers of draws {lengths}; "
            "all chains must be the same length"
        )
    return names, np.stack(chains)
