"""Reliability: unwritable and shared output folders, methods that fail, and a command
line that checks its input before importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import tiny_spec

from pyrovae.cli import EXIT_PARTIAL, main
from pyrovae.errors import SpecError, UserError
from pyrovae.pipeline import build, train_model
from pyrovae.posterior.methods import METHODS
from pyrovae.posterior.run import compare_posterior, failure_reason
from pyrovae.posterior.targets import zoo
from pyrovae.train.guard import LOCK, ensure_writable, run_lock
from pyrovae.train.memory import COPIES_PER_PARAMETER, estimate_memory

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        **kwargs,
    )


# --- the command line checks first, imports later -----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["train", "--set", "model.latent_dim=-3"],
        ["run", "--set", "train.epoch=3"],
        ["family", "--set", "model.kind=nope"],
        ["evaluate"],
    ],
)
def test_help_and_input_errors_never_import_torch(argv: list[str]) -> None:
    done = _python(
        f"""
        import sys
        from pyrovae.cli import main
        try:
            status = main({argv!r})
        except SystemExit as stop:
            status = stop.code
        heavy = [m for m in ("torch", "pyro", "arviz") if m in sys.modules]
        print(status, heavy)
        """
    )
    assert done.stdout.strip().splitlines()[-1] in ("0 []", "2 []"), done.stdout + done.stderr


def test_import_pyrovae_is_light_until_a_name_is_used() -> None:
    done = _python(
        """
        import sys
        import pyrovae
        before = "torch" in sys.modules
        pyrovae.load_spec
        middle = "torch" in sys.modules
        pyrovae.fit
        print(before, middle, "torch" in sys.modules, sorted(pyrovae.__all__) == dir(pyrovae))
        """
    )
    assert done.stdout.split() == ["False", "False", "True", "True"], done.stderr


# --- output folders -------------------------------------------------------------------------


def test_an_unwritable_folder_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"--out: cannot write to .*a-file/run"):
        train_model(tiny_spec(), blocker / "run", progress=False)
    readonly = Path("/sys/pyrovae-test-run")  # read-only even for root
    if os.access("/sys", os.W_OK) and not readonly.parent.is_dir():
        pytest.skip("no read-only folder on this machine")
    with pytest.raises(UserError, match="cannot write to /sys/pyrovae-test-run"):
        ensure_writable(readonly)


def test_cli_reports_an_unwritable_out_in_one_line(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["train", "--out", str(blocker / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to" in err
    assert main(["evaluate", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()


HOLD_LOCK = """
import sys, time
from pyrovae.train.guard import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_at_once_and_a_dead_ones_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"being written by process {holder.pid}"):
            train_model(tiny_spec("train.epochs=1"), run_dir, progress=False)
    finally:
        holder.kill()  # as kill -9 would: no clean-up runs
        holder.wait()
    assert (run_dir / LOCK).read_text().strip() == str(holder.pid)  # the stale lock is left
    outcome = train_model(tiny_spec("train.epochs=1"), run_dir, progress=False)
    assert outcome.fit.epochs == 1
    assert not (run_dir / LOCK).exists()  # a writer that finishes leaves no lock behind


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with run_lock(tmp_path / "run") as run_dir:
        with run_lock(run_dir):
            assert (run_dir / LOCK).read_text().strip() == str(os.getpid())
        assert (run_dir / LOCK).exists()  # the inner release keeps the outer lock
    assert not (tmp_path / "run").exists()  # nothing written: no folder left either
    with run_lock(tmp_path / "run") as run_dir:  # released: taken again
        (run_dir / "file").write_text("x")
    assert [p.name for p in run_dir.iterdir()] == ["file"]


def test_a_model_too_big_for_memory_is_refused_before_anything_is_allocated(tmp_path: Path):
    with pytest.raises(SpecError, match=r"model: training needs about [\d.]+ GiB .* free on cpu"):
        train_model(tiny_spec("model.latent_dim=100000000"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing left behind


@pytest.mark.parametrize(
    "overrides",
    [(), ("model.kind=tied_ae",), ("model.prior.name=vamp", "model.prior.components=7")],
)
def test_memory_estimate_counts_the_parameters_of_the_built_model(overrides) -> None:
    spec = tiny_spec(*overrides)
    estimate = estimate_memory(spec, 64)
    model = build(spec, 64)
    assert estimate.parameters == sum(p.numel() for p in model.parameters())
    assert estimate.bytes > 4 * COPIES_PER_PARAMETER * estimate.parameters


# --- a method that fails ------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    name: str = "broken"
    family: str = "variational"
    chains: int = 1

    def run(self, target, *, seed, budget, progress=False, predictive=False):
        raise RuntimeError("diverged\nin step 7")


def test_a_failing_method_is_reported_and_the_others_are_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(METHODS, "broken", Broken())
    model = zoo.get_model("normal_normal")
    comparison = compare_posterior(model, ["broken", "auto_normal"], num_samples=500, seeds=1)
    assert [m.method for m in comparison.methods] == ["auto_normal"]
    assert comparison.failed == {"broken": "RuntimeError: diverged in step 7"}
    assert not comparison.complete
    paths = comparison.write(tmp_path)
    assert "- **broken**: RuntimeError: diverged in step 7" in paths["markdown"].read_text()
    rows = paths["methods"].read_text().splitlines()
    assert rows[1].startswith("auto_normal,") and rows[2].startswith("broken,")
    assert rows[2].endswith("failed: RuntimeError: diverged in step 7")


def test_cli_exit_status_says_partial(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys):
    monkeypatch.setitem(METHODS, "broken", Broken())
    out = tmp_path / "cmp"
    status = main(
        [
            "compare",
            "normal_normal",
            "--methods",
            "broken,auto_normal",
            "--samples",
            "500",
            "--seeds",
            "1",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert status == EXIT_PARTIAL == 3
    assert "broken: failed: RuntimeError: diverged in step 7" in capsys.readouterr().out
    assert (out / "posteriors" / "auto_normal.nc").is_file()


def test_failure_reason_is_one_bounded_line() -> None:
    reason = failure_reason(ValueError("x\n" * 500 + "Trace Shapes: a b c"))
    assert "\n" not in reason and len(reason) <= 300 and "Trace Shapes" not in reason
