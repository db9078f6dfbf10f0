"""Render the command-line reference (docs/cli.md) from the argument parser itself."""

from __future__ import annotations

import argparse

from pyrovae.cli import EXIT_PARTIAL, build_parser

__all__ = ["cli_reference"]

WIDTH = 88
"""Columns of the rendered help, fixed so that the page does not depend on a terminal."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=WIDTH)


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = _formatter
    return parser.format_help().rstrip()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _registries() -> list[str]:
    from pyrovae.posterior.methods import DEFAULT_METHODS, METHODS
    from pyrovae.posterior.targets.zoo import MODELS

    return [
        "",
        f"Built-in models: {', '.join(f'`{m}`' for m in MODELS)}.",
        "",
        f"Methods: {', '.join(f'`{m}`' for m in METHODS)} "
        f"(default: `{','.join(DEFAULT_METHODS)}`).",
    ]


def cli_reference() -> str:
    """Markdown page of every ``pyrovae`` subcommand's ``--help``."""
    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Every `pyrovae` command's `--help`, generated from `pyrovae/cli.py` by",
        "`python -m pyrovae._clidoc > docs/cli.md` (a test keeps it in sync).",
        "",
        "Exit status: 0 done; 1 training failed (a NaN or infinite loss; the last good",
        "checkpoint is kept); 2 bad input (spec, data, paths, memory; nothing was trained);",
        f"{EXIT_PARTIAL} a comparison in which some methods failed or were stopped (the others",
        "are written); 130 or 143 stopped by Ctrl-C or SIGTERM (continue with `--resume`).",
        "",
        "```text",
        _help(parser),
        "```",
    ]
    for name, sub in _subcommands(parser).items():
        lines += ["", f"## `pyrovae {name}`", "", "```text", _help(sub), "```"]
        if name == "compare":
            lines += _registries()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(cli_reference(), end="")
