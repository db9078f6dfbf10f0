"""Field checks used by the spec loader.

Each check takes the raw value and its dotted path and returns the value in
its canonical form (e.g. a list becomes a tuple) or raises
:class:`~pyrovae.errors.SpecError` with a message of the form
``"<path>: expected <what>, got <value>"``.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from typing import Any

from pyrovae.errors import SpecError

__all__ = [
    "Check",
    "boolean",
    "choice",
    "count_or_fraction",
    "fraction",
    "integer",
    "non_negative_float",
    "positive_float",
    "positive_int_tuple",
    "scale_or_choice",
    "show",
    "text",
]

Check = Callable[[Any, str], Any]


_REPR = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def show(value: Any) -> str:
    """A value as a user would write it in TOML, short and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # ints over 4300 digits, absurd nesting
        return "a value too large to show"
    if isinstance(value, str):
        return text
    return text.replace("True", "true").replace("False", "false")


def _fail(path: str, expected: str, value: Any) -> SpecError:
    return SpecError(path, f"expected {expected}, got {show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if not (_is_int(value) or isinstance(value, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def integer(minimum: int = 0, maximum: int | None = None) -> Check:
    """An integer ``>= minimum`` and, when given, ``<= maximum`` (booleans and floats
    are rejected)."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if maximum is not None:
        what = f"an integer from {minimum} to {maximum}"

    def check(value: Any, path: str) -> int:
        if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
            raise _fail(path, what, value)
        return value

    return check


def positive_float(value: Any, path: str) -> float:
    """A finite number > 0."""
    if not _is_number(value) or value <= 0:
        raise _fail(path, "a positive number", value)
    return float(value)


def non_negative_float(value: Any, path: str) -> float:
    """A finite number >= 0."""
    if not _is_number(value) or value < 0:
        raise _fail(path, "a number >= 0", value)
    return float(value)


def fraction(low_open: bool) -> Check:
    """A number in (0, 1) when ``low_open`` else in [0, 1)."""
    what = "a number in (0, 1)" if low_open else "a number in [0, 1)"

    def check(value: Any, path: str) -> float:
        ok = _is_number(value) and (0 < value if low_open else 0 <= value) and value < 1
        if not ok:
            raise _fail(path, what, value)
        return float(value)

    return check


def boolean(value: Any, path: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def text(value: Any, path: str) -> str:
    """Any string that can be written as UTF-8 (no lone surrogates, which is what
    ``sys.argv`` holds for bytes that are not UTF-8)."""
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "UTF-8 text (the spec is saved as TOML)", value) from None
    return value


def choice(*options: str) -> Check:
    """One of a fixed set of names."""
    listed = ", ".join(repr(o) for o in options)

    def check(value: Any, path: str) -> str:
        if value not in options or not isinstance(value, str):
            raise _fail(path, f"one of {listed}", value)
        return value

    check.options = options  # type: ignore[attr-defined]
    return check


def scale_or_choice(*options: str) -> Check:
    """A positive number or one of a fixed set of names."""
    listed = " or ".join(repr(o) for o in options)

    def check(value: Any, path: str) -> str | float:
        if isinstance(value, str) and value in options:
            return value
        if _is_number(value) and value > 0:
            return float(value)
        raise _fail(path, f"a positive number or {listed}", value)

    return check


def integer_or_choice(minimum: int, *options: str) -> Check:
    """An integer >= ``minimum`` or one of a fixed set of names."""
    listed = " or ".join(repr(o) for o in options)

    def check(value: Any, path: str) -> int | str:
        if isinstance(value, str) and value in options:
            return value
        if _is_int(value) and value >= minimum:
            return int(value)
        raise _fail(path, f"an integer >= {minimum} or {listed}", value)

    return check


def count_or_fraction(value: Any, path: str) -> int | float:
    """An integer >= 1 (a count) or a float in (0, 1] (a share)."""
    if _is_int(value) and value >= 1:
        return int(value)
    if isinstance(value, float) and 0 < value <= 1:
        return value
    raise _fail(path, "an integer >= 1 (a count per class) or a number in (0, 1] (a share)", value)


def positive_int_tuple(value: Any, path: str) -> tuple[int, ...]:
    """A list of positive integers (may be empty); returned as a tuple."""
    if not isinstance(value, list | tuple):
        raise _fail(path, "a list of positive integers", value)
    item = integer(1)
    return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
