"""pyrovae compare / inspect: the ArviZ files, LOO lines and 1-based names they show."""

from __future__ import annotations

import numpy as np

from pyrovae.cli import main
from pyrovae.posterior import diagnostics
from pyrovae.train.rundir import CHECKPOINT


def test_compare_model_writes_loo_and_summaries_and_inspect_shows_them(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "normal_normal", "--methods", "auto_normal", "--samples", "400"]
    assert main([*args, "--seeds", "1", "--predictive", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    loo = [line for line in printed.splitlines() if line.startswith("loo y:")]
    assert [line.split(":")[1].strip() for line in loo] == ["reference", "auto_normal"]
    assert all("elpd_loo" in line and "MCSE" in line for line in loo)
    for name in ("loo.md", "loo.csv", "arviz_summary.md", "arviz_summary.csv", "comparison.md"):
        assert (out / name).stat().st_size > 100, name
    assert main(["inspect", str(out / "posteriors" / "auto_normal.nc")]) == 0
    printed = capsys.readouterr().out
    groups = next(line for line in printed.splitlines() if line.startswith("groups:"))
    assert "posterior_predictive" in groups and "sample_stats" in groups  # lp, log_q
    assert "loo y: elpd_loo" in printed and "over 20 observations" in printed


def test_inspect_labels_elements_from_one_as_the_tables_do(tmp_path, capsys):
    names = ["beta[1]", "beta[2]", "beta[3]"]
    draws = np.random.default_rng(0).normal(size=(400, 3))
    path = diagnostics.save(
        diagnostics.from_flat(draws, names, method="metropolis", chains=4), tmp_path / "b.nc"
    )
    assert main(["inspect", str(path)]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in names) and "beta[0]" not in printed


def test_predictive_applies_to_models_only(tmp_path, capsys):
    (tmp_path / CHECKPOINT).write_bytes(b"")  # looks like a run directory
    assert main(["compare", str(tmp_path), "--predictive", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--predictive apply to models" in err and err.count("\n") == 1
