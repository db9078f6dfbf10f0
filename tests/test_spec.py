"""Tests of pyrovae.spec: defaults, TOML round trip, merging, errors, overrides, fuzzing."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrovae import _checks as c
from pyrovae.errors import SpecError, UserError
from pyrovae.spec import (
    DataSpec,
    LikelihoodSpec,
    ModelSpec,
    NetworkSpec,
    Spec,
    SyntheticSpec,
    TrainSpec,
    apply_overrides,
    load_spec,
    spec_from_dict,
    spec_to_dict,
    spec_to_toml,
)

EXAMPLE_SPECS = sorted(Path(__file__).parents[1].glob("examples/specs/*.toml"))


# ---------------------------------------------------------------------- helpers


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *head, last = key.split(".")
        node = out
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_error(err: SpecError, path: str, message: str | None = None, match: str | None = None):
    """The one-line message names ``path``; it equals ``message`` or matches ``match``."""
    text = str(err)
    assert "\n" not in text, text
    assert err.path == path
    if path:
        assert text.startswith(f"{path}: ")
    if message is not None:
        assert text == message
    if match is not None:
        assert re.search(match, text), text


def raised_by(fn) -> str:
    """The name of the exception ``fn()`` raises ("" when none)."""
    try:
        fn()
    except Exception as err:
        return type(err).__name__
    return ""


def valid_keys(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def is_table(f: dataclasses.Field) -> bool:
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(
        f.default_factory()
    )


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def dotted_paths(cls: type = Spec, prefix: str = "") -> list[str]:
    """Every table and field path of the spec, e.g. ``model.encoder.hidden``."""
    out = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        out.append(path)
        if is_table(f):
            out.extend(dotted_paths(type(f.default_factory()), path))
    return out


# --------------------------------------------------------------------- defaults


def test_load_spec_none_is_default():
    assert load_spec(None) == Spec()
    assert load_spec() == Spec()
    assert spec_from_dict({}) == Spec()


def test_default_values():
    spec = Spec()
    assert spec.model.encoder.hidden == (256, 128)
    assert spec.model.decoder.hidden == (128, 256)
    assert spec.data.name == "digits"
    assert spec.model.likelihood == LikelihoodSpec("bernoulli", "learned")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in EXAMPLE_SPECS])
def test_example_specs_load_and_round_trip(path: Path, tmp_path: Path):
    spec = load_spec(path)
    assert isinstance(spec, Spec)
    assert load_spec(write(tmp_path, spec_to_toml(spec))) == spec


def test_digits_example_is_the_default():
    digits = [p for p in EXAMPLE_SPECS if p.name == "digits.toml"]
    assert digits, "examples/specs/digits.toml, the default written out, is missing"
    assert load_spec(digits[0]) == Spec()


def test_frozen():
    spec = Spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.train.epochs = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.model.encoder.hidden = (1,)  # type: ignore[misc]


def test_spec_error_is_a_user_error():
    assert issubclass(SpecError, UserError)
    assert issubclass(SpecError, ValueError)
    assert str(SpecError("", "whole file")) == "whole file"


# ------------------------------------------------------------------- round trip

MANY_OVERRIDES = {
    "name": "he said \"hi\" \\ C:\\path\\ 'single' \ttab é",
    "data.name": "synthetic",
    "data.path": "C:\\data\\x.npz",
    "data.binarize": "none",
    "data.test_fraction": 0.35,
    "data.validation_fraction": 0.0,
    "data.limit": 1000,
    "data.seed": 2**31 - 1,
    "data.synthetic.n": 2,
    "data.synthetic.observed_dim": 7,
    "data.synthetic.latent_dim": 3,
    "data.synthetic.noise": 1e-5,
    "model.latent_dim": 5,
    "model.encoder.hidden": [64],
    "model.encoder.activation": "gelu",
    "model.decoder.hidden": [],
    "model.decoder.activation": "leaky_relu",
    "model.likelihood.name": "gaussian",
    "model.likelihood.scale": 0.25,
    "model.prior.scale": 2.5,
    "train.objective": "iwae",
    "train.particles": 16,
    "train.epochs": 3,
    "train.batch_size": 1,
    "train.lr": 3e-4,
    "train.beta": 1,
    "train.seed": 7,
    "train.early_stopping_patience": 4,
    "train.device": "auto",
}


def test_round_trip_default(tmp_path: Path):
    spec = Spec()
    assert load_spec(write(tmp_path, spec_to_toml(spec))) == spec
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_round_trip_many_overrides(tmp_path: Path):
    spec = spec_from_dict(nest(MANY_OVERRIDES))
    assert spec.model.decoder.hidden == ()
    assert spec.model.likelihood.scale == 0.25
    assert isinstance(spec.train.beta, float)
    assert spec.name == MANY_OVERRIDES["name"]
    text = spec_to_toml(spec)
    assert load_spec(write(tmp_path, text)) == spec
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize("scale", ["learned", "decoder", 0.1, 3.0, 1e-7])
@pytest.mark.parametrize("name", ["gaussian", "laplace"])
def test_round_trip_likelihood_scale(tmp_path: Path, name: str, scale: Any):
    spec = spec_from_dict(
        nest(
            {
                "model.likelihood.name": name,
                "model.likelihood.scale": scale,
                "data.name": "synthetic",
            }
        )
    )
    assert load_spec(write(tmp_path, spec_to_toml(spec))) == spec


def test_spec_to_dict_is_plain():
    raw = spec_to_dict(Spec())
    assert raw["model"]["encoder"]["hidden"] == [256, 128]
    assert raw["train"]["epochs"] == 300
    assert set(raw) == {"name", "data", "model", "train"}


@pytest.mark.parametrize("name", ["line\nbreak", "bell\x01"])
def test_round_trip_control_characters(tmp_path: Path, name: str):
    spec = Spec(name=name)
    assert load_spec(write(tmp_path, spec_to_toml(spec))) == spec


# ---------------------------------------------------------------------- merging


def test_partial_table_keeps_defaults():
    spec = spec_from_dict({"model": {"encoder": {"activation": "relu"}}})
    assert spec.model.encoder == NetworkSpec(hidden=(256, 128), activation="relu")
    expected = dataclasses.replace(
        Spec(), model=dataclasses.replace(Spec().model, encoder=spec.model.encoder)
    )
    assert spec == expected


def test_partial_table_data_and_train():
    spec = spec_from_dict({"data": {"synthetic": {"noise": 0.1}}, "train": {"epochs": 3}})
    assert spec.data == DataSpec(synthetic=SyntheticSpec(noise=0.1))
    assert spec.train == TrainSpec(epochs=3)
    assert spec.model == ModelSpec()


def test_canonical_types():
    spec = spec_from_dict(nest({"train.lr": 1, "train.beta": 0, "model.encoder.hidden": [3, 4]}))
    assert spec.train.lr == 1.0 and isinstance(spec.train.lr, float)
    assert spec.train.beta == 0.0 and isinstance(spec.train.beta, float)
    assert spec.model.encoder.hidden == (3, 4)


@pytest.mark.parametrize("how", ["dict", "override", "file"])
def test_partial_decoder_keeps_decoder_default(tmp_path: Path, how: str):
    if how == "dict":
        spec = spec_from_dict({"model": {"decoder": {"activation": "relu"}}})
    elif how == "override":
        spec = load_spec(None, ["model.decoder.activation=relu"])
    else:
        spec = load_spec(write(tmp_path, '[model.decoder]\nactivation = "relu"\n'))
    assert spec.model.decoder == NetworkSpec(
        hidden=(128, 256), channels=(64, 32), activation="relu"
    )


def test_valid_cross_field_combinations():
    ok = [
        {"train.objective": "iwae", "train.beta": 1.0, "train.particles": 5},
        {"data.name": "mnist", "data.path": "/tmp/mnist", "data.download": True},
        {"data.name": "arrays", "data.path": "x.npy"},
        {"data.binarize": "none", "model.likelihood.name": "gaussian"},
        {"data.binarize": "auto", "model.likelihood.name": "laplace", "model.likelihood.scale": 2},
        {"data.binarize": "static", "model.likelihood.name": "bernoulli"},
        {"model.likelihood.name": "continuous_bernoulli"},
        {"data.validation_fraction": 0},
        {"model.encoder.hidden": []},
        {"data.synthetic.n": 2},
    ]
    for flat in ok:
        assert isinstance(spec_from_dict(nest(flat)), Spec), flat


# ----------------------------------------------------------------------- errors

NAN, INF = float("nan"), float("inf")
SEEDS = "an integer from 0 to 2147483647"
SCALE_ALLOWED = "a positive number or 'learned' or 'decoder'"
DATA_NAMES = (
    "'digits', 'mnist', 'fashion_mnist', 'kmnist', 'cifar10', 'image_folder', 'synthetic', 'arrays'"
)
ACTS = "'relu', 'softplus', 'tanh', 'elu', 'gelu', 'silu', 'leaky_relu', 'sigmoid'"

# (flat raw, error path, exact message)
FIELD_ERRORS = [
    # integer(0), integer(1), integer(2)
    ({"train.seed": -1}, "train.seed", f"expected {SEEDS}, got -1"),
    ({"train.seed": 2**31}, "train.seed", f"expected {SEEDS}, got 2147483648"),
    ({"data.seed": 10**30}, "data.seed", f"expected {SEEDS}, got {10**30}"),
    ({"data.limit": -5}, "data.limit", "expected an integer >= 0, got -5"),
    ({"train.epochs": 0}, "train.epochs", "expected a positive integer, got 0"),
    ({"model.latent_dim": -2}, "model.latent_dim", "expected a positive integer, got -2"),
    ({"data.synthetic.n": 1}, "data.synthetic.n", "expected an integer >= 2, got 1"),
    # booleans, floats and strings are not integers
    ({"train.epochs": True}, "train.epochs", "expected a positive integer, got true"),
    ({"train.seed": False}, "train.seed", f"expected {SEEDS}, got false"),
    ({"train.batch_size": 2.0}, "train.batch_size", "expected a positive integer, got 2.0"),
    ({"train.particles": 1.5}, "train.particles", "expected a positive integer, got 1.5"),
    ({"model.latent_dim": "2"}, "model.latent_dim", "expected a positive integer, got '2'"),
    ({"train.epochs": NAN}, "train.epochs", "expected a positive integer, got nan"),
    # positive_float
    ({"train.lr": 0}, "train.lr", "expected a positive number, got 0"),
    ({"train.lr": -1e-3}, "train.lr", "expected a positive number, got -0.001"),
    ({"train.lr": True}, "train.lr", "expected a positive number, got true"),
    ({"train.lr": "1e-3"}, "train.lr", "expected a positive number, got '1e-3'"),
    ({"train.lr": NAN}, "train.lr", "expected a positive number, got nan"),
    ({"model.prior.scale": INF}, "model.prior.scale", "expected a positive number, got inf"),
    ({"data.synthetic.noise": 0.0}, "data.synthetic.noise", "expected a positive number, got 0.0"),
    # non_negative_float
    ({"train.beta": -0.5}, "train.beta", "expected a number >= 0, got -0.5"),
    ({"train.beta": NAN}, "train.beta", "expected a number >= 0, got nan"),
    ({"train.beta": INF}, "train.beta", "expected a number >= 0, got inf"),
    ({"train.beta": -INF}, "train.beta", "expected a number >= 0, got -inf"),
    ({"train.beta": False}, "train.beta", "expected a number >= 0, got false"),
    # fraction, open at 0
    ({"data.test_fraction": 0}, "data.test_fraction", "expected a number in (0, 1), got 0"),
    ({"data.test_fraction": 1}, "data.test_fraction", "expected a number in (0, 1), got 1"),
    ({"data.test_fraction": 1.5}, "data.test_fraction", "expected a number in (0, 1), got 1.5"),
    ({"data.test_fraction": NAN}, "data.test_fraction", "expected a number in (0, 1), got nan"),
    ({"data.test_fraction": True}, "data.test_fraction", "expected a number in (0, 1), got true"),
    # fraction, closed at 0
    (
        {"data.validation_fraction": -0.1},
        "data.validation_fraction",
        "expected a number in [0, 1), got -0.1",
    ),
    (
        {"data.validation_fraction": 1.0},
        "data.validation_fraction",
        "expected a number in [0, 1), got 1.0",
    ),
    (
        {"data.validation_fraction": INF},
        "data.validation_fraction",
        "expected a number in [0, 1), got inf",
    ),
    # boolean
    ({"data.download": "yes"}, "data.download", "expected true or false, got 'yes'"),
    ({"data.download": 1}, "data.download", "expected true or false, got 1"),
    # text
    ({"name": 5}, "name", "expected a string, got 5"),
    ({"name": True}, "name", "expected a string, got true"),
    ({"data.path": ["a"]}, "data.path", "expected a string, got ['a']"),
    # choice
    ({"data.name": "cifar"}, "data.name", f"expected one of {DATA_NAMES}, got 'cifar'"),
    (
        {"data.color": "grey"},
        "data.color",
        "expected one of 'auto', 'grayscale', 'rgb', got 'grey'",
    ),
    ({"data.image_size": [0, 4]}, "data.image_size[0]", "expected a positive integer, got 0"),
    ({"data.name": 3}, "data.name", f"expected one of {DATA_NAMES}, got 3"),
    (
        {"model.encoder.activation": "ReLU"},
        "model.encoder.activation",
        f"expected one of {ACTS}, got 'ReLU'",
    ),
    ({"train.device": True}, "train.device", "expected one of 'cpu', 'cuda', 'auto', got true"),
    (
        {"model.kind": "gan"},
        "model.kind",
        "expected one of 'vae', 'ae', 'tied_ae', 'denoising_ae', 'sparse_ae', 'cvae', 'm2', "
        "got 'gan'",
    ),
    (
        {"data.binarize": ["static"]},
        "data.binarize",
        "expected one of 'auto', 'none', 'static', 'dynamic', got ['static']",
    ),
    # scale_or_choice
    ({"model.likelihood.scale": -1}, "model.likelihood.scale", f"expected {SCALE_ALLOWED}, got -1"),
    ({"model.likelihood.scale": 0}, "model.likelihood.scale", f"expected {SCALE_ALLOWED}, got 0"),
    (
        {"model.likelihood.scale": "fixed"},
        "model.likelihood.scale",
        f"expected {SCALE_ALLOWED}, got 'fixed'",
    ),
    (
        {"model.likelihood.scale": NAN},
        "model.likelihood.scale",
        f"expected {SCALE_ALLOWED}, got nan",
    ),
    (
        {"model.likelihood.scale": True},
        "model.likelihood.scale",
        f"expected {SCALE_ALLOWED}, got true",
    ),
    # positive_int_tuple: not a list
    (
        {"model.encoder.hidden": 256},
        "model.encoder.hidden",
        "expected a list of positive integers, got 256",
    ),
    (
        {"model.decoder.hidden": "256"},
        "model.decoder.hidden",
        "expected a list of positive integers, got '256'",
    ),
    # positive_int_tuple: bad item
    (
        {"model.encoder.hidden": [256, -3]},
        "model.encoder.hidden[1]",
        "expected a positive integer, got -3",
    ),
    (
        {"model.encoder.hidden": [0]},
        "model.encoder.hidden[0]",
        "expected a positive integer, got 0",
    ),
    (
        {"model.decoder.hidden": [64, True]},
        "model.decoder.hidden[1]",
        "expected a positive integer, got true",
    ),
    (
        {"model.decoder.hidden": [1, 2, 1.5]},
        "model.decoder.hidden[2]",
        "expected a positive integer, got 1.5",
    ),
    (
        {"model.decoder.hidden": [[1]]},
        "model.decoder.hidden[0]",
        "expected a positive integer, got [1]",
    ),
    # a table where a value is expected
    ({"train.epochs": {"x": 1}}, "train.epochs", "expected a positive integer, got {'x': 1}"),
    ({"name": {}}, "name", "expected a string, got {}"),
    # a value where a table is expected
    ({"data": 5}, "data", "expected a table, got 5"),
    ({"model.encoder": [256]}, "model.encoder", "expected a table, got [256]"),
    ({"data.synthetic": "x"}, "data.synthetic", "expected a table, got 'x'"),
    # cross-field checks
    (
        {"train.objective": "iwae", "train.beta": 0.5},
        "train.beta",
        "the iwae objective bounds log p(x) only with beta = 1 and no KL warm-up; "
        "use objective = 'elbo' for a beta-VAE",
    ),
    (
        {"train.objective": "iwae", "train.kl_warmup_epochs": 3},
        "train.kl_warmup_epochs",
        "the iwae objective bounds log p(x) only with beta = 1 and no KL warm-up; "
        "use objective = 'elbo' for a beta-VAE",
    ),
    (
        {"train.objective": "iwae_dreg", "train.beta": 2.0},
        "train.beta",
        "the iwae_dreg objective bounds log p(x) only with beta = 1 and no KL warm-up; "
        "use objective = 'elbo' for a beta-VAE",
    ),
    (
        {"data.name": "mnist"},
        "data.path",
        "data.name = 'mnist' needs a folder for the IDX files, got ''",
    ),
    (
        {"data.name": "arrays", "data.path": ""},
        "data.path",
        "data.name = 'arrays' needs a .npy/.npz/.csv file, got ''",
    ),
    (
        {"data.download": True},
        "data.download",
        "only mnist, fashion_mnist, kmnist, cifar10 can be downloaded, not 'digits'; set it false",
    ),
    (
        {"data.name": "image_folder", "data.path": "img", "data.download": True},
        "data.download",
        "only mnist, fashion_mnist, kmnist, cifar10 can be downloaded, not 'image_folder'; "
        "set it false",
    ),
    (
        {"data.name": "cifar10"},
        "data.path",
        "data.name = 'cifar10' needs the cifar-10-batches-py folder or the folder of "
        "cifar-10-python.tar.gz, got ''",
    ),
    (
        {"data.name": "image_folder"},
        "data.path",
        "data.name = 'image_folder' needs a folder of PNG/JPEG images, got ''",
    ),
    (
        {"data.name": "image_folder", "data.path": "img", "data.image_size": [32]},
        "data.image_size",
        "expected [] or [height, width], got [32]",
    ),
    (
        {"data.name": "cifar10", "data.path": "c", "data.image_size": [16, 16]},
        "data.image_size",
        "only data.name = 'image_folder' resizes images, not 'cifar10'; set it to []",
    ),
    (
        {"data.name": "kmnist", "data.path": "k", "data.color": "rgb"},
        "data.color",
        "only cifar10 and image_folder convert colours, not 'kmnist'; set it to 'auto'",
    ),
    (
        {"data.binarize": "static", "model.likelihood.name": "gaussian"},
        "data.binarize",
        "binarized data need a Bernoulli likelihood, got model.likelihood.name = 'gaussian'; "
        "use binarize = 'none' or 'auto'",
    ),
    (
        {"data.binarize": "dynamic", "model.likelihood.name": "continuous_bernoulli"},
        "data.binarize",
        "binarized data need a Bernoulli likelihood, got model.likelihood.name = "
        "'continuous_bernoulli'; use binarize = 'none' or 'auto'",
    ),
    (
        {"model.likelihood.scale": 0.5},
        "model.likelihood.scale",
        "only gaussian and laplace likelihoods have a scale, not 'bernoulli'",
    ),
    (
        {"model.likelihood.name": "continuous_bernoulli", "model.likelihood.scale": "decoder"},
        "model.likelihood.scale",
        "only gaussian and laplace likelihoods have a scale, not 'continuous_bernoulli'",
    ),
    (
        {"model.likelihood.name": "discretized_logistic", "model.likelihood.scale": "decoder"},
        "model.likelihood.scale",
        "only gaussian and laplace likelihoods have a scale, not 'discretized_logistic'; its "
        "scale is always predicted by the decoder, so leave it out",
    ),
    (
        {"data.binarize": "static", "model.likelihood.name": "discretized_logistic"},
        "data.binarize",
        "binarized data need a Bernoulli likelihood, got model.likelihood.name = "
        "'discretized_logistic'; use binarize = 'none' or 'auto'",
    ),
    (
        {"model.kind": "tied_ae", "model.likelihood.name": "discretized_logistic"},
        "model.likelihood.name",
        "a tied_ae's decoder emits one number per pixel (the transposed first layer), but "
        "'discretized_logistic' needs a location and a scale per pixel; use another likelihood "
        "or model.kind = 'ae'",
    ),
]


@pytest.mark.parametrize(
    ("flat", "path", "message"),
    [pytest.param(f, p, m, id=f"{p}-{i}") for i, (f, p, m) in enumerate(FIELD_ERRORS)],
)
def test_field_errors(flat: dict[str, Any], path: str, message: str):
    with pytest.raises(SpecError) as info:
        spec_from_dict(nest(flat))
    check_error(info.value, path, f"{path}: {message}")


UNKNOWN_KEYS = [
    ({"dta": {}}, "dta", f"unknown key; did you mean 'data'? (valid: {valid_keys(Spec)})"),
    (
        {"model": {"encodr": {"hidden": [1]}}},
        "model.encodr",
        f"unknown key; did you mean 'encoder'? (valid: {valid_keys(ModelSpec)})",
    ),
    (
        {"train": {"epoch": 3}},
        "train.epoch",
        f"unknown key; did you mean 'epochs'? (valid: {valid_keys(TrainSpec)})",
    ),
    (
        {"data": {"synthetic": {"nosie": 0.1}}},
        "data.synthetic.nosie",
        f"unknown key; did you mean 'noise'? (valid: {valid_keys(SyntheticSpec)})",
    ),
    ({"train": {"zzz": 1}}, "train.zzz", f"unknown key (valid: {valid_keys(TrainSpec)})"),
    ({"qqqqqq": 1}, "qqqqqq", f"unknown key (valid: {valid_keys(Spec)})"),
]


@pytest.mark.parametrize(
    ("raw", "path", "message"), [pytest.param(*case, id=case[1]) for case in UNKNOWN_KEYS]
)
def test_unknown_keys(raw: dict[str, Any], path: str, message: str):
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw)
    check_error(info.value, path, f"{path}: {message}")


def test_top_level_not_a_table():
    with pytest.raises(SpecError) as info:
        spec_from_dict([1, 2])  # type: ignore[arg-type]
    check_error(info.value, "", "expected a table, got [1, 2]")


def test_error_in_file_names_path(tmp_path: Path):
    path = write(tmp_path, "[model.encoder]\nhidden = [256, -3]\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_error(
        info.value,
        "model.encoder.hidden[1]",
        "model.encoder.hidden[1]: expected a positive integer, got -3",
    )


def test_missing_file(tmp_path: Path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    check_error(info.value, "", f"spec file {str(missing)!r} does not exist")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)  # a folder is not a spec file
    check_error(info.value, "", f"spec file {str(tmp_path)!r} does not exist")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[train\nepochs = 3\n", id="bad-header"),
        pytest.param("epochs = \n", id="no-value"),
        pytest.param("name = 'a'\nname = 'b'\n", id="duplicate"),
        pytest.param('name = "unterminated\n', id="unterminated"),
    ],
)
def test_invalid_toml(tmp_path: Path, text: str):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_error(info.value, "", match=rf"^{re.escape(str(path))} is not valid TOML: .+")


def test_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_error(info.value, "", match=r"is not valid TOML")


@pytest.mark.parametrize("how", ["dict", "file"])
def test_huge_int_in_float_field(tmp_path: Path, how: str):
    with pytest.raises(SpecError):
        if how == "dict":
            spec_from_dict({"train": {"lr": 10**400}})
        else:
            load_spec(write(tmp_path, "[train]\nlr = 1" + "0" * 400 + "\n"))


@pytest.mark.parametrize("how", ["dict", "file", "override"])
def test_int_over_4300_digits(tmp_path: Path, how: str):
    with pytest.raises(SpecError):
        if how == "dict":
            spec_from_dict({"data": {"name": -(10**5000)}})
        elif how == "file":
            load_spec(write(tmp_path, "[train]\nepochs = " + "9" * 5000 + "\n"))
        else:
            load_spec(None, ["train.epochs=" + "9" * 5000])


@pytest.mark.parametrize("how", ["file", "override"])
def test_deeply_nested_value(tmp_path: Path, how: str):
    if how == "file":
        path = write(tmp_path, "name = " + "[" * 5000 + "\n")
        raised = raised_by(lambda: load_spec(path))
    else:
        raised = raised_by(lambda: load_spec(None, ["model.encoder.hidden=" + "[" * 5000]))
    # compared outside the except block: a RecursionError traceback is slow to render
    assert raised == "SpecError"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('"a\\nb" = 1\n', id="newline"),
        pytest.param('"" = 1\n', id="empty-top"),
        pytest.param('[model]\n"" = 1\n', id="empty-nested"),
    ],
)
def test_odd_unknown_keys_named_on_one_line(tmp_path: Path, text: str):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert "\n" not in str(info.value)
    assert info.value.path not in ("", "model.")


def test_table_error_shows_toml_boolean():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"data": True})
    check_error(info.value, "data", "data: expected a table, got true")


# ------------------------------------------- regressions found by test_spec_properties


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" + ".".join(["a"] * 3000) + "]\nx = 1\n", id="header"),
        pytest.param(".".join(["a"] * 3000) + " = 1\n", id="dotted-key"),
    ],
)
def test_tables_nested_past_the_recursion_limit(tmp_path: Path, text: str):
    # was: RecursionError from copy.deepcopy in apply_overrides
    raised = raised_by(lambda: load_spec(write(tmp_path, text)))
    assert raised == "SpecError"
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    check_error(info.value, "a", match=r"^a: unknown key")


def test_deeply_nested_known_field(tmp_path: Path):
    path = write(tmp_path, "[model.encoder.hidden" + ".x" * 3000 + "]\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_error(info.value, "model.encoder.hidden", match="expected a list of positive integers")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("9" * 5000, "Exceeds the limit", id="huge-int"),
        pytest.param("[" * 5000, "recursion", id="deep"),
    ],
)
def test_unreadable_set_value_names_the_field(value: str, match: str):
    # was: SpecError("--set", ...), which named no field
    with pytest.raises(SpecError) as info:
        load_spec(None, [f"train.epochs={value}"])
    check_error(
        info.value, "train.epochs", match=rf"^train\.epochs: cannot read the --set value .*{match}"
    )


def test_value_not_table_path_is_escaped():
    # was: the raw key in the path, so the message broke over two lines
    with pytest.raises(SpecError) as info:
        load_spec(None, ["a\nb=1", "a\nb.c=2"])
    check_error(info.value, '"a\\nb"', match=r"is a value, not a table \('a\\nb\.c'\)$")
    assert str(info.value).isprintable()


@pytest.mark.parametrize("key", ["\x7f", "a\u2028b", "a\x85b", "\x1b[31m"])
def test_unknown_key_with_unprintable_characters(tmp_path: Path, key: str):
    # every unprintable character escaped, printable ones such as é kept as written
    text = "".join(f"\\u{ord(ch):04x}" for ch in key)
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, f'"{text}" = 1\n'))
    assert str(info.value).isprintable()
    assert tomllib.loads(f"{info.value.path} = 1") == {key: 1}  # the path reads back as TOML
    with pytest.raises(SpecError) as info:
        load_spec(None, ["café=1"])
    check_error(info.value, '"café"', match="unknown key")


@pytest.mark.parametrize("name", ["a\x7fb", "a\u2028b", "\x85", "\x1b[1m", "\U000e0001"])
def test_round_trip_unprintable_characters(tmp_path: Path, name: str):
    # was (DEL): written raw by spec_to_toml, which TOML forbids, so the run's spec.toml
    # could not be read back; now every unprintable character is escaped
    spec = Spec(name=name)
    text = spec_to_toml(spec)
    assert text.splitlines()[0].isprintable()
    assert load_spec(write(tmp_path, text)) == spec


@pytest.mark.parametrize("field", ["name", "data.path"])
def test_set_value_with_lone_surrogate(field: str):
    # sys.argv holds bytes that are not UTF-8 as lone surrogates; was: a Spec that
    # spec_to_toml could not write (UnicodeEncodeError)
    with pytest.raises(SpecError) as info:
        load_spec(None, [f"{field}=caf\udce9"])
    check_error(
        info.value,
        field,
        f"{field}: expected UTF-8 text (the spec is saved as TOML), got 'caf\\udce9'",
    )


def test_set_value_with_trailing_toml_is_not_cut():
    # was: "5\nlr = 3" parsed as a document and silently read as 5
    with pytest.raises(SpecError) as info:
        load_spec(None, ["train.epochs=5\nlr = 3"])
    check_error(
        info.value, "train.epochs", "train.epochs: expected a positive integer, got '5\\nlr = 3'"
    )
    assert load_spec(None, ["name=a\nb = 1"]).name == "a\nb = 1"
    assert load_spec(None, ["train.epochs=5 # five"]).train.epochs == 5


def test_spec_path_too_long(tmp_path: Path):
    # was: OSError (File name too long) from Path.is_file
    path = tmp_path / ("a" * 5000 + ".toml")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_error(info.value, "", match=r"^cannot read spec file '.*': \[Errno 36\]")


def test_spec_file_with_byte_order_mark_and_old_newlines(tmp_path: Path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfname = 'x'\r[train]\r\nepochs = 3\r")
    spec = load_spec(path)
    assert (spec.name, spec.train.epochs) == ("x", 3)


def test_seeds_fit_every_random_number_generator():
    # larger seeds loaded, then failed in torch (>= 2**64) or pyro.set_rng_seed (>= 2**32)
    spec = load_spec(None, [f"train.seed={2**31 - 1}", f"data.seed={2**31 - 1}"])
    assert spec.train.seed == spec.data.seed == 2**31 - 1
    for field in ("train.seed", "data.seed"):
        with pytest.raises(SpecError) as info:
            load_spec(None, [f"{field}={2**64}"])
        check_error(info.value, field, match="an integer from 0 to 2147483647")


def test_absurd_sizes_pass_the_spec_unharmed():
    # sizes are the pipeline's to judge (memory); the spec check itself must not break
    spec = load_spec(
        None,
        [
            "model.latent_dim=100000000",
            f"model.encoder.hidden=[{2**63}, {10**30}]",
            f"model.decoder.hidden=[{10**100}]",
            f"data.synthetic.n={10**40}",
        ],
    )
    assert spec.model.latent_dim == 100_000_000
    assert spec.model.encoder.hidden == (2**63, 10**30)
    assert spec_from_dict(tomllib.loads(spec_to_toml(spec))) == spec


# -------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.encoder.hidden=[256,128]", {"model": {"encoder": {"hidden": [256, 128]}}}),
        ("model.encoder.hidden=[]", {"model": {"encoder": {"hidden": []}}}),
        ("train.lr=1e-3", {"train": {"lr": 1e-3}}),
        ("train.epochs=5", {"train": {"epochs": 5}}),
        ("data.download=true", {"data": {"download": True}}),
        ('name="quoted"', {"name": "quoted"}),
        ("name='single'", {"name": "single"}),
        ("data.name=mnist", {"data": {"name": "mnist"}}),
        ("data.path=/tmp/x y.npy", {"data": {"path": "/tmp/x y.npy"}}),
        ("name=a=b", {"name": "a=b"}),
        ("name=", {"name": ""}),
        ("  train.epochs  =  7  ", {"train": {"epochs": 7}}),
        ("train.beta =0.5", {"train": {"beta": 0.5}}),
        ("model.likelihood={name='gaussian'}", {"model": {"likelihood": {"name": "gaussian"}}}),
    ],
)
def test_apply_overrides_values(override: str, expected: dict[str, Any]):
    assert apply_overrides({}, [override]) == expected


def test_apply_overrides_merges_and_later_wins():
    raw = {"train": {"epochs": 3, "lr": 0.1}, "name": "x"}
    out = apply_overrides(raw, ["train.epochs=4", "train.epochs=5", "model.latent_dim=8"])
    assert out == {"train": {"epochs": 5, "lr": 0.1}, "name": "x", "model": {"latent_dim": 8}}


def test_apply_overrides_does_not_mutate():
    raw = {"train": {"epochs": 3}, "model": {"encoder": {"hidden": [1, 2]}}}
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["train.epochs=9", "model.encoder.hidden=[5]", "data.seed=1"])
    assert raw == before
    assert out["train"]["epochs"] == 9
    out["model"]["encoder"]["hidden"].append(3)
    assert raw == before


def test_load_spec_with_overrides(tmp_path: Path):
    path = write(tmp_path, "[train]\nepochs = 3\nlr = 0.5\n")
    spec = load_spec(path, ["train.epochs=5", "model.encoder.hidden=[32, 16]", "data.seed=4"])
    assert spec.train.epochs == 5
    assert spec.train.lr == 0.5
    assert spec.model.encoder.hidden == (32, 16)
    assert spec.data.seed == 4
    assert load_spec(None, ("data.name=synthetic",)).data.name == "synthetic"


@pytest.mark.parametrize("override", ["foo", "=3", "a..b=1", ".a=1", "a.=1", "", " = 1", "train."])
def test_malformed_override(override: str):
    with pytest.raises(SpecError) as info:
        apply_overrides({}, [override])
    check_error(
        info.value,
        "--set",
        f"--set: expected key.path=value (e.g. train.epochs=5), got {override!r}",
    )
    with pytest.raises(SpecError) as info:
        load_spec(None, [override])
    assert info.value.path == "--set"


def test_override_value_as_table():
    with pytest.raises(SpecError) as info:
        load_spec(None, ["train.epochs=5", "train.epochs.x=1"])
    check_error(info.value, "train.epochs", match=r"^train\.epochs: .*not a table")
    # without an earlier value, the table reaches the field check, same path
    with pytest.raises(SpecError) as info:
        load_spec(None, ["train.epochs.x=1"])
    check_error(
        info.value, "train.epochs", "train.epochs: expected a positive integer, got {'x': 1}"
    )


def test_override_value_as_table_from_file(tmp_path: Path):
    path = write(tmp_path, "[train]\nepochs = 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, ["train.epochs.x=1"])
    check_error(info.value, "train.epochs", match=r"not a table")


@pytest.mark.parametrize(
    ("override", "raw"),
    [
        ("model.encodr.hidden=[1]", {"model": {"encodr": {"hidden": [1]}}}),
        ("train.epoch=3", {"train": {"epoch": 3}}),
        ('dta.name="mnist"', {"dta": {"name": "mnist"}}),
        ("train.zzz=1", {"train": {"zzz": 1}}),
    ],
)
def test_override_unknown_key_same_message_as_file(tmp_path: Path, override: str, raw: dict):
    with pytest.raises(SpecError) as from_set:
        load_spec(None, [override])
    with pytest.raises(SpecError) as from_dict:
        spec_from_dict(raw)
    key, _, value = override.partition("=")
    *tables, last = key.split(".")
    path = write(tmp_path, f"[{'.'.join(tables)}]\n{last} = {value}\n")
    with pytest.raises(SpecError) as from_file:
        load_spec(path)
    assert str(from_set.value) == str(from_dict.value) == str(from_file.value)
    assert from_set.value.path == from_file.value.path
    check_error(from_set.value, from_dict.value.path)


def test_override_error_message_matches_field():
    with pytest.raises(SpecError) as info:
        load_spec(None, ["model.encoder.hidden=[256, -3]"])
    check_error(
        info.value,
        "model.encoder.hidden[1]",
        "model.encoder.hidden[1]: expected a positive integer, got -3",
    )
    with pytest.raises(SpecError) as info:
        load_spec(None, ["train.epochs=true"])
    check_error(info.value, "train.epochs", "train.epochs: expected a positive integer, got true")
    with pytest.raises(SpecError) as info:
        load_spec(None, ["train.lr=nan"])
    check_error(info.value, "train.lr", "train.lr: expected a positive number, got nan")


# ------------------------------------------------------------------- hypothesis

HUGE = 10**4000  # beyond float range (hypothesis itself cannot print ints past 4300 digits)
KEY_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
SCALARS = st.one_of(
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.sampled_from([0, 1, -1, 2, 2**63, -(2**63), HUGE, -HUGE]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
)
BROAD = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY_TEXT, inner, max_size=4),
    max_leaves=10,
)


def one_in(n: int) -> st.SearchStrategy[bool]:
    # not ``i == 0``: hypothesis draws the simplest value, 0, far more often than 1/n
    return st.integers(0, n - 1).map(lambda i: i == 1)


def plausible(f: dataclasses.Field) -> st.SearchStrategy:
    """Values that are often valid for field ``f`` (its default half of the time)."""
    check = f.metadata["check"]
    default = default_of(f)
    options = getattr(check, "options", None)
    if options:
        others = st.sampled_from(options)
    elif check is c.text:
        others = st.text(max_size=20)
    elif isinstance(default, bool):
        others = st.booleans()
    elif isinstance(default, int):
        others = st.integers(0, 300) | st.integers(-2, 2)
    elif isinstance(default, float):
        others = st.floats(0.01, 0.99) | st.sampled_from([0, 0.0, 1, 1.0, 2.5, -0.5])
    elif isinstance(default, tuple):
        others = st.lists(st.integers(1, 64), max_size=4) | st.lists(st.integers(-1, 3), max_size=3)
    else:  # the likelihood scale
        others = st.sampled_from(["learned", "decoder"]) | st.floats(-1.0, 5.0)
    return st.just(default) | others


@st.composite
def tables(draw, cls: type = Spec) -> dict[str, Any]:
    """A partial table of ``cls``, now and then with a broad value or an unknown key."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if draw(st.booleans()):
            continue
        if draw(one_in(25)):
            out[f.name] = draw(BROAD)
        elif is_table(f):
            out[f.name] = draw(tables(type(f.default_factory())))
        else:
            out[f.name] = draw(plausible(f))
    if draw(one_in(40)):
        out[draw(KEY_TEXT)] = draw(BROAD)
    return out


