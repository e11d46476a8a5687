"""benchmarks/bench_depthwise.py still runs (tiny sizes) and prints the promised JSON; no times
asserted."""
import json
import pathlib
import subprocess
import sys

import pytest

from dagnet.ops import depthwise

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(depthwise._ext is None, reason="depthwise kernels not built")
def test_bench_depthwise_quick():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_depthwise.py"), "--quick"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["summary"]) == {
        "depthwise_train_op_ratio_old_new", "mobilenet_train_ratio_new_old",
        "mobilenet_train_ratio_vs_torch", "mobilenet_eval_ratio_vs_torch", "dw_share_old",
        "dw_share_new"}
    shapes = out["per_op"]["shapes"]
    assert sum(s["count"] for s in shapes.values()) == 17  # MobileNet-v2's depthwise convs
    assert set(out["channels_per_group_ratio_old_new"]) == {"1", "2", "4", "8", "16", "32"}
    assert 0 < out["summary"]["dw_share_new"] < 1 and 0 < out["summary"]["dw_share_old"] < 1
    if out["torch"]:  # torch eager in its own process, both modes
        assert out["summary"]["mobilenet_train_ratio_vs_torch"] > 0
        assert out["summary"]["mobilenet_eval_ratio_vs_torch"] > 0
