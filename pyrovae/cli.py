"""The ``pyrovae`` command line.

It only parses arguments and calls the functions a Python user calls. User
errors (bad spec, data, paths) print one line on stderr and exit with status
2; a training failure (NaN loss) prints one line and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pyrovae.errors import PyrovaeError, UserError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="TOML spec file (default: the embedded digits VAE)")
    p.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<time>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set train.epochs=5 or "
        "--set model.encoder.hidden=[256,128] (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pyrovae", description="Declarative VAEs on Pyro.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser(
        "train",
        help="train the model a spec declares",
        description="Train a VAE and write a run directory.",
    )
    _add_spec_arguments(train)
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    return parser


def _resolve_spec(args: argparse.Namespace):
    from pyrovae.runs import SPEC
    from pyrovae.spec import load_spec

    if args.resume:
        if args.out is None:
            raise UserError("--resume needs --out RUN_DIR, the run to continue")
        if not (args.out / SPEC).is_file():
            raise UserError(f"--resume: {args.out} holds no run to continue (no {SPEC})")
        return load_spec(args.spec or args.out / SPEC, args.overrides)
    return load_spec(args.spec, args.overrides)


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train(args: argparse.Namespace) -> None:
    from pyrovae.pipeline import train_model

    spec = _resolve_spec(args)
    out = args.out or _default_out(spec.name)
    outcome = train_model(spec, out, resume=args.resume, progress=not args.quiet)
    m = outcome.metrics
    print(
        f"trained {m['epochs']} epochs in {m['seconds']:.1f} s; "
        f"test ELBO {m['test_elbo_nats']:.3f} nats per example; run in {out}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {"train": _train}
    try:
        commands[args.command](args)
    except UserError as err:
        print(f"pyrovae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except PyrovaeError as err:
        print(f"pyrovae {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrovae {args.command}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
