"""The `dagnet` parser and entry point: one sub-command module per group of commands.

A user's mistake (bad path, unknown model, bad flag value) prints one line and exits with 2.
"""
from __future__ import annotations

import argparse
import os
import sys

from dagnet.cli import draw, failures, inspect, interchange, train

#: the modules whose `register(sub)` adds their commands, in the order --help lists them
COMMAND_MODULES = (train, inspect, draw, interchange)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (not usage + error) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dagnet", description="Graph-compiled neural networks: "
                "train, evaluate, inspect and render models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "out", "") is None:
        args.out = os.path.join("runs", os.path.splitext(os.path.basename(args.model))[0])
    # Every failure is one line and a non-zero exit code (dagnet/cli/failures.py)
    return failures.run(args.func, args, args.command)


if __name__ == "__main__":
    sys.exit(main())
