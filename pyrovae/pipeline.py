"""The jobs: train, evaluate, and both at once, on a run directory.

:func:`train_model` (``pyrovae train``): spec -> data -> model -> fit -> run
directory. It validates everything it can (device, resume compatibility,
data) before the first step, writes the resolved spec, and checkpoints after
every epoch. :func:`evaluate_run` (``pyrovae evaluate``) adds held-out
metrics, figures and ``report.md`` to a trained run; :func:`compare_run`
(``pyrovae compare RUN_DIR``) compares the local posteriors p(z|x) of a few
test points across methods; :func:`run_pipeline` (``pyrovae run``) does all
three. A Python user calls the same functions.

Started by ``torchrun`` (several processes, :mod:`pyrovae.train.distributed`), training
runs data-parallel in every process and only process 0 locks and writes the run
directory (a resumed run's checkpoint is read by process 0 and sent to the others);
evaluation shares the importance-sampled log p(x) out over the processes, every one of
which reads the run directory; the local-posterior comparison runs in process 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch

from pyrovae.data.dataset import Dataset, binarize, load_data
from pyrovae.data.disk import sample_rows
from pyrovae.data.labelled import hide_labels, label_rows
from pyrovae.errors import Interrupted, UserError
from pyrovae.evaluate.labels import classifier_evaluation
from pyrovae.evaluate.latent_space import latent_space_metrics
from pyrovae.evaluate.likelihood import evaluate
from pyrovae.local.posteriors import LocalPosteriors, gap_table, local_comparison, local_posteriors
from pyrovae.local.section import local_section
from pyrovae.models import M2, VAE, LatentModel, build_model
from pyrovae.posterior.compare import Comparison
from pyrovae.posterior.files import PosteriorFiles, write_posteriors
from pyrovae.report.architecture import ARCHITECTURE, describe
from pyrovae.report.run_report import FIGURES, make_figures, render_report
from pyrovae.report.tensorboard import TensorBoardLog, require_tensorboard
from pyrovae.spec import AUTOENCODER_KINDS, LABEL_KINDS, Spec, spec_to_dict
from pyrovae.stats import linear_gaussian
from pyrovae.train.distributed import (
    agreed,
    launched,
    placement_for,
    reported_failures,
    training_processes,
)
from pyrovae.train.guard import run_lock
from pyrovae.train.interrupt import stop_on_signals
from pyrovae.train.loop import fit
from pyrovae.train.memory import check_memory
from pyrovae.train.objectives import estimate_elbo
from pyrovae.train.placement import resolve_device
from pyrovae.train.process import ProcessGroup
from pyrovae.train.rundir import (
    CHECKPOINT,
    FIGURES_DIR,
    LOCAL_DIR,
    load_checkpoint,
    read_metrics,
    read_run_spec,
    save_checkpoint,
    update_metrics,
    write_atomic,
    write_history,
    write_report,
    write_spec,
)
from pyrovae.train.state import FitResult, TrainState
from pyrovae.train.threads import resolve_threads, torch_threads

__all__ = [
    "RESUMABLE_FIELDS",
    "TrainOutcome",
    "TrainedRun",
    "build",
    "compare_run",
    "evaluate_run",
    "load_spec_data",
    "load_trained",
    "open_vae_run",
    "run_pipeline",
    "train_model",
    "training_metrics",
    "write_run_report",
]

RESUMABLE_FIELDS = ("train.epochs", "train.threads", "train.tensorboard")
"""Spec fields that may differ between a run and its resumption."""


class TrainOutcome(NamedTuple):
    """What :func:`train_model` returns."""

    run_dir: Path
    model: LatentModel
    data: Dataset
    fit: FitResult
    metrics: dict[str, Any]
    """Empty in the processes other than the writing one (under torchrun)."""


def build(
    spec: Spec, data_dim: int, classes: int | None = None, image: Sequence[int] | None = None
) -> LatentModel:
    """The model a spec declares, initialised from ``spec.train.seed``; a label model
    needs the number of ``classes``, a ``conv`` network the data's ``image`` shape."""
    torch.manual_seed(spec.train.seed)
    return build_model(spec.model, data_dim, classes, spec.train.classifier_weight, image)


