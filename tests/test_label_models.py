"""The label models: M2's enumerated ELBO by hand, the CVAE's log p(x|y) against its
closed form, and M2 learning two clusters from two labels per class."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

from pyrovae.data.labelled import HIDDEN, hide_labels, split_rows, with_labels
from pyrovae.evaluate.likelihood import elbo_parts, importance_log_likelihood
from pyrovae.models import CVAE, M2, build_model
from pyrovae.models.likelihoods import MIN_SCALE, inverse_positive
from pyrovae.nets import with_class
from pyrovae.pipeline import build, load_spec_data
from pyrovae.spec import load_spec
from pyrovae.stats.linear_gaussian import log_marginal
from pyrovae.train import fit

SMALL = ["model.encoder.hidden=[6]", "model.decoder.hidden=[6]", "model.latent_dim=2"]


def _m2(classes: int = 3, dim: int = 4, likelihood: str = "gaussian") -> M2:
    spec = load_spec(None, ["model.kind=m2", f"model.likelihood.name={likelihood}", *SMALL])
    torch.manual_seed(0)
    model = build_model(spec.model, dim, classes=classes)
    assert isinstance(model, M2)
    return model


def _hand_unlabelled_elbo(model: M2, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """sum_y q(y|x) L(x, y) + H(q(y|x)) per row of ``x`` ``(B, D)``, with the class-c
    latent draw ``z[c]`` ``(B, L)``, written out term by term."""
    q = torch.softmax(model.class_logits(x), -1)
    total = -(q * q.log()).sum(-1)
    for c in range(model.classes):
        y = torch.full((x.shape[0],), c)
        loc, scale = model.encode_with(x, y)
        labelled_elbo = (
            math.log(1 / model.classes)
            + torch.distributions.Normal(0.0, 1.0).log_prob(z[c]).sum(-1)
            + model.observation_with(z[c], y).log_prob(x)
            - torch.distributions.Normal(loc, scale).log_prob(z[c]).sum(-1)
        )
        total = total + q[:, c] * labelled_elbo
    return total


def test_enumerated_unlabelled_elbo_equals_the_sum_over_classes_by_hand():
    model = _m2().eval()
    x = torch.randn(5, 4)
    rows = hide_labels(with_labels(x, torch.zeros(5, dtype=torch.long)))
    pyro.set_rng_seed(1)
    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model.model, model.guide, rows)
    # the same draws: the guide runs first and consumes the random stream alike
    pyro.set_rng_seed(1)
    guide = poutine.trace(poutine.enum(model.guide, first_available_dim=-2)).get_trace(rows)
    y_u, z_u = guide.nodes["y_u"]["value"], guide.nodes["z_u"]["value"]
    # one batched pass along one enumeration dimension, not a loop over classes
    assert y_u.shape == (3, 5) and z_u.shape == (3, 5, 2)
    assert torch.equal(y_u[:, 0], torch.arange(3))
    by_hand = _hand_unlabelled_elbo(model, x, z_u).sum()
    torch.testing.assert_close(-loss, by_hand, rtol=1e-5, atol=1e-4)


def test_labelled_and_unlabelled_rows_in_one_batch_weight_their_own_plates():
    model = _m2().train()
    x = torch.randn(6, 4)
    y = torch.tensor([0, 2, HIDDEN, HIDDEN, 1, HIDDEN])
    rows = with_labels(x, y)
    model.init_from_data(rows, torch.Generator())  # N_l = 3 of N = 6
    trace = poutine.trace(model.model).get_trace(rows, 60)  # the batch stands for 60 rows
    labelled, unlabelled = trace.nodes["x"], trace.nodes["x_u"]
    assert labelled["value"].shape == (3, 4) and unlabelled["value"].shape == (3, 4)
    assert labelled["scale"] == pytest.approx(1.0)  # the 3 labelled rows are all of them
    assert unlabelled["scale"] == pytest.approx(57 / 3)
    # the classifier term, training mode only: alpha / N_l * log q(y|x)
    alpha = model.classifier_weight * 6
    factor = trace.nodes["classifier"]
    log_q = torch.log_softmax(model.class_logits(x[y != HIDDEN]), -1)
    expected = alpha / 3 * log_q[torch.arange(3), y[y != HIDDEN]]
    torch.testing.assert_close(factor["fn"].log_prob(factor["value"]), expected)
    assert "classifier" not in poutine.trace(model.eval().model).get_trace(rows, 60).nodes


def test_m2_elbo_parts_sum_the_class_out_exactly():
    """reconstruction - KL of hidden rows is U(x): the Monte Carlo mean of the enumerated
    ELBO with the same number of draws agrees within its error."""
    model = _m2().eval()
    x = torch.randn(4, 4)
    rows = hide_labels(with_labels(x, torch.zeros(4, dtype=torch.long)))
    torch.manual_seed(0)
    parts = elbo_parts(model, rows, samples=4000)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=4000, vectorize_particles=True)
    pyro.set_rng_seed(1)
    by_enumeration = -elbo.loss(model.model, model.guide, rows)
    assert (parts.reconstruction - parts.kl).sum().item() == pytest.approx(by_enumeration, abs=0.1)
    # a labelled row's KL is KL(q(z|x,y) || p(z)) + log C (its q(y) a point mass)
    labelled = with_labels(x, torch.tensor([0, 1, 2, 0]))
    parts = elbo_parts(model, labelled, samples=2)
    loc, scale = model.encode(labelled)
    kl_z = (-scale.log() + (scale**2 + loc**2) / 2 - 0.5).sum(-1)
    torch.testing.assert_close(parts.kl, kl_z + math.log(3))


def _linear_cvae() -> tuple[CVAE, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A CVAE with p(x|z,y) = N(W_z z + W_y e_y + b, I) and a linear encoder whose mean is
    the exact posterior mean and whose scales are 1.2 x the exact marginal sds (a
    diagonal proposal close to the correlated posterior)."""
    spec = load_spec(
        None,
        [
            "model.kind=cvae",
            "model.latent_dim=2",
            "model.encoder.hidden=[]",
            "model.decoder.hidden=[]",
            "model.likelihood.name=gaussian",
            "model.likelihood.scale=1.0",
        ],
    )
    model = build_model(spec.model, 3, classes=2)
    assert isinstance(model, CVAE)
    w_z = torch.tensor([[0.6, -0.3], [0.2, 0.5], [-0.4, 0.1]])
    w_y = torch.tensor([[2.0, -2.0], [-1.0, 1.5], [0.5, 0.5]])
    b = torch.tensor([0.1, -0.2, 0.3])
    cov = torch.linalg.inv(torch.eye(2) + w_z.T @ w_z)  # posterior covariance
    gain = cov @ w_z.T  # loc = gain (x - b - W_y e_y)
    scale = 1.2 * cov.diagonal().sqrt()
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.cat([w_z, w_y], 1))
        model.decoder[0].bias.copy_(b)
        encoder = model.encoder[0]
        encoder.weight.zero_()
        encoder.weight[:2].copy_(torch.cat([gain, -gain @ w_y], 1))
        encoder.bias.copy_(torch.cat([-gain @ b, inverse_positive_all(scale - MIN_SCALE)]))
    return model.eval(), w_z, w_y, b


