"""The `dagnet` command: train, evaluate, summary, gradcheck, render, diff, plot, maps,
import, export.

    dagnet train lenet --data fashion-mnist --epochs 2 --out runs/lenet
    dagnet evaluate runs/lenet --json
    dagnet summary lenet

`main` (dagnet/cli/main.py) builds the parser from one module per group of commands
(`train`, `inspect`, `draw`, `interchange`); `common` holds what they share.
"""
from dagnet.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
