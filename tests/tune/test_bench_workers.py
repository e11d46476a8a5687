"""benchmarks/bench_tune_workers.py still runs (--quick) and prints the promised JSON; no
times asserted."""
import json
import pathlib
import statistics
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_bench_tune_workers_quick():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_tune_workers.py"), "--quick"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    names = list(out["img_s_runs"])
    assert names[0] == "1 worker, all cores" and len(names) == 5
    first = statistics.median(out["img_s_runs"][names[0]])
    for n in names:
        assert all(v > 0 for v in out["img_s_runs"][n])
        m = statistics.median(out["img_s_runs"][n])
        assert out["ratio_vs_1_worker"][n] == pytest.approx(m / first, abs=1e-3)
