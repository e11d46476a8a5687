"""Checks of a command's flags before it does any work: output paths that can take a file (or
a folder of pictures), counts and tolerances in range. Each failure is a UsageError naming the
flag, so a mistake costs a line, not a run."""
from __future__ import annotations

import math
import os

from dagnet.cli.common import UsageError


def output_file(path, flag: str = "-o"):
    """`path` when it can become a file: not a folder, not below a file. None passes through."""
    if path is None:
        return None
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder; give a file name (e.g. "
                         f"{os.path.join(path, 'out.svg')})")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def output_folder(path, flag: str):
    """`path` when it is (or can become) a folder."""
    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a file; give a folder (it is created if missing)")
    return path


def at_least(flag: str, value, low: int):
    if value is not None and value < low:
        raise UsageError(f"{flag} must be an integer >= {low}, got {value}")
    return value


def positive(flag: str, value):
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a number > 0, got {value}")
    return value
