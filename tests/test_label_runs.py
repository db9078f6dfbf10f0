"""The label models through the pipeline: run directory, metrics, figures, report,
resume, the local posteriors p(z | x, y) and the commands that refuse them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.data.labelled import split_rows
from pyrovae.models import M2
from pyrovae.pipeline import compare_run, evaluate_run, load_trained, train_model
from pyrovae.report.label_figures import plot_class_transfer, plot_confusion
from pyrovae.spec import load_spec

TINY = ["model.encoder.hidden=[16]", "model.decoder.hidden=[16]", "train.batch_size=64"]


def _spec(kind: str, epochs: int, *extra: str):
    return load_spec(None, [f"model.kind={kind}", f"train.epochs={epochs}", *TINY, *extra])


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("m2") / "run"
    spec = _spec("m2", 4, "data.labelled=5", "train.labelled_per_batch=8")
    train_model(spec, run, progress=False)
    evaluate_run(run, particles=20, progress=False)
    return run


def test_m2_run_reports_accuracy_both_elbos_and_its_figures(m2_run):
    metrics = json.loads((m2_run / "metrics.json").read_text())
    for key in ("test_accuracy", "test_labelled_elbo_nats", "test_unlabelled_elbo_nats"):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["test_accuracy"] <= 1
    # the test ELBO is U(x), the class summed out: the unlabelled ELBO of the same rows,
    # a bound under the importance-sampled log p(x) of those rows (k = 20, labels hidden)
    assert metrics["test_elbo_nats"] == pytest.approx(metrics["test_unlabelled_elbo_nats"], abs=0.5)
    assert metrics["test_unlabelled_elbo_nats"] <= metrics["test_log_likelihood_nats"] + 0.1
    figures = {p.stem for p in (m2_run / "figures").iterdir()}
    assert {"class_samples", "class_transfer", "confusion", "latent_space"} <= figures
    assert "manifold" not in figures  # a grid of z means nothing without a class
    report = (m2_run / "report.md").read_text()
    assert "test_accuracy" in report and "![confusion](figures/confusion.png)" in report


def test_m2_accuracy_is_its_classifier_on_the_test_split(m2_run):
    trained = load_trained(m2_run)
    assert isinstance(trained.model, M2)
    y = split_rows(trained.data.test)[1]
    accuracy = (trained.model.classify(trained.data.test).argmax(-1) == y).double().mean()
    metrics = json.loads((m2_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(accuracy.item())
    assert int(trained.model.labelled_total) == 50  # 5 per class kept their label


def test_m2_resumes_exactly(tmp_path):
    spec = _spec("m2", 4, "data.labelled=5")
    whole = train_model(spec, tmp_path / "whole", progress=False)
    train_model(_spec("m2", 2, "data.labelled=5"), tmp_path / "half", progress=False)
    resumed = train_model(spec, tmp_path / "half", resume=True, progress=False)

    def figures(history):  # everything but the seconds an epoch took
        return [record._replace(seconds=0.0) for record in history]

    assert figures(resumed.fit.state.history) == figures(whole.fit.state.history)
    resumed_weights = resumed.model.state_dict()
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed_weights[name]), name  # bit-identical


def test_cvae_run_compares_the_local_posteriors_given_the_class(tmp_path, capsys):
    run = tmp_path / "cvae"
    assert (
        main(
            [
                "train",
                "--quiet",
                "--out",
                str(run),
                "--set=model.kind=cvae",
                "--set=train.epochs=3",
                *[f"--set={o}" for o in TINY],
            ]
        )
        == 0
    )
    assert "test ELBO" in capsys.readouterr().out
    evaluate_run(run, particles=20, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test_accuracy" not in metrics and np.isfinite(metrics["test_log_likelihood_nats"])
    _, local, _ = compare_run(
        run, points=2, num_samples=60, warmup_steps=40, num_chains=1, progress=False
    )
    assert local.x.shape == (2, 65)  # the rows carry their class
    assert local.draws["nuts"].shape == (60, 2, 2)
    # the model the samplers saw is p(z) p(x | z, y): its log-likelihood is p(x | z, y)
    trained = load_trained(run)
    z = torch.as_tensor(local.draws["nuts"][:3], dtype=torch.float32)
    pixels = trained.model.pixels(local.x)
    with torch.no_grad():
        expected = trained.model.observation(z, local.x).log_prob(pixels)
    np.testing.assert_allclose(local.log_likelihood["nuts"][:3], expected.numpy(), rtol=1e-5)
    assert (run / "local_posteriors" / "comparison.md").is_file()


def test_sbc_refuses_a_label_model(m2_run, capsys):
    assert main(["sbc", str(m2_run), "--quiet"]) == 2
    assert "needs a class" in capsys.readouterr().err


def test_class_transfer_figure_puts_each_input_before_its_decodings(tmp_path, saved):
    inputs = torch.rand(2, 4)
    decoded = torch.rand(2, 3, 4)
    plot_class_transfer(inputs, decoded, (2, 2), tmp_path / "t.png")
    mosaic = np.ma.filled(saved[0].axes[0].images[0].get_array(), np.nan)
    assert mosaic.shape == (2 * 3 - 1, 4 * 3 - 1)  # 2 rows, 4 columns of 2x2, 1-px gutters
    np.testing.assert_allclose(mosaic[:2, :2].ravel(), inputs[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(mosaic[3:5, 9:11].ravel(), decoded[1, 2].numpy(), rtol=1e-6)


def test_confusion_figure_shades_each_row_by_its_share(tmp_path, saved):
    confusion = torch.tensor([[8, 2], [1, 9]])
    plot_confusion(confusion, tmp_path / "c.png", accuracy=0.85)
    shown = saved[0].axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, [[0.8, 0.2], [0.1, 0.9]])
    assert "85.0%" in saved[0].axes[0].get_title()
