"""The `dagnet` parser and entry point: one sub-command module per group of commands.

A user's mistake (bad path, unknown model, bad flag value) prints one line and exits with 2.
"""
from __future__ import annotations

import argparse
import os
import sys

from dagnet.cli import (batches, draw, failures, inspect, interchange, predict, recipe, report,
                        train, tune)

#: the modules whose `register(sub)` adds their commands, in the order --help lists them
COMMAND_MODULES = (train, inspect, predict, draw, interchange, report, tune, batches)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text  # `is`: a default of 0 is worth showing, though 0 == False
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (not usage + error) and exit code 2, and
    every command's --help shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dagnet", description="Graph-compiled neural networks: "
                "train, evaluate, inspect and render models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    p.commands = sub.choices  # {name: sub-parser}: a spec's recipe sets `train`'s defaults
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Every failure is one line and a non-zero exit code (dagnet/cli/failures.py)
    return failures.run(lambda a: _run(parser, a, argv), args, args.command)


def _run(parser, args, argv) -> int:
    """The command, after a spec's recipe has set its defaults (dagnet/cli/recipe.py)."""
    args = recipe.reparse(parser, args, argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --ranks N` reruns it
    if getattr(args, "out", "") is None:
        args.out = os.path.join("runs", os.path.splitext(os.path.basename(args.model))[0])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
