"""Render the spec reference (docs/spec.md) from the dataclasses themselves."""

from __future__ import annotations

import dataclasses

from pyrovae.spec import Spec, toml_value

__all__ = ["spec_reference"]


def _rows(cls: type, instance: object, prefix: str) -> list[str]:
    rows = []
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            rows += _rows(type(value), value, f"{path}.")
            continue
        check = f.metadata["check"]
        options = getattr(check, "options", None)
        allowed = " \\| ".join(f"`{o}`" for o in options) if options else ""
        shown = toml_value(list(value) if isinstance(value, tuple) else value)
        doc = f.metadata["doc"].replace("|", "\\|")  # p(x|z) inside a table cell
        rows.append(f"| `{path}` | `{shown}` | {allowed} | {doc} |")
    return rows


def spec_reference() -> str:
    """Markdown table of every spec field: path, default, allowed values, meaning."""
    head = [
        "# Spec reference",
        "",
        "Every field of a pyrovae spec, generated from `pyrovae/spec.py` by",
        "`python -m pyrovae._specdoc > docs/spec.md` (a test keeps it in sync).",
        "Set any of them in a TOML file or with `--set path=value`.",
        "",
        "| field | default | allowed | meaning |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(head + _rows(Spec, Spec(), "")) + "\n"


if __name__ == "__main__":
    print(spec_reference(), end="")
