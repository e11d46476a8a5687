"""The benchmark scripts still run (tiny sizes) and print the promised JSON; no times asserted."""
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest

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


def test_bench_train_times_every_zoo_model_by_default():
    path = ROOT / "benchmarks" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    zoo = {"lenet", "lenet_bn", "three_layer_convnet", "convnet_deep", "resnet_small"}
    assert zoo <= set(bench.MODELS) <= zoo | {"resnet20"}


def test_bench_train_quick():
    # two models, a plain and a residual one: each model costs a compile and a torch process
    # (the six took a minute of CPU); the default list is checked above
    out = run("bench_train.py", "--models", "lenet", "resnet_small")
    assert set(out["summary"]) == {"lenet_ratio_vs_torch", "lenet_ratio_vs_torch_own_process",
                                   "fused_speedup_lenet", "lenet_epoch_s",
                                   "worst_train_ratio_vs_torch", "worst_train_ratio_vs_torch_compile"}
    assert set(out["models"]) == {"lenet", "resnet_small"}
    if out["torch"]:  # the headline: the slowest model against torch in its own process, each
        # model's ratio the median of its alternating rounds' ratios (two rounds in --quick)
        for m in out["models"].values():
            assert len(m["round_ratios_vs_torch"]) == 2 and m["dagnet_own_process_img_s"] > 0
            assert m["ratio_vs_torch_own_process"] == pytest.approx(statistics.median(m["round_ratios_vs_torch"]))
        ratios = [m["ratio_vs_torch_own_process"] for m in out["models"].values()]
        assert out["summary"]["worst_train_ratio_vs_torch"] == pytest.approx(min(ratios))
        assert out["summary"]["worst_train_ratio_vs_torch_compile"] is None  # --quick skips compile


@pytest.mark.slow
def test_bench_series_quick(tmp_path):
    """Every contender of each panel in its own process; the ratios are dagnet's over theirs
    point by point; the panels drawn."""
    out = run("bench_series.py", "--plots", str(tmp_path))
    assert set(out["series"]) == {"train:lenet", "infer:lenet", "train:convnet_deep"}
    for key, r in out["series"].items():
        assert not r["errors"], r["errors"]
        assert "dagnet" in r["img_s"] and all(len(v) == len(r["x"]) for v in r["img_s"].values())
        for other, ratios in r["ratio_of_dagnet_to"].items():
            assert ratios == pytest.approx([d / o for d, o in zip(r["img_s"]["dagnet"], r["img_s"][other])])
    if out["series"]["infer:lenet"]["img_s"].keys() >= {"onnxruntime", "torch"}:
        assert set(out["series"]["infer:lenet"]["ratio_of_dagnet_to"]) == {"onnxruntime", "torch"}
    assert (tmp_path / "series.png").read_bytes()[:4] == b"\x89PNG"


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


