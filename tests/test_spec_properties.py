"""Property tests of the spec loader: random TOML files and random ``--set`` lines.

Whatever a user writes, :func:`~pyrovae.spec.load_spec` either returns a :class:`Spec`
that survives a round trip through its own TOML, or raises a one-line, printable
:class:`~pyrovae.errors.SpecError` that names a field (or ``--set`` for a line that is
not ``key.path=value``) or the file; never any other exception.

The documents are nested tables of real field names and random keys, holding values of
every TOML type (integers far past 64 bits, nan and inf, strings with control
characters, dates, arrays, inline and header tables), serialised here, now and then
corrupted, or replaced by random text and bytes. Runs are derandomized, so CI sees the
same examples every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrovae.errors import SpecError
from pyrovae.spec import Spec, load_spec, spec_to_toml

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------- the spec's shape


def _tables(cls: type = Spec, prefix: str = "") -> dict[str, type]:
    """Every table of the spec by dotted path ("" for the top), with its dataclass."""
    out = {prefix: cls}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out.update(_tables(type(value), f"{prefix}.{f.name}" if prefix else f.name))
    return out


TABLES = _tables()
LEAVES = {
    f"{path}.{f.name}" if path else f.name: f
    for path, cls in TABLES.items()
    for f in dataclasses.fields(cls)
    if f"{path}.{f.name}".lstrip(".") not in TABLES
}
FIELD_NAMES = sorted({f.name for cls in TABLES.values() for f in dataclasses.fields(cls)})
OPTIONS = sorted({o for f in LEAVES.values() for o in getattr(f.metadata["check"], "options", ())})


# ---------------------------------------------------------------------- values


HUGE = 10**4000  # past float range; hypothesis cannot print ints over 4300 digits
NO_SURROGATES = st.characters(exclude_categories=("Cs",))
ODD_TEXT = ["", " ", ".", "a.b", '"', "'", "\\", "\n", "\r", "\t", "\x00", "\x7f", "\u2028", "é"]
ODD_TEXT += ["a\nb", "a\x7fb", "a\u2028b", "a\x85b", "a b", "a\tb"]  # inside: not stripped
FILE_CHARS = NO_SURROGATES | st.sampled_from(sorted({ch for ch in "".join(ODD_TEXT)}))
"""Characters a UTF-8 file can hold, the awkward ones (controls, DEL, quotes) often."""
ARGV_CHARS = FILE_CHARS | st.characters(categories=("Cs",))
"""Characters a ``--set`` line can hold: sys.argv keeps undecodable bytes as surrogates."""

KEYS = st.one_of(
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(FIELD_NAMES).map(str.upper),
    st.text(string.ascii_lowercase + "_-", min_size=1, max_size=8),
    st.text(FILE_CHARS, max_size=8),
    st.sampled_from(ODD_TEXT),
)
INTS = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30, HUGE, -HUGE]),
    st.integers(-HUGE, HUGE),
)
FLOATS = st.one_of(
    st.floats(0.001, 0.999),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e-300, 1.7e308]),
)
STRINGS = st.one_of(
    st.sampled_from(OPTIONS),
    st.text(FILE_CHARS, max_size=20),
    st.sampled_from(ODD_TEXT),
)
MOMENTS = st.one_of(
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
SCALARS = st.one_of(INTS, FLOATS, st.booleans(), STRINGS, MOMENTS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def plausible(f: dataclasses.Field, chars: st.SearchStrategy = FILE_CHARS) -> st.SearchStrategy:
    """Values that are often valid for field ``f``, so that many documents load; text
    is drawn from ``chars``."""
    options = getattr(f.metadata["check"], "options", None)
    if options:
        return st.sampled_from(options)
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, str):
        return st.text(chars, max_size=12)
    if isinstance(default, int):
        return st.integers(0, 300)
    if isinstance(default, tuple):
        return st.lists(st.integers(1, 512), max_size=3)
    return st.floats(0.01, 0.99)


@st.composite
def spec_tables(draw, path: str = "", odd: int = 10) -> dict[str, Any]:
    """A partial table at ``path`` of the spec: plausible values, and about one field
    in ``odd`` a random value (0: none), now and then a random key."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(TABLES[path]):
        if draw(st.booleans()):
            continue
        sub = f"{path}.{f.name}" if path else f.name
        roll = draw(st.integers(0, 2 * odd - 1)) if odd else -1
        if roll == 0:
            out[f.name] = draw(VALUES)
        elif sub in TABLES:
            out[f.name] = draw(spec_tables(sub, odd))
        else:
            out[f.name] = draw(SCALARS if roll == 1 else plausible(f))
    if odd and draw(st.integers(0, 2 * odd)) == 0:
        out[draw(KEYS)] = draw(VALUES)
    return out