def load_spec_data(spec: Spec) -> Dataset:
    """The data ``spec.data`` declares, as the rows ``spec.model.kind`` trains on: for a
    label model each split gets its class column (:func:`~pyrovae.data.labelled.label_rows`,
    M2's unchosen training labels hidden)."""
    data = load_data(spec.data, spec.model.likelihood.name)
    if spec.model.kind in LABEL_KINDS:
        data = label_rows(data, spec.model.kind, spec.data.labelled, spec.data.seed)
    return data


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            sub = f"{path}.{key}" if path else key
            found = _first_difference(a.get(key), b.get(key), sub)
            if found and found not in RESUMABLE_FIELDS:
                return found
        return None
    return None if a == b else path


def _resume_state(spec: Spec, run_dir: Path, data_dim: int) -> TrainState:
    checkpoint = load_checkpoint(run_dir)
    diff = _first_difference(spec_to_dict(checkpoint.spec), spec_to_dict(spec))
    if diff:
        raise UserError(
            f"--resume: {diff} differs from the run in {run_dir}; only "
            f"{', '.join(RESUMABLE_FIELDS)} may change when resuming"
        )
    if checkpoint.data_dim != data_dim:
        raise UserError(
            f"--resume: the data have {data_dim} values per example, the run was "
            f"trained on {checkpoint.data_dim}"
        )
    return checkpoint.state


def _tensorboard(
    spec: Spec, run_dir: Path, model: LatentModel, data: Dataset, state: TrainState | None
) -> TensorBoardLog | None:
    """The TensorBoard writer ``train.tensorboard`` asks for, starting after ``state``."""
    if not spec.train.tensorboard:
        return None
    return TensorBoardLog(run_dir, model, data, first_epoch=(state.epoch if state else 0) + 1)


