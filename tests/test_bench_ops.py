"""benchmarks/bench_ops.py still runs and prints its JSON (on tiny sizes; times are not checked)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_ops_quick_prints_one_json_object():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_ops.py"), "--quick"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["quick"] is True
    assert set(report["summary"]) == {"conv_speedup_vs_reference_seed_shape",
                                      "worst_conv_ratio_vs_torch", "pool_ratio_vs_torch"}
    assert report["summary"]["conv_speedup_vs_reference_seed_shape"] > 0
    assert "blas" in report["machine"] and "scaled_from_batch" in report["shapes"][0]["reference"]
    for row in report["shapes"]:
        assert set(row["dagnet"]) >= {"conv_fwd_ms", "conv_fwd_bwd_ms", "pool_fwd_ms", "pool_fwd_bwd_ms"}