RAW_SPECS = st.one_of(tables(), tables(), BROAD)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RAW_SPECS)
def test_random_dicts_load_or_raise_spec_error(raw: Any):
    try:
        spec = spec_from_dict(raw)
    except SpecError as err:
        assert "\n" not in str(err)
        if err.path:
            assert str(err).startswith(f"{err.path}: ")
        return
    assert isinstance(spec, Spec)
    assert spec_from_dict(spec_to_dict(spec)) == spec


PATHS = dotted_paths()


def leaf_fields(cls: type = Spec, prefix: str = "") -> dict[str, dataclasses.Field]:
    out = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        if is_table(f):
            out.update(leaf_fields(type(f.default_factory()), path))
        else:
            out[path] = f
    return out


LEAVES = leaf_fields()
TEXT_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["5", "0", "-1", "1e-3", "nan", "inf", "true", "[1, 2]", "[]", "relu", "mnist", '"x"', "{}"]
    ),
    st.sampled_from(["{a = 1}", "[true]", "1979-05-27", "'", '"', "[", "3.5", "learned", "iwae"]),
)


def as_text(path: str, value: Any) -> str:
    """An override value for ``value``: a bare word for a choice, else TOML via JSON."""
    if value in getattr(LEAVES[path].metadata["check"], "options", ()):
        return value
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return json.dumps(value)