def inverse_positive_all(values: torch.Tensor) -> torch.Tensor:
    return torch.tensor([inverse_positive(float(v)) for v in values])


def test_cvae_importance_sampled_log_likelihood_matches_the_closed_form():
    """p(x|y) = N(b + W_y e_y, W_z W_z^T + I) for a linear decoder: the k-sample estimate
    of each example is within 3 of its standard errors, and the closed form under the
    other class is far outside (the check tells the classes apart)."""
    model, w_z, w_y, b = _linear_cvae()
    y = torch.tensor([0, 1, 1, 0, 1])
    torch.manual_seed(0)
    with torch.no_grad():
        x = b + w_y[:, y].T + torch.randn(5, 2) @ w_z.T + torch.randn(5, 3)
        rows = with_labels(x, y)
        exact = torch.stack(
            [log_marginal(x[i : i + 1], w_z, b + w_y[:, y[i]], 1.0)[0] for i in range(5)]
        )
        wrong = torch.stack(
            [log_marginal(x[i : i + 1], w_z, b + w_y[:, 1 - y[i]], 1.0)[0] for i in range(5)]
        )
    torch.manual_seed(1)
    estimate = importance_log_likelihood(model, rows, 5000)
    error = (estimate.log_px.double() - exact).abs()
    assert bool((error < 3 * estimate.se.double()).all()), (error, estimate.se)
    assert bool(((estimate.log_px.double() - wrong).abs() > 30 * estimate.se.double()).all())


