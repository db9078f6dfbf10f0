"""Autoencoder runs end to end, and ``pyrovae family`` on tiny settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyrovae.cli import main
from pyrovae.errors import UserError
from pyrovae.family import COLUMNS, family_specs, markdown_table, reading
from pyrovae.pipeline import compare_run
from pyrovae.spec import KINDS, load_spec

TINY = ["--set", "data.limit=200", "--set", "train.epochs=3", "--quiet"]


def _links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_an_autoencoder_run_writes_its_report_and_cannot_be_locally_compared(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["run", "--out", str(out), "--set", "model.kind=denoising_ae", *TINY]) == 0
    assert "test reconstruction error" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test_log_likelihood_nats" not in metrics and "local_points" not in metrics
    assert metrics["test_objective_nats"] < 0
    assert set(metrics) >= {*COLUMNS, "train_objective_nats"}
    report = (out / "report.md").read_text()
    stems = {Path(link).stem for link in _links(report)}
    assert {"samples", "fitted_samples", "max_activation", "denoising"} <= stems
    assert "kl_per_dimension" not in stems
    for link in _links(report):
        assert (out / link).stat().st_size > 1000
    with pytest.raises(UserError, match="no posterior"):
        compare_run(out, points=1, progress=False)


def test_family_trains_every_kind_and_writes_table_figures_and_report(tmp_path, capsys):
    out = tmp_path / "family"
    args = ["family", "--out", str(out), "--set", "model.latent_dim=3", "--particles", "5"]
    assert main([*args, *TINY]) == 0
    printed = capsys.readouterr().out
    assert "denoising autoencoder" in printed and "report:" in printed
    assert [p.name for p in sorted(out.iterdir()) if p.is_dir()] == sorted([*KINDS, "figures"])
    report = (out / "family.md").read_text()
    for link in _links(report):
        assert (out / link).stat().st_size > 1000
    assert {Path(link).stem for link in _links(report)} == {
        "family_samples",
        "family_fitted_samples",
        "family_interpolation",
        "family_distances",
    }
    rows = (out / "family.csv").read_text().splitlines()
    assert rows[0].startswith("kind,") and [r.split(",")[0] for r in rows[1:]] == list(KINDS)
    for kind in KINDS:
        assert f"[{kind}]({kind}/report.md)" in report
    # A second family into the same folder is refused before anything trains.
    assert main([*args, *TINY]) == 2
    assert "already holds runs" in capsys.readouterr().err


def test_family_checks_every_kinds_spec_before_training(tmp_path):
    spec = load_spec(None, ["train.objective=iwae", "train.particles=5"])
    with pytest.raises(UserError, match=r"model.kind = 'ae'.*train.objective"):
        family_specs(spec, KINDS)
    with pytest.raises(UserError, match="--kinds"):
        family_specs(load_spec(), ["vae", "gan"])
    assert main(["family", "--out", str(tmp_path / "f"), "--kinds", "vae,vae", "--quiet"]) == 2
    assert not (tmp_path / "f").exists()


def test_markdown_table_bolds_the_best_and_reading_states_the_comparison():
    table = {
        "vae": {"latent_prior_sample_distance": 1.0, "latent_fitted_sample_distance": 1.3},
        "ae": {"latent_prior_sample_distance": 1.5, "latent_fitted_sample_distance": 1.2},
    }
    text = markdown_table(table)
    assert "| vae | **1.000** | 1.300 |" in text and "| ae | 1.500 | **1.200** |" in text
    lines = reading(table)
    assert "33.3% closer to" in lines[0] and "8.3% farther from" in lines[1]
