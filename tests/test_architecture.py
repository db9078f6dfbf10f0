"""The package's import contracts: two lines, one bridge, layers that only look down.

The contracts are data (:data:`LINES`, :data:`MAY_USE`); the checks read every module of
``pyrovae/`` with :mod:`ast` (imports inside functions and under ``TYPE_CHECKING``
count too) and fail with the offending imports named. The last tests feed the same
checks a broken graph, so a contract that stopped biting would be noticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyrovae"

LINES: dict[str, list[str]] = {
    # top to bottom; "a|b" are siblings at one level, independent of each other
    "application": [
        "pyrovae",
        "pyrovae.__main__",
        "pyrovae._clidoc",
        "pyrovae.cli",
        "pyrovae.family|pyrovae.sbc",
        "pyrovae.pipeline",
    ],
    "bridge": ["pyrovae.local"],
    "vae": [
        "pyrovae.report",
        "pyrovae.evaluate",
        "pyrovae.train",
        "pyrovae.models",
        "pyrovae.nets|pyrovae.data",
    ],
    "comparison": [
        "pyrovae.posterior.sbc",
        "pyrovae.posterior.run",
        "pyrovae.posterior.reference",
        "pyrovae.posterior.methods|pyrovae.posterior.files",
        "pyrovae.posterior.compare",
        "pyrovae.posterior.diagnostics",
        "pyrovae.posterior.plots",
        "pyrovae.posterior.distances|pyrovae.posterior.tables",
        "pyrovae.posterior.inference",
        "pyrovae.posterior.targets",
        "pyrovae.posterior",
    ],
    "foundation": [
        "pyrovae._specdoc",
        "pyrovae.spec",
        "pyrovae._checks",
        "pyrovae.errors|pyrovae.stats|pyrovae._version|pyrovae._cores",
    ],
}
"""Every module belongs to one entry (the longest matching prefix; ``pyrovae`` itself is
the package's ``__init__`` only)."""

MAY_USE: dict[str, set[str]] = {
    "application": {"bridge", "vae", "comparison", "foundation"},
    "bridge": {"vae", "comparison", "foundation"},
    "vae": {"foundation"},
    "comparison": {"foundation"},
    "foundation": set(),
}
"""The other lines a line may import from: the VAE line and the comparison line meet
only in the bridge (the local posteriors) and in the application above it."""


# --- reading the package ----------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package: Path = PACKAGE) -> dict[str, list[tuple[str, str]]]:
    """module -> ``(imported module, imported name or "")`` for every pyrovae import."""
    modules = {module_name(p): p for p in package.rglob("*.py")}
    out: dict[str, list[tuple[str, str]]] = {}
    for name, path in modules.items():
        found = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "pyrovae"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    found.append(("<relative>", ""))
                elif node.module and node.module.split(".")[0] == "pyrovae":
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}"
                        found.append((full, "") if full in modules else (node.module, alias.name))
        out[name] = found
    return out


def entry_of(module: str) -> tuple[str, int, str] | None:
    """``(line, level, entry)`` of the declared entry that holds ``module``."""
    best = None
    for line, levels in LINES.items():
        for level, names in enumerate(levels):
            for entry in names.split("|"):
                covers = module == entry or (entry != "pyrovae" and module.startswith(entry + "."))
                if covers and (best is None or len(entry) > len(best[2])):
                    best = (line, level, entry)
    return best


# --- the contracts ----------------------------------------------------------------------------


def layer_violations(graph: Mapping[str, Iterable[tuple[str, str]]]) -> list[str]:
    """Imports that go up a line, across siblings, or into a line not in :data:`MAY_USE`."""
    bad = []
    for source, targets in graph.items():
        for target, _ in targets:
            a, b = entry_of(source), entry_of(target)
            if a is None or b is None or a[2] == b[2]:
                continue
            if a[0] == b[0]:
                ok = a[1] < b[1]
            else:
                ok = b[0] in MAY_USE[a[0]]
            if not ok:
                bad.append(f"{source} ({a[0]}) imports {target} ({b[0]})")
    return sorted(set(bad))


