"""Traced training steps (pyrovae.train.traced) against the eager Pyro objective.

The traced step must be the eager one with Python taken out: the same random draws,
the same loss and gradients (to float rounding), the parameters seen as the optimizer
moves them, nothing traced where a trace would be wrong, and no random numbers spent
on tracing (a resumed run must repeat the uninterrupted one).
"""

from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.models import VAE, build_model
from pyrovae.models.vae import data_plate
from pyrovae.spec import ModelSpec, NetworkSpec
from pyrovae.train import fit
from pyrovae.train import traced as traced_module
from pyrovae.train.objectives import make_objective
from pyrovae.train.traced import TracedObjective
from tests.helpers import ROOT, tiny_spec

N_TOTAL = 1000
RTOL = 1e-5
"""float32 reassociation of the plate scale times beta; the draws are the same."""


def _x(rows: int = 24, dim: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, dim, generator=g) < 0.3).float()


def _loss_and_grads(objective, module, x, beta, seed):
    torch.manual_seed(seed)
    loss = objective(module.model, module.guide, x, N_TOTAL, beta)
    params = [p for p in module.parameters() if p.requires_grad]
    return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)


def _assert_close(a, b):
    loss_a, grads_a = a
    loss_b, grads_b = b
    assert torch.allclose(loss_a, loss_b, rtol=RTOL)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        # beta = 0 scales the prior out in a trace (zero gradient) and masks it eagerly
        # (no gradient): the same step
        if ga is None or gb is None:
            assert (ga if gb is None else gb) is None or not (ga if gb is None else gb).any()
            continue
        scale = gb.abs().max().clamp_min(1e-12)
        assert ((ga - gb).abs().max() / scale).item() < RTOL


KINDS = [
    ("vae", "elbo", []),
    ("vae", "analytic_kl", []),
    ("vae", "iwae", ["train.particles=4"]),
    ("vae", "elbo", ["model.prior.name=vamp", "model.prior.components=5"]),
    ("vae", "iwae", ["model.prior.name=vamp", "model.prior.components=5", "train.particles=3"]),
    ("vae", "elbo", ["train.particles=3"]),
    ("ae", "elbo", []),
    ("tied_ae", "elbo", ["model.encoder.hidden=[]", "model.decoder.hidden=[]"]),
    ("sparse_ae", "elbo", []),
    ("denoising_ae", "elbo", []),
]