@pytest.mark.dist
def test_bench_dist_quick():
    here = os.path.dirname(sys.executable)
    if importlib.util.find_spec("mpi4py") is None or \
            shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", "")) is None:
        pytest.skip("needs mpi4py and mpiexec: pip install -e '.[dist]'")
    out = run("bench_dist.py")
    summary = out["summary"]
    assert set(summary) == {"scaling_efficiency_2_ranks", "machine_ceiling_2_procs",
                            "max_rel_param_diff_vs_single"}
    assert summary["max_rel_param_diff_vs_single"] < 1e-6
    lenet = out["models"]["lenet"]
    assert lenet["images_per_s_1_rank"] > 0 and lenet["images_per_s_2_ranks"] > 0
    assert lenet["images_per_s_2_independent"] > 0 and lenet["machine_ceiling_2_procs"] > 0
    assert all(v > 0 for v in lenet["cpu_ms_per_step"].values())
    # the headline is the median of the rounds' paired ratios; the phases add up to the step
    assert summary["scaling_efficiency_2_ranks"]["lenet"] == lenet["scaling_efficiency"]
    assert lenet["scaling_efficiency"] == pytest.approx(
        float(np.median(lenet["scaling_efficiency_rounds"])), abs=1.5e-3)
    for split in lenet["cpu_ms_per_step_phases"].values():
        assert abs(sum(v for k, v in split.items() if k != "step") - split["step"]) < 0.01
    assert sum(lenet["last_to_finish_share"]) == pytest.approx(1.0)
    # the same ratio net of the run delay; each set-up's share of its windows spent waiting
    # for a core (ABBA blocks: single's windows and every other set-up's)
    assert lenet["scaling_efficiency_net_of_run_delay"] > 0
    assert set(lenet["run_delay_share"]) == {"single", "independent", "dual", "dual_spin",
                                             "dual_mpi", "naive"}
    assert all(0 <= v <= 1 for v in lenet["run_delay_share"].values())
    # the futex-napping wait against the spinning one, in the same rounds
    assert lenet["nap_over_spin"] > 0 and 0 <= lenet["contended_share"] <= 1
    assert set(lenet["cpu_ms_per_step_phases"]) == {"2_independent", "2_ranks", "2_ranks_spin"}
    assert 0 <= lenet["overlap_fraction"] <= 1 and lenet["communication_ms"] > 0
    # the 1-rank baseline from both ranks: a block whose two 1-rank windows ran on different
    # cores gives the cores' speed ratio (the faster over the slower: at least 1)
    assert 0 <= lenet["core_speed_blocks"] <= 5  # one round of five blocks
    if lenet["core_speed_blocks"]:
        assert lenet["core_speed_ratio"] >= 1.0
    # a non-negative fit: on a quick, noisy run the per-byte cost may come out as 0
    assert out["cost_model"]["alpha_s"] > 0 and out["cost_model"]["beta_s_per_byte"] >= 0
    assert set(out["cost_model"]["efficiency"]["lenet"]) == {"2", "8", "64", "512"}


def test_bench_import_order_quick():
    """Both orders are timed in their own processes; neither import order warns."""
    out = run("bench_import_order.py")
    assert {k: len(v) for k, v in out["step_ms"].items()} == {"dagnet_first": 1, "numpy_first": 1}
    assert out["import_warnings"] == {"dagnet_first": 0, "numpy_first": 0}
    assert out["summary"]["numpy_first_ratio"] > 0


def test_bench_infer_quick():
    """dagnet, onnxruntime and torch on LeNet and resnet_small: the issue's summary keys, the
    outputs checked equal, each contender's own-process speed and peak memory."""
    out = run("bench_infer.py")
    assert {"lenet_infer_ratio_vs_ort", "resnet_small_infer_ratio_vs_ort",
            "worst_infer_ratio_vs_ort"} <= set(out["summary"])
    assert set(out["models"]) >= {"lenet", "resnet_small"}
    assert out["summary"]["outputs_equal"] is True
    for m in out["models"].values():
        assert set(m["batches"]) == {"1", "4"}
        own = m["own_process"]
        # a tiny batch may fit in memory freed earlier: dagnet's rise can be 0, never negative
        assert own["dagnet"]["peak_rss_bytes"] >= 0 and own["dagnet"]["max_scaled_diff"] == 0
        if out["onnxruntime"]:
            assert all(r["ort_max_scaled_diff"] < 1e-3 for r in m["batches"].values())
            assert all(r["ratio_vs_ort"] > 0 and r["ratio_vs_ort_same_process"] > 0
                       for r in m["batches"].values())
            for b, r in m["batches"].items():  # the headline: the median of alternating rounds' ratios
                assert r["round_ratios_vs_ort"] == pytest.approx(
                    [t / d for d, t in zip(own["dagnet"]["round_s"][b], own["onnxruntime"]["round_s"][b])])
                assert r["ratio_vs_ort"] == pytest.approx(statistics.median(r["round_ratios_vs_ort"]))
            assert own["onnxruntime"]["max_scaled_diff"] < 1e-3
            assert own["onnxruntime"]["peak_rss_bytes"] > 0  # its session holds the weights
        if out["torch"]:
            assert own["torch"]["max_scaled_diff"] < 1e-3
    if out["onnxruntime"]:
        ratios = [out["models"][k]["batches"]["4"]["ratio_vs_ort"] for k in ("lenet", "resnet_small")]
        assert out["summary"]["worst_infer_ratio_vs_ort"] == pytest.approx(min(ratios))


