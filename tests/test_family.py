"""Autoencoder runs end to end, and ``pyrovae family`` on tiny settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyrovae.cli import main
from pyrovae.errors import UserError
from pyrovae.family import family_specs
from pyrovae.pipeline import compare_run
from pyrovae.report.family import COLUMNS, markdown_table, reading
from pyrovae.spec import FAMILY_KINDS, load_spec

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
    assert [p.name for p in sorted(out.iterdir()) if p.is_dir()] == sorted(
        [*FAMILY_KINDS, "figures"]
    )
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
    assert rows[0].startswith("kind,") and [r.split(",")[0] for r in rows[1:]] == list(FAMILY_KINDS)
    for kind in FAMILY_KINDS:
        assert f"[{kind}]({kind}/report.md)" in report
    # A second family into the same folder is refused before anything trains.
    assert main([*args, *TINY]) == 2
    assert "already holds runs" in capsys.readouterr().err


def test_family_checks_every_kinds_spec_before_training(tmp_path):
    spec = load_spec(None, ["train.objective=iwae", "train.particles=5"])
    with pytest.raises(UserError, match=r"model.kind = 'ae'.*train.objective"):
        family_specs(spec, FAMILY_KINDS)
    with pytest.raises(UserError, match="--kinds"):
        family_specs(load_spec(), ["vae", "gan"])
    assert main(["family", "--out", str(tmp_path / "f"), "--kinds", "vae,vae", "--quiet"]) == 2
    assert not (tmp_path / "f").exists()


def test_markdown_table_bolds_the_best_and_reading_states_the_comparison():
    table = {
        "vae": {"latent_prior_energy_distance": 0.2, "latent_fitted_energy_distance": 0.3},
        "ae": {"latent_prior_energy_distance": 0.8, "latent_fitted_energy_distance": 0.1},
    }
    text = markdown_table(table)
    assert "| vae | **0.200** | 0.300 |" in text and "| ae | 0.800 | **0.100** |" in text
    lines = reading(table)
    assert "0.200 for the VAE, 0.800 for the best autoencoder (ae)" in lines[0]
    assert "the VAE's samples are 4.0x closer" in lines[0]
    assert "ae's samples are 3.0x closer" in lines[1]
