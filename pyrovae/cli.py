"""The ``pyrovae`` command line.

It only parses arguments and calls the functions a Python user calls. User
errors (bad spec, data, paths) print one line on stderr and exit with status
2; a training failure (NaN loss) prints one line and exits with status 1; a
comparison whose methods did not all finish (one failed, hit ``--time-limit`` or
``--method-time-limit``, or Ctrl-C stopped it) writes what did and exits with
status 3 (:data:`EXIT_PARTIAL`). Ctrl-C or SIGTERM during training stops after the
step in progress, saves a checkpoint that ``--resume`` continues exactly, and exits
with 130 or 143. Arguments and specs are checked before torch,
Pyro or ArviZ are imported, so ``--help`` and every such error take milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyrovae._version import __version__
from pyrovae.errors import Interrupted, PyrovaeError, UserError

__all__ = ["EXIT_PARTIAL", "build_parser", "main"]

EXIT_PARTIAL = 3
"""Exit status of a comparison in which some methods failed or were stopped (a time
limit, Ctrl-C): the others were written, and the tables name each failed or stopped
method with its reason."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_spec_source(p: argparse.ArgumentParser) -> None:
    """The spec file and its ``--set`` overrides, shared by every command that reads a spec."""
    p.add_argument("spec", nargs="?", help="TOML spec file (default: the embedded digits VAE)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set train.epochs=5 or "
        "--set model.encoder.hidden=[256,128] (repeatable)",
    )


def _add_spec_arguments(p: argparse.ArgumentParser) -> None:
    _add_spec_source(p)
    p.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to OUT/tensorboard (train.tensorboard=true)",
    )


def _add_spec_command(sub: argparse._SubParsersAction) -> None:
    spec = sub.add_parser(
        "spec",
        help="print the resolved spec as TOML",
        description="Print the spec `pyrovae train` would run, every field with its value "
        "(defaults included), as TOML: start a spec of your own from it.",
    )
    _add_spec_source(spec)