@pytest.mark.parametrize(("kind", "objective", "extra"), KINDS)
def test_traced_step_equals_eager_step_for_every_kind(kind, objective, extra):
    spec = tiny_spec(f"model.kind={kind}", f"train.objective={objective}", *extra)
    torch.manual_seed(0)
    module = build_model(spec.model, 64)
    module.train()
    eager = make_objective(objective, spec.train.particles)
    traced = make_objective(objective, spec.train.particles, module)
    assert isinstance(traced, TracedObjective)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    x = _x()
    # KL warm-up (one trace for every beta < 1), then beta = 1 (a trace without the weight)
    for step, beta in enumerate([0.3, 0.0, 0.7, 1.0, 1.0, 1.0]):
        with pyro.validation_enabled(False):
            _assert_close(
                _loss_and_grads(traced, module, x, beta, seed=step),
                _loss_and_grads(eager, module, x, beta, seed=step),
            )
        # move the parameters: the trace must see the optimizer's in-place updates
        loss = eager(module.model, module.guide, x, N_TOTAL, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert traced.dropped == []
    assert len(traced._entries) == 2  # one shape: warm-up and after it
    assert all(entry.checked for entry in traced._entries.values())


def test_each_batch_shape_gets_its_own_trace():
    torch.manual_seed(0)
    vae = build_model(tiny_spec().model, 64)
    traced = make_objective("elbo", 1, vae)
    eager = make_objective("elbo", 1)
    with pyro.validation_enabled(False):
        for rows in (24, 7, 24, 7):
            x = _x(rows)
            _assert_close(
                _loss_and_grads(traced, vae, x, 1.0, seed=rows),
                _loss_and_grads(eager, vae, x, 1.0, seed=rows),
            )
    assert sorted(key[0][0] for key in traced._entries) == [7, 24]


def test_tracing_spends_no_random_numbers():
    """The first call traces; the random state afterwards must be the eager one's, or a
    run resumed mid-epoch (which traces at another step) would draw other noise."""
    torch.manual_seed(0)
    vae = build_model(tiny_spec().model, 64)
    x = _x()
    with pyro.validation_enabled(False):
        for objective in (make_objective("elbo", 1, vae), make_objective("elbo", 1)):
            torch.manual_seed(5)
            for _ in range(3):  # trace, check against eager, replay
                objective(vae.model, vae.guide, x, N_TOTAL, 1.0)
            state = torch.get_rng_state()
            torch.manual_seed(5)
            for _ in range(3):
                make_objective("elbo", 1)(vae.model, vae.guide, x, N_TOTAL, 1.0)
            assert torch.equal(state, torch.get_rng_state())


def test_iwae_dreg_stays_eager():
    """DReG scales the gradient reaching z with a hook, which a trace would drop."""
    vae = build_model(tiny_spec("train.objective=iwae_dreg").model, 64)
    assert not isinstance(make_objective("iwae_dreg", 3, vae), TracedObjective)


class _Branching(VAE):
    """A VAE whose model branches in Python on a sampled value: a trace freezes the
    branch taken when it was recorded, so it must be caught and dropped."""

    def model(self, x, n_total=None, beta=1.0):
        with data_plate(x, n_total):
            z = pyro.sample("z", self.prior(x))
            logits = self.decoder(z)
            if z[0, 0] > 0:  # value-dependent control flow
                logits = logits + 3.0
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def _branching_vae() -> _Branching:
    spec = ModelSpec(
        latent_dim=2, encoder=NetworkSpec(hidden=(8,)), decoder=NetworkSpec(hidden=(8,))
    )
    torch.manual_seed(0)
    return _Branching(spec, 64)


def _branch(vae: _Branching, x: torch.Tensor, seed: int) -> bool:
    """The branch the model takes under ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        loc, scale = vae.encode(x)
        return bool((loc + scale * torch.randn_like(loc))[0, 0] > 0)


def _run_against_eager(traced, vae, x, seeds) -> list[str]:
    """Traced and eager steps agree at every seed; the pyrovae warnings raised."""
    eager = make_objective("elbo", 1)
    with pyro.validation_enabled(False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in seeds:
            _assert_close(
                _loss_and_grads(traced, vae, x, 1.0, seed),
                _loss_and_grads(eager, vae, x, 1.0, seed),
            )
    return [str(w.message) for w in caught if "eagerly" in str(w.message)]


def test_a_model_branching_on_a_tensor_value_is_not_traced():
    vae = _branching_vae()
    x = _x()
    seeds = range(12)
    assert {_branch(vae, x, seed) for seed in seeds} == {True, False}
    traced = make_objective("elbo", 1, vae)
    messages = _run_against_eager(traced, vae, x, seeds)
    assert len(messages) == 1, messages
    assert "not traced (test_traced.py:" in messages[0]
    assert "turns a tensor into a Python value" in messages[0]
    assert [entry.graph for entry in traced._entries.values()] == [None]


def test_a_trace_that_disagrees_with_the_eager_step_is_dropped(monkeypatch):
    """Were the branching model's file trusted, the check on the second minibatch
    catches the frozen branch: seeds are chosen so the first two take different ones."""
    monkeypatch.setattr(traced_module, "_VETTED", (*traced_module._VETTED, ROOT / "tests"))
    vae = _branching_vae()
    x = _x()
    first = 0
    second = next(s for s in range(1, 50) if _branch(vae, x, s) != _branch(vae, x, first))
    traced = make_objective("elbo", 1, vae)
    messages = _run_against_eager(traced, vae, x, [first, second, *range(50, 60)])
    assert len(messages) == 1, messages
    assert "disagrees with the eager one (loss" in messages[0]
    assert len(traced.dropped) == 1


class _ScoreFunction(VAE):
    """A VAE with an extra global discrete latent: not reparameterised."""

    def model(self, x, n_total=None, beta=1.0):
        pyro.sample("c", dist.Bernoulli(0.5))
        super().model(x, n_total, beta)

    def guide(self, x, n_total=None, beta=1.0):
        pyro.sample("c", dist.Bernoulli(0.5))
        super().guide(x, n_total, beta)


def test_a_guide_with_a_score_function_site_is_not_traced():
    spec = ModelSpec(
        latent_dim=2, encoder=NetworkSpec(hidden=(8,)), decoder=NetworkSpec(hidden=(8,))
    )
    vae = _ScoreFunction(spec, 64)
    traced = make_objective("elbo", 1, vae)
    with pyro.validation_enabled(False):
        traced(vae.model, vae.guide, _x(), N_TOTAL, 1.0)
    assert traced.dropped == ["a guide site is not reparameterised"]


def test_fit_with_and_without_tracing_trains_the_same_model():
    """Two epochs with KL warm-up, a validation split and a last short batch: the weights
    agree to float rounding."""
    spec = tiny_spec("train.kl_warmup_epochs=1", "train.batch_size=64")
    data = load_data(spec.data, spec.model.likelihood.name)
    weights, objectives = [], []
    for jit in (True, False):
        torch.manual_seed(0)
        vae = build_model(spec.model, data.dim)
        train = spec.train.__class__(**{**spec.train.__dict__, "jit": jit})
        result = fit(vae, data, train, progress=False)
        weights.append(vae.state_dict())
        objectives.append([r.train_objective_nats for r in result.history])
    for name, value in weights[0].items():
        assert torch.allclose(value, weights[1][name], rtol=1e-4, atol=1e-6), name
    assert objectives[0] == pytest.approx(objectives[1], rel=1e-6)


def test_a_model_keeps_its_traces_across_fits_until_its_parameters_change():
    torch.manual_seed(0)
    vae = build_model(tiny_spec().model, 64)
    traced = make_objective("elbo", 1, vae)
    assert make_objective("elbo", 1, vae) is traced
    assert make_objective("elbo", 2, vae) is not traced  # other particles, other loss
    x = _x()
    with pyro.validation_enabled(False):
        traced(vae.model, vae.guide, x, N_TOTAL, 1.0)
        assert len(traced._entries) == 1
        # a new decoder (same shapes) may compute something else: a new trace
        vae.decoder = build_model(tiny_spec().model, 64).decoder
        _assert_close(
            _loss_and_grads(traced, vae, x, 1.0, seed=3),
            _loss_and_grads(make_objective("elbo", 1), vae, x, 1.0, seed=3),
        )
    assert len(traced._entries) == 2
