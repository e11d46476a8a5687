"""The benchmark scripts still run (tiny sizes) and print the promised JSON; no times asserted."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(script, *args):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bench_plan_quick():
    out = run("bench_plan.py")
    assert set(out["summary"]) == {"compile_1000_chain_s", "compile_1000_residual_s",
                                   "fused_speedup_lenet", "eval_peak_ratio_lenet"}
    assert all(v > 0 for v in out["summary"].values())


def test_bench_train_quick(tmp_path):
    out = run("bench_train.py", "--plots", str(tmp_path))
    assert set(out["summary"]) == {"lenet_ratio_vs_torch", "lenet_ratio_vs_torch_own_process",
                                   "fused_speedup_lenet", "lenet_epoch_s"}
    assert set(out["models"]) == {"lenet", "three_layer_convnet", "resnet_small"}
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rows_quick():
    """Every variant of the row kernel this CPU runs and the columns kernel are timed, and the
    rule's pick is reported with its cost against the faster kernel."""
    from dagnet import kernels

    out = run("bench_rows.py")
    layer = out["layers"]["tiny"]
    assert set(layer["ms"]) == {f"rows_{kernels.ROW_ISAS[i]}" for i in range(kernels.ROW_ISA + 1)} | {"columns"}
    assert layer["rule_picks"] in ("rows", "columns") and layer["rule_cost"] >= 1
    assert out["row_isa"] == kernels.ROW_ISAS[kernels.ROW_ISA]
    assert out["summary"]["worst_rule_cost"] == layer["rule_cost"]
