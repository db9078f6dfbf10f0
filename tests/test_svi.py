"""The training loop: correctness on linear-Gaussian data, resume, NaN, early stopping."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import synthetic_spec, tiny_spec

import pyrovae.train.loop as svi
from pyrovae.data import load_data
from pyrovae.errors import NonFiniteLossError, SpecError, UserError
from pyrovae.pipeline import build, train_model
from pyrovae.spec import TrainSpec
from pyrovae.train import fit, placement, schedule
from pyrovae.train.objectives import estimate_elbo
from pyrovae.train.rundir import load_checkpoint, read_metrics


def test_linear_gaussian_test_elbo_is_close_below_exact_log_likelihood(tmp_path):
    """The issue's correctness figure: shipped synthetic spec, seeded.

    The gap log p(x) - ELBO is KL(q(z|x) || p(z|x)) >= 0 averaged over the test
    set, estimated with one draw of z per example. Measured on the shipped spec
    (1,000 test examples) for ``train.seed`` 0-4: 0.099, 0.134, 0.084, 0.100,
    0.103 nats (mean 0.104, sd 0.018 including the Monte Carlo SE of about
    0.015). The bound 0.2 nats is 5 sds above the mean and 0.07 above the
    largest. Training with beta stuck at 0.5 gives a gap of 0.28 nats (while
    log p(x) stays within 0.05 of the truth); the old bound of 1 nat let it pass.
    The bound holds for the shipped data (``data.seed`` 0): ``data.seed=1``
    fits worse (gap 0.31, log p(x) 0.54 below the truth).
    """
    outcome = train_model(synthetic_spec(), tmp_path / "run", progress=False)
    m = outcome.metrics
    gap = m["test_exact_log_likelihood_nats"] - m["test_elbo_nats"]
    # The sign holds per example in expectation, so only the ELBO's Monte Carlo
    # error can make the estimated gap negative. Its SE comes from two further
    # independent draws: Var(e1 - e2) = 2 Var_MC(e), per example.
    vae, test = outcome.model.eval(), outcome.data.test
    torch.manual_seed(1)
    with torch.no_grad():
        draws = [estimate_elbo(vae.model, vae.guide, test).double() for _ in range(2)]
    se = ((draws[0] - draws[1]).var() / 2 / test.shape[0]).sqrt().item()
    assert 0 < se < 0.03  # small enough for the sign check to bite
    assert -4 * se < gap < 0.2
    # the trained model also explains the data as well as the generating one
    assert abs(m["test_exact_log_likelihood_nats"] - m["test_true_log_likelihood_nats"]) < 0.1


@pytest.mark.parametrize("objective", ["elbo", "analytic_kl", "iwae", "iwae_dreg"])
def test_each_objective_improves_the_validation_elbo(objective):
    spec = tiny_spec(f"train.objective={objective}", "train.particles=2", "train.epochs=6")
    data = load_data(spec.data, "bernoulli")
    vae = build(spec, data.dim)
    result = fit(vae, data, spec.train, progress=False)
    first, last = result.history[0], result.history[-1]
    assert len(result.history) == 6 and result.epochs == 6
    assert last.validation_elbo_nats > first.validation_elbo_nats + 1.0
    assert all(math.isfinite(r.train_objective_nats) for r in result.history)


def test_resume_gives_identical_results(tmp_path):
    full_spec = tiny_spec("train.epochs=4", "train.kl_warmup_epochs=3")
    full = train_model(full_spec, tmp_path / "full", progress=False)
    half_spec = tiny_spec("train.epochs=2", "train.kl_warmup_epochs=3")
    train_model(half_spec, tmp_path / "half", progress=False)
    resumed = train_model(full_spec, tmp_path / "half", resume=True, progress=False)
    strip = [r[:-1] for r in full.fit.history]  # drop wall time
    assert [r[:-1] for r in resumed.fit.history] == strip
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert full.metrics["test_elbo_nats"] == resumed.metrics["test_elbo_nats"]
    assert load_checkpoint(tmp_path / "half").state.epoch == 4


def test_resume_refuses_a_changed_spec(tmp_path):
    train_model(tiny_spec(), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match=r"model\.latent_dim differs"):
        train_model(tiny_spec("model.latent_dim=3"), tmp_path / "run", resume=True, progress=False)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real = svi.make_objective
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # make_objective's own arguments, whatever they are
        objective = real(*args, **kwargs)

        def loss(*args):
            calls["n"] += 1
            value = objective(*args)
            return value * math.nan if calls["n"] == 4 else value

        return loss

    monkeypatch.setattr(svi, "make_objective", poisoned)
    spec = tiny_spec("train.epochs=3", "train.batch_size=100")  # 3 steps per epoch
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 1") as info:
        train_model(spec, tmp_path / "run", progress=False)
    assert (info.value.epoch, info.value.step) == (2, 1)
    assert "\n" not in str(info.value)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.state.epoch == 1
    assert all(torch.isfinite(v).all() for v in checkpoint.state.model.values())
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(rows) == 2  # header + epoch 1
    assert read_metrics(tmp_path / "run") == {}


def test_early_stopping_stops_after_patience_and_restores_best(monkeypatch):
    values = iter([1.0, 3.0, 2.0, 2.5, 0.0, 0.0])
    monkeypatch.setattr(
        svi, "estimate_elbo", lambda model, guide, x: torch.full((x.shape[0],), next(values))
    )
    spec = tiny_spec("train.epochs=6", "train.early_stopping_patience=2")
    data = load_data(spec.data, "bernoulli")
    vae = build(spec, data.dim)
    result = fit(vae, data, spec.train, progress=False)
    assert result.stop_reason == "early_stopping" and result.epochs == 4
    assert result.state.best_epoch == 2
    for key, value in vae.state_dict().items():
        assert torch.equal(value, result.state.best_model[key])
    assert not torch.equal(result.state.model["encoder.0.weight"], vae.encoder[0].weight)


def test_time_limit_stops_after_the_epoch_that_passes_it():
    spec = tiny_spec("train.epochs=50", "train.max_seconds=1e-9")
    data = load_data(spec.data, "bernoulli")
    result = fit(build(spec, data.dim), data, spec.train, progress=False)
    assert result.stop_reason == "time_limit" and result.epochs == 1
    full = fit(build(spec, data.dim), data, tiny_spec("train.epochs=2").train, progress=False)
    assert full.stop_reason == "epochs" and full.epochs == 2


def test_kl_warm_up_schedule():
    train = TrainSpec(beta=2.0, kl_warmup_epochs=2)
    assert schedule.beta_at(train, 1, 10) == pytest.approx(0.1)
    assert schedule.beta_at(train, 10, 10) == pytest.approx(1.0)
    assert schedule.beta_at(train, 20, 10) == pytest.approx(2.0)
    assert schedule.beta_at(train, 500, 10) == pytest.approx(2.0)
    assert schedule.beta_at(TrainSpec(beta=0.5), 1, 10) == 0.5


def test_beta_zero_lets_the_kl_grow():
    """With beta = 0 nothing pulls q towards the prior: the KL ends far larger."""
    kls = []
    for beta in (0.0, 1.0):
        spec = tiny_spec(f"train.beta={beta}", "train.epochs=8")
        data = load_data(spec.data, "bernoulli")
        vae = build(spec, data.dim)
        fit(vae, data, spec.train, progress=False)
        with torch.no_grad():
            loc, scale = vae.encode(data.test)
            kls.append((0.5 * (scale**2 + loc**2 - 1) - scale.log()).sum(-1).mean().item())
    assert kls[0] > 2 * kls[1]


def test_cuda_requested_without_gpu_is_a_spec_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SpecError, match=r"train\.device"):
        placement.resolve_device("cuda")


def test_cosine_schedule_anneals_over_steps_or_over_the_time_budget():
    cosine = TrainSpec(lr=0.01, lr_schedule="cosine", max_seconds=100.0)
    assert schedule.lr_at(cosine, 0.0, 0.0) == pytest.approx(0.01)
    assert schedule.lr_at(cosine, 0.5, 0.0) == pytest.approx(0.01 * (0.01 + 0.99 * 0.5))
    assert schedule.lr_at(cosine, 0.1, 50.0) == schedule.lr_at(cosine, 0.5, 0.0)  # time binds first
    assert schedule.lr_at(cosine, 0.0, 500.0) == pytest.approx(0.01 * schedule.LR_FLOOR)
    assert schedule.lr_at(TrainSpec(lr=0.01), 0.9, 1e9) == 0.01


def test_a_cosine_run_ends_near_the_floor_and_keeps_its_schedule_on_resume(tmp_path):
    spec = tiny_spec("train.epochs=4", "train.lr_schedule=cosine")
    full = train_model(spec, tmp_path / "full", progress=False)
    lr = full.fit.state.optimizer["param_groups"][0]["lr"]
    assert spec.train.lr * schedule.LR_FLOOR <= lr < 0.1 * spec.train.lr
    half = tiny_spec("train.epochs=2", "train.lr_schedule=cosine")
    train_model(half, tmp_path / "half", progress=False)
    with pytest.raises(UserError, match="lr_schedule"):  # the schedule is part of the run
        train_model(tiny_spec("train.epochs=4"), tmp_path / "half", resume=True, progress=False)