def test_bench_fusion_ab_quick():
    """The grouping A/B: models, chains and compile times, each on and off; LeNet has no generic
    chain (its hand-written patterns take everything), nor has resnet_small in train (the
    registered batchnorm+add+relu takes its residual joins); in eval its add+relu are chains."""
    out = run("bench_fusion_ab.py")
    assert set(out["summary"]) == set(out["models"]) | set(out["chains"])
    assert out["models"]["lenet.train"]["generic_steps"] == 0
    assert out["models"]["resnet_small.train"]["generic_steps"] == 0
    assert out["models"]["resnet_small.eval"]["generic_steps"] > 0
    assert all(v["generic_steps"] > 0 for v in out["chains"].values())
    assert set(out["compile"]["chain_1000"]) == {"on", "off"}


def test_bench_direct_quick():
    from dagnet.ops import direct
    if direct._ext is None:
        pytest.skip("direct kernels not built")
    out = run("bench_direct.py")
    assert set(out["convs"]) == {"resnet_small.stem", "resnet_small.block_16",
                                 "resnet_small.down_16_32", "resnet_small.skip_1x1",
                                 "resnet_small.block_32", "lenet.conv1", "lenet.conv2"}
    for c in out["convs"].values():
        assert c["gflop_s"] > 0 and c["of_openblas_gemm"] > 0 and c["grid_extra"] >= 1
    assert out["convs"]["resnet_small.block_16"]["grid_extra"] == pytest.approx(30 / 28, abs=1e-3)
    for name in ("resnet_small.block_16", "resnet_small.block_32"):  # both Winograd tiles
        assert out["convs"][name]["wino_speedup"] > 0 and out["convs"][name]["wino4_speedup"] > 0
    assert "wino4_speedup" not in out["convs"]["resnet_small.stem"]


def test_bench_chunks_quick():
    out = run("bench_chunks.py", "--models", "lenet")
    assert out["batch"] == 24 and set(out["models"]["lenet"]) == {"whole", "chunk8"}
    assert out["models"]["lenet"]["chunk8"]["cpu_ratio"] > 0  # and its scores were the whole's


def test_ab_flag_quick():
    out = run("ab_flag.py", "dagnet.ops.winograd.DX_ENABLED", "dagnet.ops.direct.DW_WIDE")
    assert out["flags"] == ["dagnet.ops.winograd.DX_ENABLED", "dagnet.ops.direct.DW_WIDE"]
    assert out["clock"] == "wall"
    assert out["resnet_small"]["on_ms"] > 0 and out["resnet_small"]["off_ms"] > 0


def test_ab_infer_quick():
    out = run("ab_infer.py", "dagnet.runtime.calls.HEAD", "--models", "resnet_small")
    row = out["resnet_small"]
    assert row["same_bits"] and row["on_us"] > 0 and row["cpu_speedup"] > 0


def test_profile_infer_b1_quick():
    out = run("profile_infer_b1.py", "--unchained")
    one, each = out["dagnet"], out["dagnet_unchained"]
    if out["threads"] >= 2:  # batch 1 < threads: split convs, chained
        assert [r["kind"] for r in one["rows"]] == ["chain"]  # resnet_small's b1 forward: one call
    assert [r["kind"] for r in each["rows"]].count("conv") == 10
    assert all(r["us"] > 0 for r in one["rows"] + each["rows"])


def test_bench_conv_parts_quick():
    from dagnet.ops import direct
    if direct._ext is None:
        pytest.skip("direct kernels not built")
    out = run("bench_conv_parts.py", "dagnet", "--reps", "1")
    assert out["lib"] == "dagnet" and len(out) == 8
    for v in (v for k, v in out.items() if k != "lib"):
        assert v["kind"] in ("direct", "planes", "im2col")
        assert set(v) == {"kind", "fwd", "dx", "dw", "bwd"}
    # resnet20's 64-channel 8 x 8 conv runs on the direct kernels' planes (ops/conv_planes.py)
    assert out["r20 64ch 8x8"]["kind"] == "planes" and out["r20 32ch 16x16"]["kind"] == "direct"