def toml_string(text: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    escaped = "".join(
        f"\\u{ord(ch):04x}" if ch in '"\\' or unicodedata.category(ch) == "Cc" else ch
        for ch in text
    )
    return f'"{escaped}"'


def outcome(fn) -> Any:
    """``fn()``, or ``("SpecError", path, message)`` when it raises SpecError."""
    try:
        return fn()
    except SpecError as err:
        return ("SpecError", err.path, str(err))


@st.composite
def overrides(draw) -> tuple[str, str]:
    """(key, value): a real field with a plausible value, or random keys and text."""
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        path = draw(st.sampled_from(sorted(LEAVES)))
        return path, as_text(path, draw(plausible(LEAVES[path])))
    if kind == 3:
        return draw(st.sampled_from(PATHS)), draw(TEXT_VALUES)
    if kind == 4:
        return draw(st.sampled_from(PATHS)) + ".x", draw(TEXT_VALUES)
    return draw(KEY_TEXT), draw(TEXT_VALUES)


@settings(max_examples=300, deadline=None)
@given(overrides(), st.sampled_from(["=", " = ", "=="]))
def test_random_overrides_load_or_raise_spec_error(override: tuple[str, str], sep: str):
    key, value = override
    try:
        spec = load_spec(None, [f"{key}{sep}{value}"])
    except SpecError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(spec, Spec)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(LEAVES)).flatmap(
        lambda path: st.tuples(st.just(path), plausible(LEAVES[path]))
    )
)
def test_override_same_as_dict_value(path_value: tuple[str, Any]):
    path, value = path_value
    from_set = outcome(lambda: load_spec(None, [f"{path}={as_text(path, value)}"]))
    assert from_set == outcome(lambda: spec_from_dict(nest({path: value})))


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    lr=st.floats(min_value=1e-300, max_value=1e300),
    hidden=st.lists(st.integers(1, 2**62), max_size=4),
    scale=st.floats(min_value=1e-300, max_value=1e300) | st.sampled_from(["learned", "decoder"]),
)
def test_random_valid_specs_round_trip_through_toml(name, lr, hidden, scale):
    spec = spec_from_dict(
        nest(
            {
                "name": name,
                "data.path": name,
                "data.name": "synthetic",
                "train.lr": lr,
                "model.decoder.hidden": hidden,
                "model.likelihood.name": "laplace",
                "model.likelihood.scale": scale,
            }
        )
    )
    assert math.isfinite(spec.train.lr)
    assert spec_from_dict(tomllib.loads(spec_to_toml(spec))) == spec
