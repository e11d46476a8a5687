"""The catalogue's registry: a Case per user-facing failure, and the small fixtures cases share.

catalogue.py, catalogue_apps.py, catalogue_onnx.py and catalogue_runs.py register their cases
here with @case; catalogue.py runs them and writes docs/errors.md."""
from __future__ import annotations

from dataclasses import dataclass

import dagnet  # noqa: F401 - before numpy (dagnet sets up OpenBLAS's threads)
import numpy as np
from dagnet.train.solver import Solver
from tests.reliability.helpers import tiny_mlp


@dataclass
class Case:
    id: str
    category: str
    cls: type
    when: str
    fix: str
    trigger: object  # callable(tmp: pathlib.Path) that raises
    where: str = ""  # a substring the message must hold: the node, key path, step or file


CASES: list[Case] = []


def case(id, category, cls, when, fix, where=""):
    def wrap(fn):
        CASES.append(Case(id, category, cls, when, fix, fn, where))
        return fn
    return wrap


def quiet_solver(plan, data, **kw):
    kw.setdefault("verbose", False)
    kw.setdefault("num_epochs", 1)
    kw.setdefault("batch_size", 4)
    return Solver(plan, data, **kw)


def mlp_plan(dtype="float32", **kw):
    return dagnet.compile(tiny_mlp(), seed=0, dtype=dtype, **kw)


def X(n=4, d=6, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((n, d)).astype(dtype)
