"""Documentation that is generated or promised stays true."""

from __future__ import annotations

import re
from pathlib import Path

from pyrovae._specdoc import spec_reference

ROOT = Path(__file__).resolve().parents[1]


def test_spec_reference_doc_is_in_sync():
    doc = ROOT / "docs" / "spec.md"
    assert doc.read_text() == spec_reference(), "run: python -m pyrovae._specdoc > docs/spec.md"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(pip install .* && python -m pytest)$", readme, re.M)
    assert command, "README must give the one-line test command"
    assert command.group(1) in (ROOT / ".ci" / "run").read_text()
