"""The command line: smoke runs on tiny settings and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyrovae.cli import main
from pyrovae.train.rundir import load_checkpoint

TINY = [
    "--set", "model.encoder.hidden=[16]",
    "--set", "model.decoder.hidden=[16]",
    "--set", "data.limit=200",
    "--set", "train.batch_size=100",
    "--quiet",
]  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyrovae.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_train_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=2", *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "architecture.md",
        "checkpoint.pt",
        "history.csv",
        "metrics.json",
        "spec.toml",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("train_elbo_nats", "test_elbo_nats", "epochs", "seconds"):
        assert key in metrics
    assert metrics["epochs"] == 2 and metrics["test_elbo_nats"] < 0
    assert "hidden = [16]" in (out / "spec.toml").read_text()
    assert "test ELBO" in capsys.readouterr().out


def test_resume_continues_to_more_epochs(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=1", *TINY]) == 0
    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=3", "--quiet"]) == 0
    assert load_checkpoint(out).state.epoch == 3
    assert len((out / "history.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.encoder.hidden=[256,-3]"],
         "model.encoder.hidden[1]: expected a positive integer, got -3"),
        (["--set", "model.encodr.hidden=[3]"], "did you mean 'encoder'?"),
        (["--set", "data.name=arrays", "--set", "data.path=missing.npy"],
         "data: file missing.npy does not exist"),
        (["missing.toml"], "spec file 'missing.toml' does not exist"),
        (["--resume"], "holds no run to continue (no spec.toml)"),
        (["--set", "oops"], "expected key.path=value"),
    ],
)  # fmt: skip
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_resume_without_out_is_a_user_error(capsys):
    assert main(["train", "--resume"]) == 2
    assert "--resume needs --out RUN_DIR" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=1", *TINY]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(out), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_console_script_errors_have_no_traceback(tmp_path):
    done = _run("train", "--out", str(tmp_path / "r"), "--set", "train.lr=-1")
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "pyrovae train: error: train.lr: expected a positive number, got -1"
    )


def test_help_and_argument_errors():
    assert _run("train", "--help").returncode == 0
    bad = _run("train", "--no-such-flag")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert _run().returncode == 2


def test_run_writes_a_report_whose_figures_exist(tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "--out",
        str(out),
        "--set",
        "train.epochs=2",
        "--particles",
        "20",
        "--local-points",
        "2",
        *TINY,
    ]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {Path(link).stem for link in links} == {
        "training_curves",
        "reconstructions",
        "samples",
        "fitted_samples",
        "latent_space",
        "manifold",
        "interpolation",
        "kl_per_dimension",
        "max_activation",
        "denoising",
        "marginals",
        "pairs",
        "density",
        "forest",
        "pair",
    }
    assert "## Local posteriors p(z|x)" in report and "amortization gap" in report
    for link in links:
        assert (out / link).is_file() and (out / link).stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_log_likelihood_particles"] == 20
    assert metrics["test_elbo_nats"] < metrics["test_log_likelihood_nats"] < 0
    assert metrics["local_points"] == 2 and metrics["local_amortization_gap_nats"] > -0.1
    assert "| `test_log_likelihood_nats` |" in report and "```toml" in report


def test_evaluate_adds_metrics_to_a_trained_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=1", *TINY]) == 0
    assert "test_log_likelihood_nats" not in json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--particles", "10", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_log_likelihood_particles"] == 10
    assert "report:" in capsys.readouterr().out


def test_evaluate_errors(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "is not a run directory (it does not exist)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    bad = _run("evaluate", str(tmp_path), "--particles", "0")
    assert bad.returncode == 2 and "expected a positive integer, got '0'" in bad.stderr


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def test_compare_builtin_model_writes_the_promised_tables(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "normal_normal",
        "--methods",
        "metropolis,auto_normal",
        "--samples",
        "1000",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    summary, methods = _csv(out / "summary.csv"), _csv(out / "methods.csv")
    assert {"method", "parameter", "mean_error_sd", "sd_ratio", "w1_sd"} <= set(summary[0])
    assert {"method", "energy", "mmd", "khat", "seconds", "ess_per_second"} <= set(methods[0])
    rows = {r["method"]: r for r in methods}
    assert rows["metropolis"]["khat"] == "" and rows["metropolis"]["ess_per_second"] != ""
    assert rows["auto_normal"]["khat"] != "" and rows["auto_normal"]["ess_per_second"] == ""
    assert {r["parameter"] for r in summary} == {"mu"}
    assert (out / "figures" / "marginals.png").stat().st_size > 1000
    assert "reference: analytic" in capsys.readouterr().out
    names = sorted(p.name for p in (out / "posteriors").iterdir())
    assert names == ["auto_normal.nc", "metropolis.nc", "reference.nc"]
    for figure in ("density", "forest"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000


def test_inspect_prints_the_summary_of_a_saved_posterior(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "blr_known_noise",
        "--methods",
        "metropolis",
        "--samples",
        "800",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["inspect", str(out / "posteriors" / "metropolis.nc")]) == 0
    printed = capsys.readouterr().out
    assert "method=metropolis" in printed and "ess_bulk" in printed and "r_hat" in printed
    assert all(f"beta[{i}]" in printed for i in range(1, 4))  # 1-based, as in the tables
    assert main(["inspect", str(tmp_path / "missing.nc")]) == 2


def test_compare_a_trained_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=2", *TINY]) == 0
    args = ["compare", str(out), "--points", "2", "--samples", "200", "--quiet"]
    assert main(args) == 0
    methods = {r["method"] for r in _csv(out / "local_posteriors" / "methods.csv")}
    assert methods == {"amortized", "per_point", "metropolis"}
    from pyrovae.posterior import diagnostics

    nuts = diagnostics.load(out / "local_posteriors" / "posteriors" / "reference.nc")
    amortized = diagnostics.load(out / "local_posteriors" / "posteriors" / "amortized.nc")
    assert nuts.posterior["z"].shape[-2:] == amortized.posterior["z"].shape[-2:] == (2, 2)
    assert "## Local posteriors p(z|x)" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eight_schools"], "did you mean"),
        (["normal_normal", "--methods", "gibbs"], "unknown method 'gibbs'"),
        (["nothing.py:model"], "model file 'nothing.py' does not exist"),
        (["normal_normal", "--data", "d.json"], "--data applies to a model given as"),
    ],
)
def test_compare_errors_exit_2_with_one_line(capsys, args, message):
    assert main(["compare", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_version_is_the_package_version(capsys):
    import pyrovae

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyrovae {pyrovae.__version__}"


def test_spec_prints_what_train_would_run(tmp_path, capsys):
    from pyrovae.spec import load_spec

    assert main(["spec", "--set", "train.epochs=7", "--set", "model.latent_dim=3"]) == 0
    text = capsys.readouterr().out
    saved = tmp_path / "my.toml"
    saved.write_text(text)
    assert load_spec(saved) == load_spec(None, ["train.epochs=7", "model.latent_dim=3"])
    assert "epochs = 7" in text and "[model.encoder]" in text
    assert main(["spec", str(saved)]) == 0
    assert capsys.readouterr().out == text  # a round trip: the same TOML again


def test_spec_rejects_a_bad_field_in_one_line(capsys):
    assert main(["spec", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.epoch: unknown key; did you mean 'epochs'?" in err[0]
