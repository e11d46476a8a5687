"""Run the attacks: build the shared inputs once, a fresh folder per attack, classify each."""
from __future__ import annotations

import pathlib
import shutil
import tempfile

from tests.reliability.attack import (cases_api, cases_bounds, cases_cli, cases_folder, cases_new,
                                       cases_resume)
from tests.reliability.attack.env import Env
from tests.reliability.attack.harness import ATTACKS, limit_memory, report, run_attack, summary

MODULES = (cases_resume, cases_folder, cases_cli, cases_api, cases_bounds, cases_new)

#: the attack process's address-space cap (GiB): a blow-up is a MemoryError, not a dead machine
MEMORY_CAP_GIB = 8


def selected(k: str = "", area: str = ""):
    return [a for a in ATTACKS if k in a.id and (not area or a.area == area)]


def run_all(k: str = "", area: str = "", progress=None):
    """(results, counts) of the selected attacks."""
    limit_memory(MEMORY_CAP_GIB)
    root = pathlib.Path(tempfile.mkdtemp(prefix="dagnet-attack-"))
    try:
        env = Env(root)
        results = []
        for i, a in enumerate(selected(k, area)):
            env.fresh()
            r = run_attack(a, env)
            results.append(r)
            if progress is not None:
                print(f"[{i + 1}] {r.outcome:10s} {r.seconds:5.1f}s {a.id}", file=progress, flush=True)
        report(results, file=progress)
        return results, summary(results)
    finally:
        shutil.rmtree(root, ignore_errors=True)
