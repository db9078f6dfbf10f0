"""Table cells and tables of the comparison line: CSV files and markdown.

One way to write a missing value (an empty CSV cell, an en dash in markdown), a
number (``digits`` significant figures) and a markdown table, shared by
``comparison.md``, ``arviz_summary.md`` and ``loo.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["csv_cell", "fmt", "is_missing", "markdown_table", "write_csv"]


# --- tables -----------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """True for None and NaN: a figure that does not apply or is unknown."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def csv_cell(value: Any) -> str:
    """A CSV cell: empty where the figure does not apply, lists joined by ``"; "``."""
    if is_missing(value):
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(csv_cell(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> Path:
    """Write ``rows`` with a header of ``columns``; missing values as empty cells."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([csv_cell(row.get(column)) for column in columns] for row in rows)
    return path


def fmt(value: Any, digits: int = 3) -> str:
    """A markdown cell: ``digits`` significant figures, an en dash where it does not apply."""
    if is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