# ---------------------------------------------------------------------- TOML text


def basic_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    """``ch`` as it may stand in a TOML basic string."""
    if ch in '"\\' or unicodedata.category(ch) == "Cc":
        return f"\\u{ord(ch):04x}"
    return ch


def toml_key(key: str) -> str:
    """A key: bare when TOML allows it, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else basic_string(key)


def toml_scalar(value: Any) -> str:
    """One TOML value (not a table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # inf, -inf, 1e+300: all TOML
    if isinstance(value, str):
        return basic_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    return value.isoformat()  # datetime, date or time


def inline(value: Any) -> str:
    """A value written inline: an inline table for a dict."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {inline(v)}" for k, v in value.items()) + "}"
    return toml_scalar(value)


def render(doc: dict[str, Any], headers: list[bool]) -> str:
    """``doc`` as a TOML document; each table is a ``[header]`` section when the next
    entry of ``headers`` (cycled) says so, else an inline table."""
    lines: list[str] = []
    turn = iter(headers * 50 or [False])

    def table(node: dict[str, Any], keys: list[str]) -> None:
        sections = []
        for key, value in node.items():
            if isinstance(value, dict) and next(turn, False):
                sections.append((key, value))
            else:
                lines.append(f"{toml_key(key)} = {inline(value)}")
        for key, value in sections:
            sub = [*keys, toml_key(key)]
            lines.append(f"[{'.'.join(sub)}]")
            table(value, sub)

    table(doc, [])
    return "\n".join(lines) + "\n"


JUNK = st.text(st.sampled_from(list("[]{}=\"'.,#\n \\x0")), min_size=1, max_size=3)


@st.composite
def deep_tables(draw) -> str:
    """A table nested thousands deep by a header or a dotted key (no recursion needed)."""
    start = draw(st.sampled_from(sorted(TABLES)))
    keys = [toml_key(k) for k in draw(st.lists(KEYS, min_size=1, max_size=2))]
    path = ".".join([*filter(None, [start]), *keys * draw(st.sampled_from([3, 1500]))])
    if draw(st.booleans()):
        return f"[{path}]\nx = 1\n"
    return f"{path} = 1\n"


@st.composite
def documents(draw) -> bytes:
    """A TOML file's bytes: a rendered random document, sometimes corrupted, or junk."""
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return draw(st.binary(max_size=60))
    if kind == 1:
        return draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    if kind == 2:
        return draw(deep_tables()).encode("utf-8")
    if kind <= 4:
        doc = draw(st.dictionaries(KEYS, VALUES, max_size=5))
    else:
        doc = draw(spec_tables(odd=draw(st.sampled_from([0, 0, 5, 20]))))
    text = render(doc, draw(st.lists(st.booleans(), max_size=6)))
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(JUNK) + text[at + cut :]
    return text.encode("utf-8")


# ---------------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("specs")


def check_outcome(load, file: Path, malformed: bool = False) -> None:
    """Run ``load()``; any exception but SpecError fails the test. A Spec must survive a
    round trip through ``spec_to_toml``; a SpecError must be one printable line naming a
    field, ``--set`` (only when a line is ``malformed``) or ``file``."""
    try:
        spec = load()
    except SpecError as err:
        message = str(err)
        assert message.isprintable(), message  # one line, odd characters escaped
        if err.path:
            assert message.startswith(f"{err.path}: "), message
            assert err.path != "--set" or malformed, message
        else:
            assert str(file) in message, message
        return
    assert isinstance(spec, Spec)
    back = file.with_name("round_trip.toml")
    back.write_text(spec_to_toml(spec), encoding="utf-8")
    assert load_spec(back) == spec


@SETTINGS
@given(text=documents())
def test_random_toml_files_load_or_name_the_field(folder: Path, text: bytes):
    path = folder / "spec.toml"
    path.write_bytes(text)
    check_outcome(lambda: load_spec(path), file=path)


# ---------------------------------------------------------------------- --set lines


@st.composite
def override_keys(draw) -> str:
    """A real field or table path, one with a random segment, or random text."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return draw(st.sampled_from(sorted(LEAVES)))
    if kind == 6:
        return draw(st.sampled_from(sorted(p for p in TABLES if p)))
    if kind == 7:
        parts = draw(st.sampled_from(sorted(TABLES))).split(".")
        return ".".join([*filter(None, parts), draw(KEYS)])
    return draw(st.text(ARGV_CHARS | st.just("."), max_size=12))


@st.composite
def override_values(draw, key: str) -> str:
    """Value text: a plausible value for a real field, any TOML value, or random text."""
    kind = draw(st.integers(0, 9))
    if kind <= 5 and key in LEAVES:
        value = draw(plausible(LEAVES[key], ARGV_CHARS))
        bare = isinstance(value, str) and (value in OPTIONS or draw(st.booleans()))
        return value if bare else inline(value)  # a bare word is read as a string
    if kind <= 7:
        return inline(draw(VALUES))
    if kind == 8:
        return draw(st.text(FILE_CHARS, max_size=20))
    return draw(st.sampled_from(["9" * 5000, "[" * 5000, "1\nname = 'x'", "1979-13-45"]))


def _line(key: str, sep: str, value: str) -> tuple[str, bool]:
    """A ``--set`` line and whether it is malformed (no ``=``, or an empty key part)."""
    line = f"{key}{sep}{value}"
    head, found, _ = line.partition("=")
    return line, not found or not all(head.strip().split("."))


@st.composite
def plausible_line(draw) -> tuple[str, bool]:
    """``field=value`` for a real field and a value that often suits it."""
    key = draw(st.sampled_from(sorted(LEAVES)))
    value = draw(plausible(LEAVES[key], ARGV_CHARS))
    bare = isinstance(value, str) and (value in OPTIONS or draw(st.booleans()))
    return _line(key, "=", value if bare else inline(value))  # a bare word is a string


@st.composite
def random_line(draw) -> tuple[str, bool]:
    """Any key path, separator and value text."""
    key = draw(override_keys())
    sep = draw(st.sampled_from(["="] * 6 + [" = ", "==", "", "\n="]))
    return _line(key, sep, draw(override_values(key)))


@st.composite
def nested_lines(draw) -> list[tuple[str, bool]]:
    """A value, then a line that treats it as a table: ``k=1``, ``k.x=2``."""
    key = draw(override_keys())
    first = _line(key, "=", draw(override_values(key)))
    return [first, _line(f"{key}.{draw(KEYS)}", "=", draw(override_values("")))]


@st.composite
def override_lines(draw) -> list[tuple[str, bool]]:
    """One to three ``--set`` lines: all plausible in about half the examples, random
    in a quarter, and in the rest a value followed by a line that goes below it."""
    mode = draw(st.integers(0, 3))
    if mode == 3:
        return draw(nested_lines())
    line = plausible_line() if mode < 2 else random_line()
    return draw(st.lists(line, min_size=1, max_size=3))


@SETTINGS
@given(lines=override_lines())
def test_random_set_lines_load_or_name_the_field(folder: Path, lines: list[tuple[str, bool]]):
    texts = [line for line, _ in lines]
    malformed = any(bad for _, bad in lines)
    check_outcome(lambda: load_spec(None, texts), file=folder / "set.toml", malformed=malformed)


@settings(SETTINGS, max_examples=100)
@given(text=documents(), lines=override_lines())
def test_random_files_with_set_lines(folder: Path, text: bytes, lines: list[tuple[str, bool]]):
    path = folder / "both.toml"
    path.write_bytes(text)
    malformed = any(bad for _, bad in lines)
    check_outcome(lambda: load_spec(path, [t for t, _ in lines]), file=path, malformed=malformed)


def test_the_shape_tables_match_the_spec():
    assert set(TABLES) == {"", "data", "data.synthetic", "model", "train"} | {
        f"model.{t}" for t in ("encoder", "decoder", "likelihood", "prior", "guide", "autoencoder")
    }
    assert {"name", "model.encoder.hidden", "train.lr", "data.synthetic.n"} <= set(LEAVES)
    assert not set(LEAVES) & set(TABLES)