@pytest.mark.dist
def test_dist_timeline_quick():
    """The skew's split into start, CPU, run delay and the rest adds up: the parts' shares of
    the skew's variance sum to 1 (each is cov(part, skew) / var(skew))."""
    here = os.path.dirname(sys.executable)
    if importlib.util.find_spec("mpi4py") is None or \
            shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", "")) is None:
        pytest.skip("needs mpi4py and mpiexec: pip install -e '.[dist]'")
    out = run("dist_timeline.py", "--small-bucket-mb", "0.1")
    assert set(out) >= {"independent", "rule", "spin", "nap", "rule_small"}
    assert all(out[k]["steps"] == 4 for k in ("independent", "rule", "rule_small"))
    for kind in ("rule", "spin", "nap", "rule_small"):
        shares = out[kind]["parts_share_of_skew_variance"]
        assert set(shares) == {"start", "cpu", "run_delay", "rest"}
        assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
        assert 0 <= out[kind]["rank0_later_share"] <= 1
        assert out[kind]["exposed_ms_median"] >= 0


def test_dist_contention_pairs_an_alone_window_with_a_sleeping_one():
    """In every window one worker is alone only while the other sleeps (an earlier schedule
    had both 'alone' at once, so its alone steps ran in pairs)."""
    spec = importlib.util.spec_from_file_location("dist_contention",
                                                  ROOT / "benchmarks" / "dist_contention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    windows = module.windows

    for r in range(4):
        for a, b in zip(windows(0, r), windows(1, r)):
            assert (a, b) in {("alone", "idle"), ("idle", "alone"), ("pair", "pair")}
        assert windows(0, r).count("alone") == windows(1, r).count("alone") == 1


def test_dist_contention_quick():
    """Two workers, alone and in pairs: every plan step timed in both kinds of window, the
    table sorted by the CPU time lost in pairs, the step's own row apart."""
    out = run("dist_contention.py")
    import dagnet
    from dagnet.models import resnet_small
    plan = dagnet.compile(resnet_small())
    ms = out["ms"]
    assert {s.name + " fwd" for s in plan.steps} <= set(ms)
    assert "block1.bn2+block1.add+block1.relu2 bwd | batchnorm_backward" in ms
    assert "update (sgd_momentum)" in ms and out["step"]["alone_ms"] > 0
    # 2 rounds of one step a window: each worker alone once and in two pairs a round
    assert out["steps"]["alone"] == 4 and out["steps"]["pair"] == 8
    lost = [v["lost_ms"] for v in ms.values()]
    assert lost == sorted(lost, reverse=True)
    assert all(v["pair_ms"] - v["alone_ms"] == pytest.approx(v["lost_ms"], abs=2e-3)
               for v in ms.values())


def test_profile_step_quick():
    out = run("profile_step.py", "dagnet", "--model", "resnet_small")
    import dagnet
    from dagnet.models import resnet_small
    plan = dagnet.compile(resnet_small())
    ms = out["ms"]
    # every step timed both ways, the fused convs' kernels apart, the rest of the step named
    assert {s.name + " fwd" for s in plan.steps} <= set(ms)
    assert "stem.conv+stem.bn+stem.relu bwd | batchnorm_backward" in ms
    assert {"update (sgd_momentum)", "step", "cpu step"} <= set(ms)
    assert all(v >= 0 for k, v in ms.items() if "executor" not in k) and out["step_ms"] > 0
    pytest.importorskip("torch")
    out = run("profile_step.py", "torch", "--model", "resnet_small")
    assert out["contender"] == "torch" and any(k.startswith("Optimizer.step") for k in out["ms"])
    assert any(k.startswith("bwd ConvolutionBackward0") for k in out["ms"])


def test_profile_infer_quick():
    out = run("profile_infer.py")
    ms = out["ms"]["dagnet"]
    assert out["batch"] == 2 and "affine scores" in ms and all(v > 0 for v in ms.values())
    assert any(k.startswith("conv") and k.endswith("stem.conv+stem.bn+stem.relu") for k in ms)
    if "onnxruntime" in ms:  # its nodes by its own names
        assert any(k.endswith("(Conv)") for k in ms["onnxruntime"])
