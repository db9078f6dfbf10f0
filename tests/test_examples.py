"""The tutorials in examples/ run as a user runs them (at --fast size) and produce what
their documentation pages show: figures, tables, ArviZ files with the right contents."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["vae", "ae", "tied_ae", "denoising_ae", "sparse_ae"]


def _run(script: str, out: Path) -> str:
    """Run ``examples/<script> --fast --out OUT`` in a fresh interpreter, from a folder
    outside the repository; its standard output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYROVAE_MAX_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--fast", "--out", str(out)],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"wrote {out}" in done.stdout  # each script says where its products are
    return done.stdout


def _assert_picture(path: Path, min_bytes: int = 8000) -> None:
    """A PNG that opens, of some size, and is not one flat colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > min_bytes, path
    pixels = imread(path)
    assert pixels.shape[0] > 150 and pixels.shape[1] > 300, pixels.shape
    assert np.ptp(pixels[..., :3]) > 0.5, "the picture is blank"


def _markdown_rows(text: str) -> list[list[str]]:
    """The body rows of the first markdown table in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert re.fullmatch(r"\|( -+:? \|)+", lines[1]), lines[1]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


class TestFromPython:
    """Tutorials 1 and 2: a VAE, and your own Pyro model, stage by stage from Python.
    (pytest-xdist's loadscope gives each class to one worker: the scripts run two by two.)"""

    def test_tutorial_1_trains_evaluates_and_draws_a_vae(self, tmp_path):
        out = tmp_path / "t1"
        stdout = _run("tutorial_1_vae_from_python.py", out)
        found = re.search(r"test log p\(x\) = (\S+) ± (\S+) nats \(k = 50, (\d+) images\)", stdout)
        log_px, se, images = float(found[1]), float(found[2]), int(found[3])
        assert math.isfinite(log_px) and log_px < 0 and 0 < se < 1 and images > 100
        found = re.search(r"test ELBO = (\S+) = reconstruction (\S+) - KL (\S+);", stdout)
        elbo, reconstruction, kl = (float(v) for v in found.groups())
        assert elbo == pytest.approx(reconstruction - kl, abs=2e-3) and kl >= 0
        assert elbo < log_px + 3 * se  # the ELBO bounds log p(x) from below
        metrics = dict(_markdown_rows((out / "metrics.md").read_text()))
        assert float(metrics["test_log_likelihood_nats"]) == pytest.approx(log_px, abs=1e-3)
        assert float(metrics["test_elbo_nats"]) == pytest.approx(elbo, abs=1e-3)
        assert metrics["test_log_likelihood_particles"] == "50"
        _assert_picture(out / "vae.png")

    def test_tutorial_2_compares_guides_with_nuts_and_reads_them_in_arviz(self, tmp_path):
        import arviz as az

        out = tmp_path / "t2"
        stdout = _run("tutorial_2_your_own_model.py", out)
        methods = ["reference", "nuts", "auto_normal", "auto_mvn"]
        data = json.loads((out / "data.json").read_text())
        for method in methods:
            idata = az.from_netcdf(out / "posteriors" / f"{method}.nc")
            assert set(idata.posterior.data_vars) == {"alpha", "beta"}
            assert idata.log_likelihood["y"].shape[-1] == len(data["y"]) == 12
            np.testing.assert_allclose(idata.observed_data["y"], data["y"])
            assert idata.posterior.sizes["chain"] == (4 if method == "nuts" else 1)
        with (out / "summary_table.csv").open() as f:
            table = {(r["method"], r["parameter"]): r for r in csv.DictReader(f)}
        assert set(table) == {(m, p) for m in methods for p in ("alpha", "beta")}
        # The reference is the exact posterior the script computed in closed form.
        x = np.array(data["x"])
        design = np.column_stack([np.ones_like(x), x])
        cov = np.linalg.inv(design.T @ design + np.eye(2) / 100.0)
        for i, name in enumerate(("alpha", "beta")):
            assert float(table["reference", name]["sd"]) == pytest.approx(cov[i, i] ** 0.5, 0.03)
            ratio = {m: float(table[m, name]["sd"]) / cov[i, i] ** 0.5 for m in methods[1:]}
            assert ratio["auto_normal"] < 0.5  # mean field: too narrow on a correlated posterior
            assert 0.75 < ratio["auto_mvn"] < 1.25 and 0.75 < ratio["nuts"] < 1.25
        assert re.search(r"auto_normal .* verdict: family limit", stdout)
        _assert_picture(out / "forest_by_method.png")


class TestRunDirectories:
    """Tutorials 3 and 4: local posteriors of a trained run, and the autoencoder family."""

    def test_tutorial_3_tabulates_the_gaps_of_local_posteriors(self, tmp_path):
        import arviz as az

        out = tmp_path / "t3"
        stdout = _run("tutorial_3_local_posteriors.py", out)
        text = (out / "gaps.md").read_text()
        assert text.strip() in stdout
        rows = _markdown_rows(text)
        assert [row[0] for row in rows] == ["1", "2", "mean"]
        values = np.array([[float(cell) for cell in row[1:]] for row in rows])
        log_px, elbo_star, elbo_phi, approximation, amortization = values.T
        assert np.all(np.isfinite(values)) and np.all(log_px < 0)
        np.testing.assert_allclose(approximation, log_px - elbo_star, atol=2e-3)
        np.testing.assert_allclose(amortization, elbo_star - elbo_phi, atol=2e-3)
        assert np.all(amortization > -0.05) and np.all(approximation > -0.05)  # >= 0 up to noise
        np.testing.assert_allclose(values[-1], values[:-1].mean(0), atol=2e-3)
        nuts = az.from_netcdf(out / "run" / "local_posteriors" / "posteriors" / "reference.nc")
        sizes = {"chain": 2, "draw": 50, "point": 2, "latent": 2}
        assert dict(nuts.posterior["z"].sizes) == sizes  # NUTS is the reference
        for method in ("amortized", "per_point"):
            assert f"{method:10} vs NUTS: sd ratio" in stdout
        _assert_picture(out / "local_posteriors.png")

    def test_tutorial_4_trains_every_kind_and_tabulates_them(self, tmp_path):
        out = tmp_path / "t4"
        stdout = _run("tutorial_4_autoencoder_family.py", out)
        rows = _markdown_rows((out / "family_table.md").read_text())
        assert [row[0] for row in rows] == KINDS
        for kind, *cells in rows:
            values = [float(cell) for cell in cells]
            assert len(values) == 5 and all(math.isfinite(v) and v >= 0 for v in values)
            assert values[-1] >= 1  # interpolation roughness: largest step / mean step
            # the table shows what each kind's run wrote into its metrics.json
            metrics = json.loads((out / "family" / kind / "metrics.json").read_text())
            assert values[0] == pytest.approx(metrics["latent_prior_energy_distance"], abs=1e-3)
            assert values[2] == pytest.approx(metrics["test_reconstruction_error"], abs=1e-3)
        assert (out / "family_table.md").read_text().strip() in stdout
        assert "energy distance to the data" in stdout  # the reading, in words
        _assert_picture(out / "family_codes.png")
        _assert_picture(out / "family" / "figures" / "family_samples.png")