def train_model(
    spec: Spec, run_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> TrainOutcome:
    """Train the VAE a spec declares and write its run directory.

    Parameters
    ----------
    spec : Spec
        The resolved spec.
    run_dir : str or Path
        Where the run goes; created if needed.
    resume : bool
        Continue the run in ``run_dir`` from its checkpoint. Only
        ``train.epochs`` may differ from the run's spec.
    progress : bool
        Show a progress bar.

    Raises
    ------
    UserError
        Bad device, data, or resume request, an unwritable or busy run directory, or
        a model too big for the free memory; raised before training starts.
    NonFiniteLossError
        A NaN/inf loss; the checkpoint of the last finished epoch is kept.
    Interrupted
        SIGINT or SIGTERM arrived: training stopped after the step in progress and
        wrote a checkpoint that ``resume=True`` continues exactly.
    """
    run_dir = Path(run_dir)
    with ExitStack() as job:
        process = job.enter_context(training_processes(spec.train.device))
        job.enter_context(reported_failures(process))
        data, state = agreed(
            process, lambda: _prepare_training(spec, run_dir, resume, process, job)
        )
        if process.world_size > 1 and resume:  # process 0 read it; the others get a copy
            state = process.gather(state)[0]
        model = build(spec, data.dim, data.classes, data.image_shape)
        if process.is_writer:
            text = describe(model, data.dim, data.image_shape, data.levels, data.classes or 0)
            write_atomic(run_dir / ARCHITECTURE, text.encode())
        board = _tensorboard(spec, run_dir, model, data, state) if process.is_writer else None

        def on_epoch_end(new_state: TrainState) -> None:
            save_checkpoint(run_dir, spec, data.dim, new_state)
            write_history(run_dir, new_state.history)
            if board is not None:
                board.log(new_state, spec.train.seed)

        with stop_on_signals() as stop, ExitStack() as cleanup:
            if board is not None:
                cleanup.callback(board.close)
            result = fit(
                model,
                data,
                spec.train,
                state=state,
                on_epoch_end=on_epoch_end,
                progress=progress,
                placement=placement_for(process, spec.train.device),
                process=process,
                should_stop=stop,
            )
        if result.stop_reason == "interrupted":
            assert stop.signum is not None  # only a signal stops a run mid-way
            raise Interrupted(stop.signum, result.state.epoch, result.state.step, str(run_dir))
        model.eval()
        if not process.is_writer:
            return TrainOutcome(run_dir, model, data, result, {})
        metrics = update_metrics(run_dir, training_metrics(model, data, result, spec))
        return TrainOutcome(run_dir, model, data, result, metrics)


def _prepare_training(
    spec: Spec, run_dir: Path, resume: bool, process: ProcessGroup, job: ExitStack
) -> tuple[Dataset, TrainState | None]:
    """Everything checked before the first step: device, TensorBoard, the run directory
    (locked for the block of ``job``, by the writing process only), data, memory and a
    resumed run's state (read by the writing process); then the spec is written."""
    device = resolve_device(spec.train.device)
    if spec.train.tensorboard and process.is_writer:
        require_tensorboard()
    if process.is_writer:
        job.enter_context(run_lock(run_dir))
        if not resume and (run_dir / CHECKPOINT).exists():
            raise UserError(
                f"{run_dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
    data = load_spec_data(spec)
    check_memory(spec, data.dim, device, data.classes, data.image_shape)
    state = _resume_state(spec, run_dir, data.dim) if resume and process.is_writer else None
    if process.is_writer:
        write_spec(run_dir, spec)
    return data, state


@torch.no_grad()
def training_metrics(
    model: LatentModel, data: Dataset, result: FitResult, spec: Spec
) -> dict[str, Any]:
    """ELBOs per split (beta = 1, nats per example) and training facts.

    For an autoencoder the ELBO is its negative loss, log p(x | g(f(x))) minus
    any sparsity penalty, so the keys are ``<split>_objective_nats``. A CVAE's ELBO
    bounds log p(x | y); M2's is U(x), with every label hidden, a bound on log p(x).

    With dynamic binarization the training split is binarized once, with a
    fixed seed, so that the number is reproducible. A memory-mapped training split
    gives its ELBO on its first :data:`~pyrovae.data.disk.SAMPLE_ROWS` rows. When the
    trained model is linear-Gaussian its exact test log p(x) is added
    (``test_exact_log_likelihood_nats``), and for synthetic data the test
    log p(x) under the parameters that generated the data
    (``test_true_log_likelihood_nats``).
    """
    device = next(model.parameters()).device
    name = "objective" if spec.model.kind in AUTOENCODER_KINDS else "elbo"
    generator = torch.Generator().manual_seed(spec.data.seed + 1)
    train = sample_rows(data.train)
    if data.dynamic_binarization:
        train = binarize(train, generator, data.dim)
    splits = {"train": train, "validation": data.validation, "test": data.test}
    if spec.model.kind == "m2":  # U(x), the bound on log p(x), in every split
        splits = {split: hide_labels(x) for split, x in splits.items()}
    metrics: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.train.seed)
        for split, x in splits.items():
            if x.shape[0]:
                elbo = estimate_elbo(model.model, model.guide, x.to(device))
                metrics[f"{split}_{name}_nats"] = elbo.mean().item()
    metrics.update(
        epochs=result.epochs,
        seconds=round(result.seconds, 3),
        stop_reason=result.stop_reason,
        best_epoch=result.state.best_epoch,
    )
    params = model.linear_gaussian()
    if params is not None:
        weight, bias, noise = (p.cpu() for p in params)
        exact = linear_gaussian.log_marginal(
            data.test, weight, bias, noise, prior_scale=spec.model.prior.scale
        )
        metrics["test_exact_log_likelihood_nats"] = exact.mean().item()
    if data.truth is not None:
        t = data.truth
        true = linear_gaussian.log_marginal(data.test, t.weight, t.bias, t.noise)
        metrics["test_true_log_likelihood_nats"] = true.mean().item()
    return metrics


class TrainedRun(NamedTuple):
    """A trained run loaded back: spec, model with its final weights, data, state."""

    spec: Spec
    model: LatentModel
    data: Dataset
    state: TrainState


def load_trained(run_dir: str | Path) -> TrainedRun:
    """Rebuild the model of a run directory with its final weights, and its data."""
    run_dir = Path(run_dir)
    checkpoint = load_checkpoint(run_dir)
    spec = checkpoint.spec
    data = load_spec_data(spec)
    model = build(spec, checkpoint.data_dim, data.classes, data.image_shape)
    model.load_state_dict(checkpoint.state.final_model)
    return TrainedRun(spec, model.eval(), data, checkpoint.state)


@contextmanager
def open_vae_run(run_dir: Path, needs: str, *, label_models: bool = True) -> Iterator[TrainedRun]:
    """A trained VAE run for the block: locked, loaded, on its spec's threads.

    ``needs`` ends the error for a run without a prior p(z) (an autoencoder), e.g.
    ``"no posterior p(z|x) to compare; local posteriors need model.kind = 'vae'"``;
    with ``label_models = False`` the label models (cvae, m2) are refused too.

    Raises
    ------
    UserError
        The run holds another model kind.
    """
    with run_lock(run_dir, create=False), ExitStack() as job:
        trained = load_trained(run_dir)
        job.enter_context(torch_threads(resolve_threads(trained.spec.train.threads)))
        if trained.spec.model.kind in AUTOENCODER_KINDS:
            raise UserError(
                f"{run_dir} holds a {trained.spec.model.kind}: it has no prior p(z), so {needs}"
            )
        if not label_models and trained.data.classes is not None:
            raise UserError(
                f"{run_dir} holds a {trained.spec.model.kind}, whose p(x|z) needs a class: {needs}"
            )
        yield trained


def evaluate_run(
    run_dir: str | Path, *, particles: int = 1000, progress: bool = True
) -> dict[str, Any]:
    """Add held-out metrics, ``figures/`` and ``report.md`` to a trained run.

    Returns
    -------
    dict
        All metrics of the run after the update.
    """
    if particles < 1:
        raise UserError(f"--particles: expected a positive integer, got {particles}")
    run_dir = Path(run_dir)
    with ExitStack() as job:
        device_name = read_run_spec(run_dir).train.device if launched() else "cpu"
        process = job.enter_context(training_processes(device_name))
        job.enter_context(reported_failures(process))

        def prepare() -> TrainedRun:
            if process.is_writer:
                job.enter_context(run_lock(run_dir, create=False))
            return load_trained(run_dir)

        trained = agreed(process, prepare)
        job.enter_context(torch_threads(resolve_threads(trained.spec.train.threads)))
        device = placement_for(process, trained.spec.train.device).device
        spec, model = trained.spec, trained.model.to(device)
        evaluation = None
        test = trained.data.test
        if isinstance(model, VAE):
            evaluation = evaluate(
                model,
                hide_labels(test) if isinstance(model, M2) else test,
                particles=particles,
                seed=spec.train.seed,
                progress=progress and process.is_writer,
                process=process,
                levels=trained.data.levels,
            )
        if not process.is_writer:
            return {}
        new = evaluation.to_metrics() if evaluation else {}
        if isinstance(model, M2):
            new.update(classifier_evaluation(model, test, seed=spec.train.seed).to_metrics())
            # U(x): the ELBO evaluate computed on the same rows with their labels hidden
            new["test_unlabelled_elbo_nats"] = new["test_elbo_nats"]
        if trained.data.classes is None:
            latent = latent_space_metrics(
                model, trained.data, spec.model.autoencoder, seed=spec.train.seed
            )
            new.update(latent.to_metrics())
        metrics = update_metrics(run_dir, new)
        make_figures(
            model,
            trained.data,
            trained.state.history,
            evaluation,
            run_dir / FIGURES_DIR,
            seed=spec.train.seed,
        )
        write_run_report(run_dir, trained.spec)
        return metrics


def compare_run(
    run_dir: str | Path,
    *,
    points: int = 8,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 2,
    progress: bool = True,
) -> tuple[Comparison, LocalPosteriors, PosteriorFiles]:
    """Local posteriors p(z|x) of ``points`` test examples by every method, against NUTS.

    Writes ``local_posteriors/`` (``summary.csv``, ``methods.csv``,
    ``comparison.md``, ``gaps.md``, figures, ``posteriors/*.nc`` with MCMC
    sample_stats and each point's log-likelihood, ``arviz_summary.csv`` and
    ``arviz_summary.md`` with the sampler warnings), adds the mean gaps to
    ``metrics.json`` and rewrites ``report.md``.
    """
    if points < 1:
        raise UserError(f"--points: expected a positive integer, got {points}")
    run_dir = Path(run_dir)
    needs = "no posterior p(z|x) to compare; local posteriors need a vae, cvae or m2"
    with open_vae_run(run_dir, needs) as trained:
        seed = trained.spec.train.seed
        assert isinstance(trained.model, VAE)  # open_vae_run refuses the other kinds
        local = local_posteriors(
            trained.model,
            trained.data.test[:points],
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
            progress=progress,
        )
        comparison = local_comparison(local, seed=seed)
        comparison.write(run_dir / LOCAL_DIR)
        files = write_posteriors(comparison, run_dir / LOCAL_DIR)
        write_atomic(run_dir / LOCAL_DIR / "gaps.md", (gap_table(local) + "\n").encode())
        update_metrics(
            run_dir,
            {
                "local_points": int(local.x.shape[0]),
                "local_log_likelihood_nats": float(local.log_px.mean()),
                "local_approximation_gap_nats": float(local.approximation_gap.mean()),
                "local_amortization_gap_nats": float(local.amortization_gap.mean()),
            },
        )
        write_run_report(run_dir, trained.spec)
        return comparison, local, files


def write_run_report(run_dir: Path, spec: Spec) -> Path:
    """(Re)write ``report.md`` from what the run directory holds now."""
    folder = run_dir / FIGURES_DIR
    figures = {n: folder / f"{n}.png" for n in FIGURES if (folder / f"{n}.png").is_file()}
    sections = []
    local = run_dir / LOCAL_DIR
    if (run_dir / ARCHITECTURE).is_file():
        sections.append(("Data and networks", (run_dir / ARCHITECTURE).read_text()))
    if (local / "comparison.md").is_file() and (local / "gaps.md").is_file():
        sections.append(("Local posteriors p(z|x)", local_section(local, run_dir)))
    text = render_report(spec, read_metrics(run_dir), figures, run_dir, sections)
    return write_report(run_dir, text)


def run_pipeline(
    spec: Spec,
    run_dir: str | Path,
    *,
    particles: int = 1000,
    local_points: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, evaluate, compare local posteriors and report: the whole main job
    (``pyrovae run``). ``local_points = 0`` skips the comparison, and so does an
    autoencoder, which has no posterior p(z|x) to sample."""
    with ExitStack() as job:
        process = job.enter_context(training_processes(spec.train.device))
        # the writer locks the run directory; a busy one stops every process
        agreed(process, lambda: job.enter_context(run_lock(run_dir)) if process.is_writer else None)
        train_model(spec, run_dir, progress=progress)
        evaluate_run(run_dir, particles=particles, progress=progress)
        if not process.is_writer:
            return {}
        if local_points and spec.model.kind not in AUTOENCODER_KINDS:
            compare_run(
                run_dir, points=local_points, num_samples=500, warmup_steps=300, progress=progress
            )
        return read_metrics(Path(run_dir))