def test_cvae_decodes_one_code_under_every_class():
    model, _, w_y, b = _linear_cvae()
    z = torch.zeros(1, 2, 2)
    decoded = model.decode(z, torch.tensor([[0, 1]]))  # (1, 2, D): the same z, two classes
    torch.testing.assert_close(decoded[0], (b + w_y.T).detach())
    with pytest.raises(ValueError, match="every example"):
        model.encode(hide_labels(with_labels(torch.zeros(1, 3), torch.tensor([0]))))


def _two_clusters(path, n: int = 500, dim: int = 8) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, dim)) + np.where(y == 1, 1.0, -1.0)[:, None]
    np.savez(path, x=x.astype(np.float32), y=y)


def test_m2_learns_two_clusters_from_two_labels_per_class(tmp_path):
    """Two Gaussian clusters in 8-D, 2 labels per class: M2 (with a linear decoder, so
    that only y can make the data bimodal) classifies the test split as well as the
    Bayes rule, within 3 points."""
    _two_clusters(tmp_path / "two.npz")
    spec = load_spec(
        None,
        [
            "data.name=arrays",
            f"data.path={str(tmp_path / 'two.npz')!r}",
            "data.labelled=2",
            "model.kind=m2",
            "model.likelihood.name=gaussian",
            "model.latent_dim=1",
            "model.encoder.hidden=[32]",
            "model.decoder.hidden=[]",
            "train.epochs=80",
            "train.batch_size=64",
            "train.lr=3e-3",
            "train.labelled_per_batch=4",
        ],
    )
    data = load_spec_data(spec)
    assert int((split_rows(data.train)[1] != HIDDEN).sum()) == 4
    model = build(spec, data.dim, data.classes, data.image_shape)
    assert isinstance(model, M2)
    fit(model, data, spec.train, progress=False)
    x, y = split_rows(data.test)
    accuracy = (model.eval().classify(data.test).argmax(-1) == y).double().mean().item()
    bayes = ((x.sum(-1) > 0).long() == y).double().mean().item()  # equal priors and covariances
    assert bayes > 0.95
    assert accuracy >= bayes - 0.03, (accuracy, bayes)


CONV = [
    *(
        f"model.{part}.{key}"
        for part in ("encoder", "decoder")
        for key in ("kind=conv", "kernel=3")
    ),
    "model.encoder.channels=[4, 8]",
    "model.decoder.channels=[8, 4]",
]


@pytest.mark.parametrize("part", ["encoder", "decoder"])
@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv"])
def test_class_inputs_equal_the_network_on_the_concatenation(part, conv):
    """with_class (the class-free part once, the class as a weight column) is the network
    on cat(inputs, one_hot(y)), for one class per row and for every class of each row."""
    spec = load_spec(None, ["model.kind=m2", *SMALL, *(CONV if conv else [])])
    torch.manual_seed(0)
    model = build_model(spec.model, 63, classes=3, image=(1, 9, 7) if conv else None)
    net = getattr(model, part)
    width = 63 if part == "encoder" else 2
    inputs = torch.randn(5, width)
    every = torch.arange(3).unsqueeze(-1)  # (C, 1), as enumeration gives it
    for y in (torch.tensor([0, 2, 1, 1, 0]), every, every.expand(3, 5)):
        batch = torch.broadcast_shapes(y.shape, (5,))
        joined = torch.cat([inputs.expand(*batch, width), torch.eye(3)[y.expand(batch)]], -1)
        got = with_class(net, inputs, y, 3)
        assert got.shape == (*batch, net(joined).shape[-1])
        torch.testing.assert_close(got, net(joined), rtol=1e-5, atol=1e-5)
