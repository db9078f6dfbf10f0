"""The documentation site (``mkdocs.yml``, ``docs/``): its generated pages are in sync,
its API reference covers every public module, and every code block on it is run by the
tests.

Each fenced block names its kind. ``text`` blocks are output a script printed; the
others are code:

- ``python``: a snippet of a program the tests run (``--8<-- "examples/..."``), or code
  run here (the slow test below);
- ``toml``: a spec (or part of one), loaded as one;
- ``bash``: ``pyrovae`` commands, parsed (arguments and spec) in the default suite and
  run, shrunk to seconds, by the slow test; ``torchrun [options] -m pyrovae ...``
  commands, whose torchrun options are parsed by torchrun's own parser and the rest as a
  ``pyrovae`` command (the slow test runs those of one machine on the CPU, with
  ``--standalone``); the README's set-up commands, which CI runs; ``python
  examples/...`` programs, which ``tests/test_examples.py`` runs.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from pyrovae._clidoc import cli_reference
from pyrovae.cli import build_parser
from pyrovae.spec import load_spec
from tests.helpers import ROOT, SHARED_DATA

DOCS = ROOT / "docs"
KINDS = ("bash", "python", "toml", "text")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')
SPEC_COMMANDS = ("train", "run", "family", "spec")
NEEDS_SHARED = ("mnist", "eight_schools", "kidscore", "blr")
"""Words of a command that needs ../shared/data (MNIST, posteriordb references)."""


class Block(NamedTuple):
    page: str
    lang: str
    body: str


def _blocks() -> list[Block]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            body = "\n".join(line[len(m["indent"]) :] for line in m["body"].splitlines())
            found.append(Block(str(page.relative_to(ROOT)), m["lang"], body))
    return found


BLOCKS = _blocks()


def _commands(kind: str = "bash") -> list[tuple[str, str]]:
    """``(page, command)`` for every line of every block of ``kind``, comments dropped."""
    out = []
    for block in BLOCKS:
        if block.lang == kind:
            for line in block.body.splitlines():
                command = line.split(" #")[0].strip()
                if command and not command.startswith("#"):
                    out.append((block.page, command))
    return out


def _tested_programs() -> set[str]:
    """The programs in examples/ that tests/test_examples.py runs (its ``_run("name")``)."""
    text = (ROOT / "tests" / "test_examples.py").read_text()
    return {f"examples/{name}" for name in re.findall(r'_run\(\s*"([^"]+\.py)"', text)}


def _readme_commands() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^(pip install .*)$", readme, re.M))


def test_generated_cli_reference_is_in_sync():
    assert (DOCS / "cli.md").read_text() == cli_reference(), (
        "run: python -m pyrovae._clidoc > docs/cli.md"
    )


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r"([\w./-]+\.md)\s*$", config, re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed == pages


def test_api_reference_documents_every_public_module():
    documented: dict[str, list[str]] = {}
    for page in (DOCS / "api").glob("*.md"):
        for name in re.findall(r"^::: (\S+)$", page.read_text(), re.M):
            documented.setdefault(name, []).append(page.name)
    public = set()
    for path in (ROOT / "pyrovae").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(p.startswith("_") for p in parts) and parts != ("pyrovae", "cli"):
            public.add(".".join(parts))
    public.add("pyrovae.cli")
    assert sorted(public - documented.keys()) == [], "public modules missing from docs/api"
    assert sorted(documented.keys() - public) == [], "docs/api names modules that do not exist"
    assert {k: v for k, v in documented.items() if len(v) > 1} == {}


def test_every_block_names_its_kind():
    assert BLOCKS, "no code blocks found under docs/"
    unnamed = [(b.page, b.body.splitlines()[0]) for b in BLOCKS if b.lang not in KINDS]
    assert unnamed == [], f"fence these as one of {KINDS}"


def test_python_snippets_are_programs_the_tests_run():
    tested = _tested_programs() | {"examples/models/regression.py"}  # the model: below
    for block in BLOCKS:
        if block.lang != "python":
            continue
        lines = block.body.strip().splitlines()
        snippets = [SNIPPET.match(line) for line in lines]
        if all(snippets):
            for m in snippets:
                assert m is not None
                path = m["path"].split(":")[0]
                assert path in tested, f"{block.page}: {path} is not run by any test"
        else:
            compile(block.body, block.page, "exec")  # and run by test_python_blocks_run


def test_example_model_runs_on_its_data():
    """The model the docs compare: it runs on its JSON data, every site as declared."""
    from pyrovae.posterior.targets.user import load_user_model

    model = load_user_model(
        f"{ROOT / 'examples/models/regression.py'}:model", ROOT / "examples/models/regression.json"
    )
    assert model.parameters == {"alpha": (), "beta": (), "sigma": ()}
    assert model.data["x"].shape == model.data["y"].shape == (20,)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "toml"], ids=lambda b: b.page)
def test_toml_blocks_are_specs(block, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(block.body)
    load_spec(spec_file)


def _is_setup(command: str) -> bool:
    return command in _readme_commands()


def _is_tested_program(command: str) -> bool:
    argv = shlex.split(command)
    return argv[:1] == ["python"] and len(argv) > 1 and argv[1] in _tested_programs()


class Launch(NamedTuple):
    """A documented ``torchrun ... -m pyrovae ARGS`` line."""

    nproc: int
    one_machine: bool
    cuda: bool
    argv: list[str]
    """``["pyrovae", *ARGS]``."""


def _torchrun(command: str) -> Launch | None:
    """The ``torchrun`` line ``command`` read by torchrun's own parser; None for others."""
    argv = shlex.split(command)
    if argv[0] != "torchrun":
        return None
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(argv[1:])
    assert args.module and args.training_script == "pyrovae", f"{command!r}: not -m pyrovae"
    rest = ["pyrovae", *args.training_script_args]
    return Launch(int(args.nproc_per_node), args.nnodes == "1", "train.device=cuda" in rest, rest)


