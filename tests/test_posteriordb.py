"""pyrovae.posterior.targets.posteriordb: the real subset in ../shared/data/posteriordb and
hand-made folders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, SHARED_DATA

from pyrovae.errors import UserError
from pyrovae.posterior.targets import posteriordb

DB = SHARED_DATA / "posteriordb"
needs_posteriordb = pytest.mark.skipif(
    not (DB / "posteriors").is_dir(),
    reason="needs the posteriordb subset in ../shared/data/posteriordb (absent in this checkout)",
)

EIGHT = "eight_schools-eight_schools_noncentered"
EIGHT_NAMES = [f"theta[{i}]" for i in range(1, 9)] + ["mu", "tau"]

EXPECTED = {
    "eight_schools-eight_schools_centered": (
        "eight_schools_centered",
        "eight_schools",
        EIGHT,
        {"theta": 8, "mu": 1, "tau": 1},
    ),
    EIGHT: ("eight_schools_noncentered", "eight_schools", EIGHT, {"theta": 8, "mu": 1, "tau": 1}),
    "kidiq-kidscore_momiq": (
        "kidscore_momiq",
        "kidiq",
        "kidiq-kidscore_momiq",
        {"beta": 2, "sigma": 1},
    ),
    "sblrc-blr": ("blr", "sblrc", "sblrc-blr", {"beta": 5, "sigma": 1}),
}

REFERENCE_NAMES = {
    EIGHT: EIGHT_NAMES,
    "kidiq-kidscore_momiq": ["beta[1]", "beta[2]", "sigma"],
    "sblrc-blr": [f"beta[{i}]" for i in range(1, 6)] + ["sigma"],
}


def _chains(n_chains: int = 2, n_draws: int = 3) -> list[dict[str, list[float]]]:
    return [
        {
            "theta[1]": [float(c * 100 + d) for d in range(n_draws)],
            "theta[2]": [float(c * 100 + d + 10) for d in range(n_draws)],
            "mu": [0.5 * d for d in range(n_draws)],
        }
        for c in range(n_chains)
    ]


def _write_zip(path: Path, member: str, payload: object) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, json.dumps(payload))
    return path


@pytest.fixture
def fake_db(tmp_path: Path) -> Path:
    """A posteriordb folder with one posterior with draws and one without."""
    root = tmp_path / "db"
    (root / "posteriors").mkdir(parents=True)
    (root / "data" / "data").mkdir(parents=True)
    draws = root / "reference_posteriors" / "draws" / "draws"
    draws.mkdir(parents=True)
    for name, ref in (("toy-toy_model", "toy-toy_model"), ("toy-other_model", None)):
        info = {
            "name": name,
            "model_name": name.split("-")[1],
            "data_name": "toy",
            "reference_posterior_name": ref,
            "dimensions": {"theta": 2, "mu": 1},
        }
        (root / "posteriors" / f"{name}.json").write_text(json.dumps(info))
    _write_zip(root / "data" / "data" / "toy.json.zip", "toy.json", {"N": 2, "y": [1.0, 2.0]})
    _write_zip(draws / "toy-toy_model.json.zip", "toy-toy_model.json", _chains())
    return root


# ---------------------------------------------------------------------------
# The real subset


@needs_posteriordb
def test_real_posteriors_listed() -> None:
    assert posteriordb.available_posteriors(DB) == sorted(EXPECTED)


@needs_posteriordb
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_posterior_info(name: str) -> None:
    info = posteriordb.posterior_info(name, DB)
    assert info == posteriordb.PosteriorInfo(name, *EXPECTED[name])


@needs_posteriordb
@pytest.mark.parametrize(
    ("data_name", "keys"),
    [
        ("eight_schools", {"J", "y", "sigma"}),
        ("kidiq", {"N", "kid_score", "mom_iq", "mom_hs"}),
        ("sblrc", {"N", "D", "X", "y"}),
    ],
)
def test_real_data_keys(data_name: str, keys: set[str]) -> None:
    data = posteriordb.load_data(data_name, DB)
    assert keys <= set(data)


@needs_posteriordb
def test_real_eight_schools_data() -> None:
    data = posteriordb.load_data("eight_schools", DB)
    assert data["J"] == 8
    assert data["y"] == [28, 8, -3, 7, -1, 1, 18, 12]


@needs_posteriordb
@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_real_reference_draws(name: str) -> None:
    names, draws = posteriordb.load_reference_draws(name, DB)
    assert names == REFERENCE_NAMES[name]
    assert draws.shape == (10, 1000, len(names))
    assert draws.dtype == np.float64
    assert np.isfinite(draws).all()


@needs_posteriordb
def test_real_centered_uses_noncentered_reference() -> None:
    names, draws = posteriordb.load_reference_draws("eight_schools-eight_schools_centered", DB)
    assert names == EIGHT_NAMES
    tau = draws[..., names.index("tau")]
    assert (tau > 0).all()


@needs_posteriordb
def test_real_reference_draws_from_path() -> None:
    path = DB / "reference_posteriors" / "draws" / "draws" / "sblrc-blr.json.zip"
    names, draws = posteriordb.load_reference_draws(path)
    assert names[-1] == "sigma"
    assert draws.shape == (10, 1000, 6)


@needs_posteriordb
def test_find_root_default_from_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(posteriordb.ENV_VAR, raising=False)
    monkeypatch.chdir(ROOT)
    assert posteriordb.find_root() == DB.resolve()


# ---------------------------------------------------------------------------
# Hand-made files (always run)


def test_draws_from_json_and_zip_agree(tmp_path: Path) -> None:
    plain = tmp_path / "toy.json"
    plain.write_text(json.dumps(_chains()))
    zipped = _write_zip(tmp_path / "toy.json.zip", "toy.json", _chains())
    names, draws = posteriordb.load_reference_draws(plain)
    names_z, draws_z = posteriordb.load_reference_draws(str(zipped))
    assert names == names_z == ["theta[1]", "theta[2]", "mu"]
    assert draws.shape == (2, 3, 3)
    assert draws.dtype == np.float64
    np.testing.assert_array_equal(draws, draws_z)
    np.testing.assert_array_equal(draws[1, :, 0], [100.0, 101.0, 102.0])
    np.testing.assert_array_equal(draws[0, :, 2], [0.0, 0.5, 1.0])


def test_fake_db_by_name(fake_db: Path) -> None:
    assert posteriordb.available_posteriors(fake_db) == ["toy-other_model", "toy-toy_model"]
    info = posteriordb.posterior_info("toy-toy_model", fake_db)
    assert info.data_name == "toy"
    assert info.dimensions == {"theta": 2, "mu": 1}
    assert posteriordb.load_data("toy", fake_db) == {"N": 2, "y": [1.0, 2.0]}
    names, draws = posteriordb.load_reference_draws("toy-toy_model", fake_db)
    assert names == ["theta[1]", "theta[2]", "mu"]
    assert draws.shape == (2, 3, 3)


def test_find_root_accepts_checkout_layout(fake_db: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    fake_db.rename(checkout / "posterior_database")
    assert posteriordb.find_root(checkout) == (checkout / "posterior_database").resolve()


def test_find_root_uses_env_var(fake_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(posteriordb.ENV_VAR, str(fake_db))
    assert posteriordb.find_root() == fake_db.resolve()
    assert posteriordb.available_posteriors() == ["toy-other_model", "toy-toy_model"]


# ---------------------------------------------------------------------------
# Errors


def test_unknown_posterior_suggests_closest(fake_db: Path) -> None:
    with pytest.raises(UserError, match=r"unknown posterior 'toy-toy_modle'.*'toy-toy_model'"):
        posteriordb.posterior_info("toy-toy_modle", fake_db)


def test_unknown_data(fake_db: Path) -> None:
    with pytest.raises(UserError, match=r"unknown data 'tyo'.*did you mean 'toy'"):
        posteriordb.load_data("tyo", fake_db)


@needs_posteriordb
def test_unknown_real_posterior_suggests_closest() -> None:
    with pytest.raises(UserError, match="did you mean 'eight_schools-eight_schools_noncentered'"):
        posteriordb.posterior_info("eight_schools_noncentered", DB)


def test_missing_root_names_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(posteriordb.ENV_VAR, str(missing))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no posteriordb folder") as info:
        posteriordb.find_root()
    message = str(info.value)
    assert str(missing) in message
    assert "shared/data/posteriordb" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="nowhere"):
        posteriordb.available_posteriors(missing)


def test_no_reference_for_posterior(fake_db: Path) -> None:
    with pytest.raises(UserError, match="'toy-other_model' has no reference draws"):
        posteriordb.load_reference_draws("toy-other_model", fake_db)


def test_missing_draws_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no reference-draws file"):
        posteriordb.load_reference_draws(tmp_path / "absent.json.zip")


def test_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json.zip"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(UserError, match="not a valid zip file") as info:
        posteriordb.load_reference_draws(bad)
    assert "\n" not in str(info.value)


def test_invalid_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("bad.json", "[{not json")
    with pytest.raises(UserError, match="valid JSON"):
        posteriordb.load_reference_draws(bad)


def test_chains_of_different_lengths(tmp_path: Path) -> None:
    chains = _chains(n_chains=2, n_draws=3)
    chains[1] = {k: v[:2] for k, v in chains[1].items()}
    path = _write_zip(tmp_path / "ragged.json.zip", "ragged.json", chains)
    with pytest.raises(UserError, match=r"different numbers of draws \[3, 2\]"):
        posteriordb.load_reference_draws(path)


def test_parameters_of_different_lengths_in_a_chain(tmp_path: Path) -> None:
    chains = _chains()
    chains[0]["mu"] = chains[0]["mu"][:1]
    path = tmp_path / "ragged.json"
    path.write_text(json.dumps(chains))
    with pytest.raises(UserError, match="chain 1"):
        posteriordb.load_reference_draws(path)


def test_chains_with_different_parameters(tmp_path: Path) -> None:
    chains = _chains()
    del chains[1]["mu"]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(chains))
    with pytest.raises(UserError, match="chain 2 has parameters"):
        posteriordb.load_reference_draws(path)


def test_not_a_list_of_chains(tmp_path: Path) -> None:
    path = tmp_path / "dict.json"
    path.write_text(json.dumps({"mu": [1.0]}))
    with pytest.raises(UserError, match="list of chains"):
        posteriordb.load_reference_draws(path)