def unplaced(graph: Mapping[str, object]) -> list[str]:
    return sorted(m for m in graph if entry_of(m) is None)


def cycles(graph: Mapping[str, Iterable[tuple[str, str]]]) -> list[list[str]]:
    """Every import cycle between modules (one per strongly connected component)."""
    edges = {m: sorted({t for t, _ in ts if t in graph and t != m}) for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def private_violations(graph: Mapping[str, Iterable[tuple[str, str]]]) -> list[str]:
    """A ``_name`` imported from another module, or a ``_module`` from outside its package."""
    bad = []
    for source, targets in graph.items():
        for target, name in targets:
            if target == "<relative>":
                bad.append(f"{source} uses a relative import")
            dunder = name.startswith("__") and name.endswith("__")  # __version__ is public
            if name.startswith("_") and not dunder:
                bad.append(f"{source} imports the private {target}.{name}")
            parts = target.split(".")
            for depth, part in enumerate(parts):
                package = ".".join(parts[:depth])
                inside = source == package or source.startswith(package + ".")
                if part.startswith("_") and not inside:
                    bad.append(f"{source} imports the private module {target}")
    return sorted(set(bad))


# --- the package keeps them -------------------------------------------------------------------

GRAPH = imports()


def test_every_module_is_placed_in_a_line() -> None:
    assert unplaced(GRAPH) == [], "add the new module's folder to LINES in this file"


def test_layers_only_look_down_and_the_lines_meet_only_in_the_bridge() -> None:
    assert layer_violations(GRAPH) == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_no_private_names_across_modules() -> None:
    assert private_violations(GRAPH) == []


def test_every_module_declares_its_public_names() -> None:
    missing = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in tree.body:
            if isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
        if "__all__" not in names and path.name != "__main__.py":
            missing.append(module_name(path))
    assert missing == []


# --- and the checks bite ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("pyrovae.models.vae", "pyrovae.train.loop", "up the VAE line"),
        ("pyrovae.nets.mlp", "pyrovae.data.dataset", "across siblings"),
        (
            "pyrovae.report.run_report",
            "pyrovae.posterior.compare",
            "VAE line into the comparison line",
        ),
        (
            "pyrovae.posterior.targets.zoo",
            "pyrovae.models.vae",
            "comparison line into the VAE line",
        ),
        ("pyrovae.posterior.compare", "pyrovae.local.posteriors", "a line into the bridge"),
        ("pyrovae.spec", "pyrovae.data.dataset", "the foundation into a line"),
        ("pyrovae.local.posteriors", "pyrovae.pipeline", "the bridge into the application"),
    ],
)
def test_a_broken_layer_is_reported(source: str, target: str, why: str) -> None:
    broken = {**GRAPH, source: [*GRAPH.get(source, []), (target, "")]}
    assert layer_violations(broken) == [
        f"{source} ({entry_of(source)[0]}) imports {target} ({entry_of(target)[0]})"
    ], why


def test_a_cycle_and_a_private_import_are_reported() -> None:
    broken = {
        "pyrovae.a": [("pyrovae.b", "")],
        "pyrovae.b": [("pyrovae.c", "_helper")],
        "pyrovae.c": [("pyrovae.a", ""), ("pyrovae.x._inner", "")],
        "pyrovae.x._inner": [],
    }
    assert cycles(broken) == [["pyrovae.a", "pyrovae.b", "pyrovae.c"]]
    assert private_violations(broken) == [
        "pyrovae.b imports the private pyrovae.c._helper",
        "pyrovae.c imports the private module pyrovae.x._inner",
    ]
    assert unplaced({"pyrovae.newfolder.thing": []}) == ["pyrovae.newfolder.thing"]