@pytest.mark.parametrize(("page", "command"), _commands(), ids=lambda v: str(v)[:60])
def test_shell_commands_parse(page, command):
    if _is_setup(command) or _is_tested_program(command):
        return
    launch = _torchrun(command)
    argv = launch.argv if launch else shlex.split(command)
    assert argv[0] == "pyrovae", f"{page}: {command!r} is neither pyrovae, set-up nor tested"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as stop:
        pytest.fail(f"{page}: {command!r} does not parse (exit {stop.code})")
    if args.command in SPEC_COMMANDS:
        path = ROOT / args.spec if args.spec else None
        load_spec(path, args.overrides)


# --- run, shrunk ------------------------------------------------------------------------------

_TRAIN = ["--quiet", "--set", "train.epochs=2", "--set", "data.limit=300"]
SHRINK = {
    "train": _TRAIN,
    "run": [*_TRAIN, "--particles", "20", "--local-points", "1"],
    "family": [*_TRAIN, "--particles", "20"],
    "evaluate": ["--quiet", "--particles", "20"],
    "compare": ["--quiet", "--samples", "200", "--seeds", "1", "--time-limit", "300"],
    "sbc": ["--quiet", "--replications", "20", "--samples", "19"],
    "inspect": [],
    "spec": [],
}
"""Arguments appended to each documented command so that it runs in seconds (later
options win)."""


def _shrunk(argv: list[str]) -> list[str]:
    command = argv[1]
    extra = list(SHRINK[command])
    if command == "train" and "--resume" in argv:
        extra = ["--quiet", "--set", "train.epochs=3"]  # the run already has 2
    if command == "compare" and "--points" in argv:  # a run directory
        extra = ["--quiet", "--points", "1", "--samples", "100"]
    if command == "sbc" and not argv[2].startswith("runs/"):  # a model, not a run directory
        extra += ["--warmup", "50"]
    return [*argv, *extra]


def _workspace(tmp_path: Path) -> Path:
    """A folder with the repository's examples, and ../shared beside it when there is one."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    if SHARED_DATA.parent.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    return work


PAGES = sorted({page for page, _ in _commands()})


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_shell_commands_run(page, tmp_path):
    work = _workspace(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYROVAE_MAX_THREADS": "1"}
    for _, command in (c for c in _commands() if c[0] == page):
        launch = _torchrun(command)
        argv = launch.argv if launch else shlex.split(command)
        if argv[0] != "pyrovae":
            continue  # set-up (CI runs it) and example programs (test_examples runs them)
        if not SHARED_DATA.is_dir() and any(w in command for w in NEEDS_SHARED):
            continue
        if launch and (not launch.one_machine or launch.cuda):
            continue  # several machines or GPUs: not here
        start = [sys.executable, "-m", "pyrovae.cli"]
        if launch:
            nproc = f"--nproc-per-node={min(launch.nproc, 2)}"
            start = [sys.executable, "-m", "torch.distributed.run", "--standalone", nproc]
            start += ["-m", "pyrovae"]
        run = subprocess.run(
            [*start, *_shrunk(argv)[1:]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, f"{page}: {command}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.lang == "python" and not SNIPPET.match(b.body.strip())],
    ids=lambda b: b.page,
)
def test_python_blocks_run(block, tmp_path, monkeypatch):
    monkeypatch.chdir(_workspace(tmp_path))
    exec(compile(block.body, block.page, "exec"), {"__name__": "__docs__"})
