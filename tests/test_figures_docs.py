"""The published figures stay tied to the scripts that print them.

README.md's table of measured figures and docs/benchmarks.md cite benchmark scripts
and the ``name=value`` lines they print (``ratio=``, ``advantage_nats=``...). A
renamed figure, a removed script or a file outside the repository must fail here,
not go stale in the documentation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
"""The benchmark scripts; ``_name.py`` modules are helpers they import, not scripts."""


def _printed_names(script: Path) -> list[str]:
    """Names of the ``name=`` figures a script prints, in source order.

    A figure line is a ``print`` whose (f-)string starts with ``name=``.
    """
    names = []
    nodes = sorted(
        (n for n in ast.walk(ast.parse(script.read_text())) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for node in nodes:
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            if not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.IfExp):  # print(f"a={x}" if ok else "a=nan")
                first = first.body
            text = None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                text = first.value
            elif isinstance(first, ast.JoinedStr) and first.values:
                head = first.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    text = head.value
            match = re.match(r"([a-z][a-z0-9_]*)=", text or "")
            if match:
                names.append(match.group(1))
    return names


PRINTED = {script.name: _printed_names(script) for script in SCRIPTS}


def _readme_table_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Measured on these machines", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_every_benchmark_script_prints_a_headline_figure():
    for name, figures in PRINTED.items():
        assert figures, f"benchmarks/{name} prints no name=value figure line"


def test_readme_figures_table_cites_existing_scripts_and_their_figures():
    """Each row's quoted ``name=`` figures are printed by the scripts the row cites, and
    every cited script's headline (its last figure line) is quoted in some row."""
    rows = _readme_table_rows()[1:]  # after the header
    assert rows, "README has no table of measured figures"
    quoted: set[str] = set()
    cited_anywhere: set[str] = set()
    for row in rows:
        cited = re.findall(r"`benchmarks/([a-z_]+\.py)`", row)
        figures = re.findall(r"`([a-z][a-z0-9_]*)=`", row)
        for script in cited:
            assert script in PRINTED, f"README cites benchmarks/{script}, which does not exist"
        printed = {f for script in cited for f in PRINTED[script]}
        for figure in figures:
            assert figure in printed, f"README quotes `{figure}=`, which {cited} do not print"
        quoted.update(figures)
        cited_anywhere.update(cited)
    for script in cited_anywhere:
        headline = PRINTED[script][-1]
        assert headline in quoted, f"README cites {script} but never its headline `{headline}=`"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_figure_names_in_docs_are_printed_by_the_scripts_they_name(doc):
    """Every ``name=`` a document quotes in backticks is printed by some benchmark."""
    printed = {figure for names in PRINTED.values() for figure in names}
    for figure in re.findall(r"`([a-z][a-z0-9_]*)=(?:[-<0-9][^`]*)?`", doc.read_text()):
        assert figure in printed, f"{doc.name} quotes `{figure}=`, which no benchmark prints"


def test_benchmarks_doc_gives_each_script_and_its_headline():
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    for name, figures in PRINTED.items():
        assert f"benchmarks/{name}" in doc, f"docs/benchmarks.md does not describe {name}"
        assert f"`{figures[-1]}=" in doc, (
            f"docs/benchmarks.md does not quote {name}'s headline `{figures[-1]}=`"
        )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_point_only_to_files_in_the_repository(doc):
    text = doc.read_text()
    assert "DESIGN.md" not in text, f"{doc.name} cites DESIGN.md, which is not in the repository"
    for path in re.findall(r"(?<![\w/.])((?:docs|benchmarks|examples|tests)/[\w./-]+\.\w+)", text):
        assert (ROOT / path).exists(), f"{doc.name} points to {path}, which does not exist"