def _spec(args: argparse.Namespace) -> None:
    from pyrovae.spec import load_spec, spec_to_toml

    print(spec_to_toml(load_spec(args.spec, args.overrides)), end="")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _limit(text: str) -> float | None:
    """A time limit in seconds: a non-negative number; 0 means none (``None``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0: no limit), got {text!r}")
    return value or None


def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run in N processes on this machine with torchrun's launcher, as "
        "`torchrun --standalone --nproc-per-node N -m pyrovae ...` (default 1; "
        "see docs/distributed.md)",
    )


def _add_particles(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--particles",
        type=_positive_int,
        default=1000,
        metavar="K",
        help="importance samples per test example for log p(x) (default 1000)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``pyrovae`` argument parser, every subcommand included."""
    parser = _Parser(prog="pyrovae", description="Declarative VAEs on Pyro.")
    parser.add_argument("--version", action="version", version=f"pyrovae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser(
        "train",
        help="train the model a spec declares",
        description="Train the VAE or autoencoder a spec declares and write a run directory.",
    )
    _add_spec_arguments(train)
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    _add_nproc(train)
    evaluate = sub.add_parser(
        "evaluate",
        help="held-out metrics, figures and report of a trained run",
        description="Add test log p(x), ELBO parts, active units and figures to a run "
        "directory (metrics.json, figures/, report.md).",
    )
    evaluate.add_argument("run_dir", type=Path, help="a run directory written by train")
    _add_particles(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_nproc(evaluate)
    run = sub.add_parser(
        "run",
        help="train, evaluate and report in one go",
        description="The whole main job: train the spec (default: the embedded digits VAE), "
        "evaluate it and write report.md.",
    )
    _add_spec_arguments(run)
    _add_particles(run)
    run.add_argument(
        "--local-points",
        type=int,
        default=4,
        metavar="N",
        help="test points whose p(z|x) is compared across methods (default 4; 0 skips)",
    )
    _add_nproc(run)
    _add_family(sub)
    _add_compare(sub)
    _add_sbc(sub)
    inspect = sub.add_parser(
        "inspect",
        help="summarise a saved posterior (.nc)",
        description="Print the ArviZ summary (mean, sd, HDI, MCSE, ESS, R-hat) and the "
        "sampler warnings of an InferenceData NetCDF file written by pyrovae compare.",
    )
    inspect.add_argument("file", type=Path, help="a .nc file")
    _add_spec_command(sub)
    return parser


def _add_family(sub: argparse._SubParsersAction) -> None:
    from pyrovae.spec import FAMILY_KINDS

    family = sub.add_parser(
        "family",
        help="train the spec as every model kind and compare their latent spaces",
        description="Train the spec once per model kind (VAE and the autoencoders) on the same "
        "data into OUT/<kind>/, then write OUT/family.md, OUT/family.csv and OUT/figures/: how "
        "close decoded samples and interpolations lie to the data, and reconstruction from "
        "corrupted inputs.",
    )
    _add_spec_arguments(family)
    _add_particles(family)
    family.add_argument(
        "--kinds", help=f"comma-separated model kinds (default: {','.join(FAMILY_KINDS)})"
    )


def _family(args: argparse.Namespace) -> None:
    from pyrovae.spec import FAMILY_KINDS, load_spec

    spec = load_spec(args.spec, args.overrides)  # a bad spec stops here, before torch
    from pyrovae.family import run_family
    from pyrovae.report.family import reading

    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else list(FAMILY_KINDS)
    out = args.out or _default_out(f"{spec.name}-family")
    result = run_family(spec, out, kinds, particles=args.particles, progress=not args.quiet)
    for line in reading(result.table):
        print(line)
    print(f"report: {result.report}")


class _CompareHelp(argparse.Action):
    """``pyrovae compare --help``: the registries (which import torch and Pyro) are read
    only when the help is shown, so every other command starts in milliseconds."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from pyrovae.posterior.methods import DEFAULT_METHODS, METHODS
        from pyrovae.posterior.targets.zoo import MODELS

        parser.epilog = f"built-in models: {', '.join(MODELS)}; methods: {', '.join(METHODS)}"
        for action in parser._actions:
            if action.dest == "methods":
                action.help = (
                    f"comma-separated, from the registry: {', '.join(METHODS)} "
                    f"(default: {','.join(DEFAULT_METHODS)})"
                )
        parser.print_help()
        parser.exit()


def _add_compare(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser(
        "compare",
        help="variational answers against MCMC on small posteriors",
        description="Compare variational fits and MCMC on one posterior: the local posteriors "
        "p(z|x) of a trained run's test points, a built-in model, or your own Pyro model.",
        add_help=False,
    )
    compare.add_argument("-h", "--help", action=_CompareHelp, help="show this help and exit")
    compare.add_argument(
        "target", help="RUN_DIR, a built-in model name, or path/to/file.py:model_fn (with --data)"
    )
    compare.add_argument("--methods", help="comma-separated method names")
    compare.add_argument(
        "--reference",
        type=Path,
        help="posteriordb reference draws (.json or .json.zip) to compare with",
    )
    compare.add_argument(
        "--data",
        type=Path,
        help="JSON object of keyword arguments for a model given as file.py:function",
    )
    compare.add_argument(
        "--out",
        type=Path,
        help="output folder (default: RUN_DIR/local_posteriors, or runs/compare-<name>-<time>)",
    )
    compare.add_argument(
        "--samples",
        type=_positive_int,
        default=4000,
        metavar="N",
        help="draws per method (default 4000)",
    )
    compare.add_argument(
        "--seeds",
        type=_positive_int,
        default=3,
        metavar="K",
        help="variational fits per guide for k-hat (default 3)",
    )
    compare.add_argument(
        "--points",
        type=_positive_int,
        default=8,
        metavar="N",
        help="test points of a run whose p(z|x) is compared (default 8)",
    )
    compare.add_argument(
        "--predictive",
        action="store_true",
        help="also save posterior predictive draws (one replicate of the data per draw) "
        "in each posteriors/<method>.nc (models only)",
    )
    compare.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision of the model's data and densities (default float64, as Stan; models)",
    )
    compare.add_argument(
        "--mass",
        choices=("auto", "dense", "diag"),
        default="auto",
        help="mass matrix NUTS/HMC adapt in warm-up: dense undoes correlation and scale "
        "differences; auto is dense up to 100 unconstrained values (default auto; models)",
    )
    compare.add_argument(
        "--time-limit",
        type=_limit,
        default=600.0,
        metavar="SECONDS",
        help="limit on the whole comparison, reference included; 0: none (default 600; "
        "models). Methods that finished are written; exit status 3 when any was stopped",
    )
    compare.add_argument(
        "--method-time-limit",
        type=_limit,
        default=240.0,
        metavar="SECONDS",
        help="limit on each method; 0: none (default 240; models)",
    )
    compare.add_argument(
        "--chain-workers",
        type=int,
        default=1,
        metavar="N",
        help="processes running MCMC chains at once; 0: one per core (default 1: in "
        "sequence). The draws are the same (models)",
    )
    compare.add_argument("--quiet", action="store_true", help="no progress bars")


def _resolve_spec(args: argparse.Namespace):
    from pyrovae.spec import load_spec

    if args.resume:
        from pyrovae.train.rundir import SPEC

        if args.out is None:
            raise UserError("--resume needs --out RUN_DIR, the run to continue")
        if not (args.out / SPEC).is_file():
            raise UserError(f"--resume: {args.out} holds no run to continue (no {SPEC})")
        return load_spec(args.spec or args.out / SPEC, args.overrides)
    return load_spec(args.spec, args.overrides)


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train(args: argparse.Namespace) -> None:
    spec = _resolve_spec(args)  # a bad spec stops here, before torch is imported
    from pyrovae.pipeline import train_model
    from pyrovae.spec import AUTOENCODER_KINDS

    out = args.out or _default_out(spec.name)
    outcome = train_model(spec, out, resume=args.resume, progress=not args.quiet)
    m = outcome.metrics
    if not m:  # a process other than the writing one under torchrun
        return
    name = "objective (−loss)" if spec.model.kind in AUTOENCODER_KINDS else "ELBO"
    value = m.get("test_elbo_nats", m.get("test_objective_nats"))
    print(
        f"trained {m['epochs']} epochs in {m['seconds']:.1f} s; "
        f"test {name} {value:.3f} nats per example; run in {out}"
    )


def _print_evaluation(metrics: dict, run_dir: Path) -> None:
    if not metrics:  # a process other than the writing one under torchrun
        return
    if "test_log_likelihood_nats" not in metrics:  # an autoencoder
        print(
            f"test reconstruction error {metrics['test_reconstruction_error']:.3f} "
            f"(from corrupted inputs {metrics['test_corrupted_reconstruction_error']:.3f}); "
            f"energy distance of decoded N(0, I) codes to the data "
            f"{metrics['latent_prior_energy_distance']:.3f}; report: {run_dir / 'report.md'}"
        )
        return
    bits = metrics.get("test_bits_per_dim")
    print(
        f"test log p(x) {metrics['test_log_likelihood_nats']:.3f} ± "
        f"{metrics['test_log_likelihood_se']:.3f} nats per example "
        f"(k={metrics['test_log_likelihood_particles']})"
        + ("" if bits is None else f", {bits:.4f} bits/dim")
        + "; test ELBO "
        f"{metrics['test_elbo_nats']:.3f}; {metrics['active_units']} of "
        f"{metrics['latent_dim']} units active; report: {run_dir / 'report.md'}"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from pyrovae.pipeline import evaluate_run

    metrics = evaluate_run(args.run_dir, particles=args.particles, progress=not args.quiet)
    _print_evaluation(metrics, args.run_dir)


def _run(args: argparse.Namespace) -> None:
    from pyrovae.spec import load_spec

    spec = load_spec(args.spec, args.overrides)  # a bad spec stops here, before torch
    out = args.out or _default_out(spec.name)
    if args.local_points < 0:
        raise UserError(f"--local-points: expected 0 or more, got {args.local_points}")
    from pyrovae.pipeline import run_pipeline

    metrics = run_pipeline(
        spec, out, particles=args.particles, local_points=args.local_points, progress=not args.quiet
    )
    _print_evaluation(metrics, out)


def _print_comparison(comparison, out: Path) -> None:
    for row in comparison.method_rows:
        khat = row.get("khat")
        flags = "; ".join(row.get("flagged") or []) or "ok"
        print(
            f"{row['method']:>16}: energy {row['energy']:.4f}, k-hat "
            f"{'-' if khat is None else f'{khat:.2f}'}: {flags}"
        )
    for method, reason in comparison.failed.items():
        print(f"{method:>16}: failed: {reason}")
    for method, reason in comparison.stopped.items():
        print(f"{method:>16}: {reason}")
    print(
        f"reference: {comparison.reference_name}; tables (comparison.md, arviz_summary.md, "
        f"loo.md where there is a log-likelihood), figures and posteriors/*.nc "
        f"(`pyrovae inspect FILE.nc`) in {out}"
    )


def _write_posteriors(comparison, out: Path, chains: dict[str, int]) -> None:
    from pyrovae.posterior.files import loo_lines, write_posteriors

    files = write_posteriors(comparison, out, chains)
    _print_warnings(files.warnings)
    for line in loo_lines(files.loo):
        print(line)


def _print_warnings(warnings: dict[str, list[str]]) -> None:
    for method, lines in warnings.items():
        for line in lines:
            print(f"warning: {method}: {line}")


def _inspect(args: argparse.Namespace) -> None:
    from pyrovae.posterior import diagnostics

    idata = diagnostics.load(args.file)
    attrs = {
        k: v
        for k, v in idata.attrs.items()
        if not k.startswith(("created", "arviz", "inference_library"))
    }
    print(f"{args.file}: " + ", ".join(f"{k}={v}" for k, v in attrs.items()))
    print(f"groups: {', '.join(idata.groups())}")
    print(diagnostics.summary(idata).to_string(float_format=lambda v: f"{v:.4g}"))
    lines = diagnostics.warnings(idata)
    print("\n".join(f"warning: {line}" for line in lines) if lines else "no warnings")
    for site in diagnostics.loo_variables(idata):
        elpd = diagnostics.loo(idata, site)
        k = float(elpd["pareto_k"].max())
        print(
            f"loo {site}: elpd_loo {float(elpd['elpd_loo']):.2f} (se {float(elpd['se']):.2f}, "
            f"MCSE {diagnostics.loo_mcse(idata, site):.2f}), p_loo {float(elpd['p_loo']):.2f}, "
            f"max k-hat {k:.2f} over {int(elpd['n_data_points'])} observations"
        )


def _load_model(args: argparse.Namespace):
    """The model ``args.target`` names (compare, sbc): ``path/to/file.py:function`` with
    ``--data``, or a built-in model's name."""
    from pyrovae.posterior.targets.user import load_user_model
    from pyrovae.posterior.targets.zoo import get_model

    if ":" in args.target:
        return load_user_model(args.target, args.data)
    if args.data is not None:
        raise UserError("--data applies to a model given as path/to/file.py:function")
    return get_model(args.target)


def _compare(args: argparse.Namespace) -> int:
    from pyrovae.train.rundir import CHECKPOINT, LOCAL_DIR

    target = Path(args.target)
    if (target / CHECKPOINT).is_file():
        if args.methods or args.reference or args.data or args.predictive:
            raise UserError(
                "--methods, --reference, --data and --predictive apply to models; a run "
                "directory compares amortized, per_point and metropolis with NUTS"
            )
        from pyrovae.pipeline import compare_run

        per_chain = max(1, args.samples // 2)  # two NUTS chains
        comparison, _, files = compare_run(
            target,
            points=args.points,
            num_samples=per_chain,
            warmup_steps=max(200, per_chain // 2),
            progress=not args.quiet,
        )
        _print_warnings(files.warnings)
        _print_comparison(comparison, target / LOCAL_DIR)
        return 0
    from pyrovae.posterior.methods import DEFAULT_METHODS, METHODS
    from pyrovae.posterior.run import compare_posterior
    from pyrovae.train.guard import ensure_writable

    if args.chain_workers < 0:
        raise UserError(f"--chain-workers: expected 0 or more, got {args.chain_workers}")
    model = _load_model(args)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else DEFAULT_METHODS
    out = ensure_writable(args.out or _default_out(f"compare-{model.name}"))
    comparison = compare_posterior(
        model,
        methods,
        reference_file=args.reference,
        num_samples=args.samples,
        seeds=args.seeds,
        progress=not args.quiet,
        predictive=args.predictive,
        dtype=args.dtype,
        mass=args.mass,
        time_limit=args.time_limit,
        method_time_limit=args.method_time_limit,
        chain_workers=args.chain_workers,
    )
    comparison.write(out)
    _write_posteriors(comparison, out, {name: m.chains for name, m in METHODS.items()})
    _print_comparison(comparison, out)
    return 0 if comparison.complete else EXIT_PARTIAL


def _add_sbc(sub: argparse._SubParsersAction) -> None:
    sbc = sub.add_parser(
        "sbc",
        help="simulation-based calibration of the methods on a model, or of a VAE's encoder",
        description="Simulation-based calibration (Talts et al. 2018): draw parameters from the "
        "prior and data from the model, fit each method, and test whether the ranks of the true "
        "values among its posterior draws are uniform (chi-square and z-tests of bias and "
        "dispersion; Bonferroni over a method's parameters). For a trained VAE run, the "
        "amortized version: z ~ p(z), x ~ p(x|z), ranks of z under q(z|x), per latent "
        "dimension. Writes sbc.md, sbc.csv, ranks.csv and "
        "ECDF-difference figures; exits 0 whether or not calibration passed.",
    )
    sbc.add_argument(
        "target", help="RUN_DIR, a built-in model name, or path/to/file.py:model_fn (with --data)"
    )
    sbc.add_argument(
        "--methods", help="comma-separated registered method names (models; default: nuts)"
    )
    sbc.add_argument(
        "--data",
        type=Path,
        help="JSON object of keyword arguments for a model given as file.py:function",
    )
    sbc.add_argument(
        "--out", type=Path, help="output folder (default: RUN_DIR/sbc, or runs/sbc-<name>-<time>)"
    )
    sbc.add_argument(
        "--replications",
        type=_positive_int,
        metavar="N",
        help="simulated data sets (default 100 for a model, 2000 for a run; at least 20)",
    )
    sbc.add_argument(
        "--samples",
        type=_positive_int,
        default=100,
        metavar="L",
        help="posterior draws per replication, so ranks are 0..L (default 100)",
    )
    sbc.add_argument("--seed", type=int, default=0, help="seed of the replications (default 0)")
    sbc.add_argument(
        "--warmup",
        type=_positive_int,
        metavar="STEPS",
        help="MCMC warm-up steps per fit (models; default 200)",
    )
    sbc.add_argument(
        "--dtype", choices=("float64", "float32"), help="precision of a model (default float64)"
    )
    sbc.add_argument("--quiet", action="store_true", help="no progress bar")


def _sbc(args: argparse.Namespace) -> int:
    from pyrovae.train.rundir import CHECKPOINT

    target = Path(args.target)
    if (target / CHECKPOINT).is_file():
        if args.methods or args.data or args.warmup or args.dtype:
            raise UserError(
                "--methods, --data, --warmup and --dtype apply to models; a run directory "
                "calibrates its encoder q(z|x)"
            )
        from pyrovae.sbc import sbc_run, summary_lines

        outcome = sbc_run(
            target,
            args.out,
            replications=args.replications or 2000,
            draws=args.samples,
            seed=args.seed,
        )
    else:
        from pyrovae.sbc import sbc_model, summary_lines

        model = _load_model(args)
        methods = [m.strip() for m in args.methods.split(",")] if args.methods else ["nuts"]
        options = {"warmup": args.warmup} if args.warmup else {}
        outcome = sbc_model(
            model,
            methods,
            args.out or _default_out(f"sbc-{model.name}"),
            replications=args.replications or 100,
            draws=args.samples,
            seed=args.seed,
            dtype=args.dtype or "float64",
            progress=not args.quiet,
            **options,
        )
    for line in summary_lines(outcome):
        print(line)
    return 0


def _launch(args: argparse.Namespace, argv: list[str]) -> int:
    """``--nproc N``: check the spec here, then start N processes with torchrun's launcher
    (each of them, started by it, runs the command itself)."""
    from pyrovae.train.distributed import launch, launched

    if launched():  # this is one of the N processes
        return {"train": _train, "evaluate": _evaluate, "run": _run}[args.command](args) or 0
    if args.command == "train":
        _resolve_spec(args)
    elif args.command == "run":
        from pyrovae.spec import load_spec

        load_spec(args.spec, args.overrides)
    return launch(args.nproc, _without_nproc(argv))


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less ``--nproc N`` (the started processes are the N)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "tensorboard", False):
        args.overrides.append("train.tensorboard=true")
    commands = {
        "train": _train,
        "evaluate": _evaluate,
        "run": _run,
        "family": _family,
        "compare": _compare,
        "inspect": _inspect,
        "sbc": _sbc,
        "spec": _spec,
    }
    try:
        if getattr(args, "nproc", 1) > 1:
            return _launch(args, list(sys.argv[1:] if argv is None else argv))
        status = commands[args.command](args)
    except UserError as err:
        print(f"pyrovae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"pyrovae {args.command}: {err}", file=sys.stderr)
        return err.exit_status
    except PyrovaeError as err:
        print(f"pyrovae {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrovae {args.command}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
