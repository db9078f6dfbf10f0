"""Training objectives traced once per minibatch shape, so Pyro's bookkeeping runs once.

Every step of eager SVI runs the model and the guide under Pyro's effect handlers:
the trace, the replay, the site checks and the log-density bookkeeping are Python
that costs about as much as a small network's arithmetic (``benchmarks/train_speed.py``).
:func:`traced_objective` records one step's arithmetic with :func:`torch.jit.trace`,
the same compiler Pyro's own ``JitTrace_ELBO`` uses, and replays it for every later
minibatch of the same shape: the same operators on the same random streams, so the
values and gradients are those of the eager objective (tested).

The graph runs in TorchScript's interpreter without its optimizing passes: they
made the step slower on CPU, and they would change the arithmetic after a few calls,
so that a resumed run would no longer repeat the uninterrupted one.

What is traced is the *tensor* the objective differentiates: for Pyro's
``Trace_ELBO`` and ``TraceMeanField_ELBO`` their surrogate loss, computed by the same
two ELBO methods Pyro's ``JitTrace_ELBO`` and ``JitTraceMeanField_ELBO`` call
(``_get_traces`` and ``_differentiable_loss_particle``), which equals the loss when
every guide site is reparameterised. The network parameters enter as inputs
(as in :func:`torch.func.functional_call`), so the optimizer's in-place updates are
seen; a KL weight other than 1 enters as a tensor, so KL warm-up takes one trace,
and the steps after it another, in which beta is not applied at all, as eagerly. The
number of training examples, the batch shape and the training mode are fixed per
trace. The random draws are the eager ones; values and gradients agree with the
eager step to float rounding (during warm-up beta times the plate's scale is a
float32 product), not bit for bit.

A trace is only used where it is known to be right:

- objectives that register gradient hooks (``iwae_dreg``) are never traced: a trace
  does not keep hooks;
- a guide with a site that is not reparameterised (a score-function term) is not
  traced;
- a model whose own code turns a traced tensor into a Python value (``if z.mean() >
  0:``, ``float(scale)``) is not traced: the trace would freeze that branch or number.
  Torch's, Pyro's and pyrovae's own conversions are known safe (batch sizes, Pyro's
  float bookkeeping);
- the second minibatch of each shape is also run eagerly and compared with the
  trace, values and gradients; a trace that disagrees is dropped with a warning, and
  that shape runs eagerly from then on.

Tracing, and the check, run on a copy of the random state, so the training
trajectory, and resuming it exactly, do not depend on when a trace was made.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution
from torch.nn.utils.stateless import _reparametrize_module

__all__ = ["TRACEABLE_OBJECTIVES", "TracedObjective", "elbo_tensor_loss", "traced_objective"]

TRACEABLE_OBJECTIVES = frozenset({"elbo", "analytic_kl", "iwae"})
"""Objectives whose loss is a pure tensor function of parameters, data and noise."""

_VETTED = (
    Path(torch.__file__).resolve().parent,
    Path(pyro.__file__).resolve().parent,
    Path(__file__).resolve().parents[1],
)
"""Package folders whose conversions of traced tensors to Python values are known safe."""

_CHECK_RTOL = 1e-4
"""Relative tolerance of the trace-against-eager check (float32 reassociation)."""

Loss = Callable[..., torch.Tensor]


def elbo_tensor_loss(elbo: Trace_ELBO) -> Loss:
    """The negative ELBO of ``elbo`` as one tensor, as Pyro's JIT ELBOs compute it.

    ``Trace_ELBO.differentiable_loss`` returns ``loss + (surrogate - surrogate.item())``
    with ``loss`` a Python float, which a trace would freeze; this returns the
    surrogate itself, the same value when the guide is reparameterised.

    Parameters
    ----------
    elbo : Trace_ELBO or TraceMeanField_ELBO

    Returns
    -------
    callable
        ``loss(model, guide, *args) -> scalar Tensor``.
    """

    def loss(model: Callable, guide: Callable, *args: Any) -> torch.Tensor:
        total: torch.Tensor | float = 0.0
        for model_trace, guide_trace in elbo._get_traces(model, guide, args, {}):
            surrogate = elbo._differentiable_loss_particle(model_trace, guide_trace)[1]
            total = total + surrogate / elbo.num_particles
        assert isinstance(total, torch.Tensor)
        return total

    return loss


class _Step(torch.nn.Module):
    """One objective evaluation as a module, so that it can be traced with the model's
    parameters as inputs: ``forward(x, beta) -> loss``."""

    def __init__(self, model: torch.nn.Module, loss: Loss, n_total: int) -> None:
        super().__init__()
        self.inner = model
        self.loss = loss
        self.n_total = n_total

    def forward(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.loss(self.inner.model, self.inner.guide, x, self.n_total, beta)


@dataclass
class _Entry:
    """One traced shape: its graph and the calls it has served."""

    graph: Callable[..., torch.Tensor] | None
    calls: int = 0

    @property
    def checked(self) -> bool:
        """Whether the trace was compared with the eager step (on its second call)."""
        return self.calls >= 2


@dataclass
class TracedObjective:
    """An objective ``loss(model, guide, x, n_total, beta)`` that traces itself per shape.

    Made by :func:`traced_objective`, which keeps one per model and objective, so that
    later ``fit`` calls on the same model (resuming in-process, the family, a notebook)
    reuse its traces. It is called as the loop calls every objective, with the model's
    own ``model`` and ``guide``: the traces record those two.

    Attributes
    ----------
    module_ref : weakref.ref
        The model (VAE or autoencoder) whose ``model`` and ``guide`` are trained; its
        parameters and buffers are the trace's inputs. Weak, so that the cache of
        traced objectives does not keep models alive.
    traced : callable
        The tensor-valued loss that is traced.
    eager : callable
        The objective as the loop would call it without tracing (the reference of the
        check, and the fallback).
    dropped : list of str
        Why shapes fell back to eager execution (empty when every trace held).
    """

    module_ref: weakref.ref
    traced: Loss
    eager: Loss
    dropped: list[str] = field(default_factory=list)
    _entries: dict[tuple, _Entry] = field(default_factory=dict)

    @property
    def module(self) -> torch.nn.Module:
        module = self.module_ref()
        if module is None:
            raise RuntimeError("the model of this traced objective no longer exists")
        return module

    def __call__(
        self, model: Callable, guide: Callable, x: torch.Tensor, n_total: int, beta: float
    ) -> torch.Tensor:
        module = self.module
        inputs = _inputs(module)
        # the inputs' identities: a module given new parameters (a replaced decoder)
        # may compute something else, so it gets a new trace
        key = (
            tuple(x.shape),
            x.dtype,
            x.device,
            n_total,
            beta == 1.0,
            module.training,
            tuple(map(id, inputs)),
        )
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self._trace(x, n_total, beta))
        if entry.graph is None:
            return self.eager(model, guide, x, n_total, beta)
        entry.calls += 1
        if entry.calls == 2:  # the check, once
            reason = self._disagreement(entry.graph, x, n_total, beta)
            if reason:
                entry.graph = None
                self.dropped.append(reason)
                warnings.warn(
                    f"the traced training step disagrees with the eager one ({reason}); "
                    f"minibatches of shape {tuple(x.shape)} run eagerly (slower, same result)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return self.eager(model, guide, x, n_total, beta)
        return _run(entry.graph, inputs, x, beta)

    # ------------------------------------------------------------------ internals

    def _trace(self, x: torch.Tensor, n_total: int, beta: float) -> Callable | None:
        """The traced step for ``x``'s shape, or None where tracing would be wrong."""
        if not _reparameterised(self.module, x, n_total, beta):
            self.dropped.append("a guide site is not reparameterised")
            return None
        step = _Step(self.module, self.traced, n_total)
        names = [f"inner.{name}" for name in _input_names(self.module)]

        unit = beta == 1.0  # the common case: no KL weight at all, as eagerly

        def flat(params: tuple[torch.Tensor, ...], xb: torch.Tensor, b: torch.Tensor):
            # what torch.func.functional_call does; that refuses to run inside a trace
            with _reparametrize_module(step, dict(zip(names, params, strict=True))):
                return step(xb, 1.0 if unit else b)

        beta_t = torch.tensor(float(beta), dtype=x.dtype, device=x.device)
        example = (_inputs(self.module), x, beta_t)
        try:
            with (
                _recorded_trace() as caught,
                _same_random_state(x.device),
                pyro.validation_enabled(False),
            ):
                graph = torch.jit.trace(flat, example, check_trace=False)
            reason = _frozen_user_value(caught)
        except Exception as error:  # any failure to trace means: run eagerly
            graph, reason = None, f"tracing failed: {type(error).__name__}: {error}"
        if reason is None:
            return graph
        reason = reason.splitlines()[0]
        self.dropped.append(reason)
        warnings.warn(
            f"the training step is not traced ({reason}); minibatches of shape "
            f"{tuple(x.shape)} run eagerly (slower, same result)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None

    def _disagreement(
        self, graph: Callable, x: torch.Tensor, n_total: int, beta: float
    ) -> str | None:
        """Why the trace's loss and gradients differ from the eager objective's on ``x``
        (same random draws), or None when they agree."""
        named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        results = []
        for run in (
            lambda: _run(graph, _inputs(self.module), x, beta),
            lambda: self.eager(self.module.model, self.module.guide, x, n_total, beta),
        ):
            with _same_random_state(x.device):
                loss = run()
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            results.append((loss.detach(), grads))
        (a, grads_a), (b, grads_b) = results
        if _relative_error(a, b) > _CHECK_RTOL:
            return f"loss {a.item():.6g} against {b.item():.6g}"
        for (name, p), ga, gb in zip(named, grads_a, grads_b, strict=True):
            # a parameter the step does not reach has no gradient eagerly, and a zero one
            # in the trace when a zero KL weight scales it out
            ga, gb = (torch.zeros_like(p) if g is None else g for g in (ga, gb))
            if _relative_error(ga, gb) > _CHECK_RTOL:
                return f"gradient of {name} differs by {_relative_error(ga, gb):.3g} (relative)"
        return None


def _inputs(module: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """The trace's tensor inputs besides the data: parameters, then buffers."""
    return (*module.parameters(), *module.buffers())


def _input_names(module: torch.nn.Module) -> list[str]:
    """Names of :func:`_inputs`, in the same order."""
    return [name for name, _ in module.named_parameters()] + [
        name for name, _ in module.named_buffers()
    ]


def _run(
    graph: Callable, inputs: tuple[torch.Tensor, ...], x: torch.Tensor, beta: float
) -> torch.Tensor:
    """One step through ``graph``, in TorchScript's interpreter without optimizing passes."""
    beta_t = torch.tensor(float(beta), dtype=x.dtype, device=x.device)
    with torch.jit.optimized_execution(False):
        return graph(inputs, x, beta_t)


_TRACED: weakref.WeakKeyDictionary[torch.nn.Module, dict[Hashable, TracedObjective]] = (
    weakref.WeakKeyDictionary()
)
"""The traced objectives of each live model, by :func:`traced_objective`'s ``key``."""


def traced_objective(
    key: tuple[str, Hashable], module: torch.nn.Module, eager: Loss, traced: Loss
) -> Loss:
    """``eager`` traced per shape by a :class:`TracedObjective` where the objective allows it.

    Parameters
    ----------
    key : tuple
        ``(train.objective, anything else that changes the loss)``, e.g. the particles;
        objectives outside :data:`TRACEABLE_OBJECTIVES` stay eager. One traced objective
        is kept per model and key, so a later ``fit`` on the same model reuses its traces.
    module : torch.nn.Module
        The model whose ``model`` and ``guide`` the objective is called with.
    eager, traced : callable
        The objective as the loop calls it, and its tensor-valued form to trace.

    Returns
    -------
    callable
        ``loss(model, guide, x, n_total, beta)``.
    """
    if key[0] not in TRACEABLE_OBJECTIVES:
        return eager
    per_module = _TRACED.setdefault(module, {})
    if key not in per_module:
        per_module[key] = TracedObjective(weakref.ref(module), traced, eager)
    return per_module[key]


def _reparameterised(module: torch.nn.Module, x: torch.Tensor, n_total: int, beta: float) -> bool:
    """Whether every latent site of the guide can be differentiated through its sample."""
    with _same_random_state(x.device), torch.no_grad(), pyro.validation_enabled(False):
        guide = cast(Callable[..., Any], module.guide)
        guide_trace = poutine.trace(guide).get_trace(x, n_total, beta)
    return all(
        cast(Distribution, site["fn"]).has_rsample
        for site in guide_trace.nodes.values()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    )


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of ``a`` and ``b`` over the largest magnitude of ``b``."""
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()


def _same_random_state(device: torch.device) -> contextlib.AbstractContextManager:
    """Run a block on a copy of torch's random state (CPU, and the CUDA device in use)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@contextlib.contextmanager
def _recorded_trace() -> Iterator[list[warnings.WarningMessage]]:
    """Record, rather than show, the tracer's notes on tensors turned into Python values,
    and silence torch's deprecation notice of ``torch.jit.trace``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield caught


def _frozen_user_value(caught: list[warnings.WarningMessage]) -> str | None:
    """Where code outside torch, Pyro and pyrovae turned a traced tensor into a Python
    value (a branch or a number the trace would freeze), or None.

    Inside those packages the conversions are vetted: Pyro's float bookkeeping, which
    the traced surrogate does not use, and batch sizes, fixed per trace; pyrovae's own
    models are checked against the eager step by its tests.
    """
    for note in caught:
        if issubclass(note.category, torch.jit.TracerWarning):
            where = Path(note.filename).resolve()
            if not any(where.is_relative_to(root) for root in _VETTED):
                return f"{where.name}:{note.lineno} turns a tensor into a Python value"
    return None
