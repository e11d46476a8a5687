"""Per-op table of an eval forward on one thread: dagnet's inference program, call by call,
beside onnxruntime's per-node profile of dagnet's ONNX export, alternating in this process.
Prints one JSON object: per contender the median ms per op and per forward, with the load.

    python benchmarks/profile_infer.py [--model resnet_small] [--batch 16] [--rounds 15]
                                       [--runs 5] [--quick]

Why one thread and a chunk-sized batch: at batch 256 on two threads dagnet runs the convs as
chunks of runtime/chunks.py's CHUNK samples, each chunk on one thread through a one-thread
program (chunks.py): this times that program, at that batch, against onnxruntime on one
intra-op thread at the same batch (its per-node times, SessionOptions.enable_profiling).
Each round runs `runs` forwards of each in turn (dagnet's calls timed one by one), so the
machine's drift falls on both; the medians are over all rounds' runs. onnxruntime fuses and
renames nodes (its Conv nodes take the batchnorm, relu and residual add; "ReorderInput" /
"ReorderOutput" convert to and from its blocked layout): the rows are its names, in its order.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_infer  # noqa: E402
import dagnet  # noqa: E402

from dagnet.runtime.program import EvalProgram, _fast_kernel  # noqa: E402


def dagnet_rows(graph, scores, params, state, x):
    """(row names, run): run() times one forward of the one-thread program call by call and
    returns seconds per row."""
    plan = dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state)
    program = EvalProgram(plan, (scores,), threads=1)
    feed = next(iter(plan.input_specs))
    values = {feed: x, **plan.params}
    program.run(values, plan.state, None, len(x))  # folds and binds
    calls = program.bound[len(x)]
    names = []
    for _, ins in calls:
        kernel = _fast_kernel(ins, plan.params[ins.params[0]].shape) if ins.kind == "conv" else None
        names.append(f"{ins.kind}{'/' + kernel if kernel else ''} {ins.name}")

    def run():
        env, out = program.env, []
        env.clear()
        env.update(values)
        for call, _ in calls:
            t = time.perf_counter()
            call()
            out.append(time.perf_counter() - t)
        env.clear()
        return out
    return names, run


def ort_session(graph, scores, params, state, folder):
    """onnxruntime on one intra-op thread, profiling, on dagnet's export of the eval plan."""
    import onnxruntime as ort

    from dagnet.onnx import export

    path = os.path.join(folder, "model.onnx")
    export(dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state), path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(folder, "profile")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_rows(profile_path: str, skip_runs: int):
    """{node (op): [seconds of each run]} from onnxruntime's profile, the first skip_runs
    runs left out (its warm-up)."""
    with open(profile_path) as f:
        events = json.load(f)
    rows: dict = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['name'][:-len('_kernel_time')]} ({e['args'].get('op_name')})"
            rows.setdefault(key, []).append(e["dur"] * 1e-6)
    return {k: v[skip_runs:] for k, v in rows.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet_small", choices=list(bench_infer.MODELS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=5, help="forwards of each contender per round")
    ap.add_argument("--quick", action="store_true", help="one round of one run at batch 2: the "
                    "script runs (tests)")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch, a.rounds, a.runs = 2, 1, 1
    graph, shape, _, scores, params, state = bench_infer.model_setup(a.model)
    x = bench_infer.inputs(shape, a.batch)
    names, dagnet_run = dagnet_rows(graph, scores, params, state, x)
    dagnet_times = [dagnet_run()]  # warm-up, dropped below
    report = {"model": a.model, "batch": a.batch, "threads": 1, "rounds": a.rounds,
              "runs": a.runs, "ms": {}, "forward_ms": {}}
    ort = None
    if bench_infer.have_ort():
        folder = tempfile.mkdtemp()
        ort = ort_session(graph, scores, params, state, folder)
        feed = ort.get_inputs()[0].name
        warm = 3
        for _ in range(warm):
            ort.run(None, {feed: x})
    for _ in range(a.rounds):
        dagnet_times += [dagnet_run() for _ in range(a.runs)]
        if ort is not None:
            for _ in range(a.runs):
                ort.run(None, {feed: x})
    dagnet_times = dagnet_times[1:]
    report["ms"]["dagnet"] = {n: 1e3 * statistics.median(t[k] for t in dagnet_times)
                              for k, n in enumerate(names)}
    report["forward_ms"]["dagnet"] = 1e3 * statistics.median(sum(t) for t in dagnet_times)
    if ort is not None:
        rows = ort_rows(ort.end_profiling(), warm)
        report["ms"]["onnxruntime"] = {k: 1e3 * statistics.median(v) for k, v in rows.items()}
        runs = min(len(v) for v in rows.values())
        report["forward_ms"]["onnxruntime"] = 1e3 * statistics.median(
            sum(v[r] for v in rows.values()) for r in range(runs))
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
