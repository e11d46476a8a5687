"""Where a batch-1 forward's time goes: dagnet's inference program call by call against
onnxruntime's per-node profile (enable_profiling), same model and weights, 2 threads.

Prints one JSON object:
- "dagnet": the program's calls (chain_splits merged: each split conv chain one row), each
  timed alone in a loop of the whole program (median us per call over rounds), their sum,
  the program's run (EvalProgram.run), and plan.forward around it (feeds' checks, copies);
  with --unchained, the same with calls.CHAIN off: each split conv its own row;
- "ort": onnxruntime's nodes (median us per node from its profile), their sum, and its
  session.run wall-clock median.

    python benchmarks/profile_infer_b1.py [--model resnet_small] [--calls 400] [--unchained]
                                          [--no-ort] [--quick]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dagnet  # noqa: E402

import bench_infer  # noqa: E402
from bench_infer import inputs, model_setup, ort_runner  # noqa: E402


def dagnet_rows(model: str, n: int, chain: bool) -> dict:
    from dagnet.runtime import calls as calls_mod

    calls_mod.CHAIN = chain
    graph, shape, _, scores, params, state = model_setup(model)
    plan = dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state)
    feed = next(iter(plan.input_specs))
    x = inputs(shape, 1)
    plan.forward({feed: x}, mode="eval", outputs=[scores])
    prog = next(iter(plan.executor.programs.values()))
    bound = prog.bound[1]
    per = [[] for _ in bound]
    runs, fwds = [], []
    clock = time.perf_counter_ns
    values = {feed: x}
    for v, ins in prog.needs.items():
        if v != feed:
            values[v] = plan.params.get(v, plan.constants.get(v))
    for _ in range(n):  # the calls as EvalProgram.run makes them, each timed
        t = clock()
        plan.forward({feed: x}, mode="eval", outputs=[scores])
        fwds.append(clock() - t)
        t = clock()
        prog.run(values, plan.state, None, 1)
        runs.append(clock() - t)
        env = prog.env
        env.update(values)
        for k, (call, _) in enumerate(bound):
            t = clock()
            call()
            per[k].append(clock() - t)
        env.clear()
    rows = [{"call": ins.name, "kind": "chain" if call.__qualname__.startswith("_chain") else ins.kind,
             "us": statistics.median(p) / 1e3} for (call, ins), p in zip(bound, per)]
    calls_mod.CHAIN = True
    return {"rows": rows, "sum_us": sum(r["us"] for r in rows),
            "run_us": statistics.median(runs) / 1e3, "forward_us": statistics.median(fwds) / 1e3,
            "instructions": [f"{i.kind}:{i.name}" for i in prog.code]}


def ort_rows(model: str, n: int) -> dict:
    import onnxruntime as ort

    from dagnet.onnx import export

    graph, shape, _, scores, params, state = model_setup(model)
    x = inputs(shape, 1)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        export(dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state), path)
        run = ort_runner(graph, scores, params, state, folder)
        walls = []
        for _ in range(n):
            t = time.perf_counter_ns()
            run(x)
            walls.append(time.perf_counter_ns() - t)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(folder, "prof")
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for _ in range(n):
            s.run(None, {name: x})
        s.end_profiling()
        events = json.load(open(glob.glob(os.path.join(folder, "prof*.json"))[0]))
    nodes, order, model_runs = {}, [], []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = e["name"][:-len("_kernel_time")] + " " + e["args"].get("op_name", "")
            if key not in nodes:
                order.append(key)
            nodes.setdefault(key, []).append(e["dur"])
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            model_runs.append(e["dur"])
    rows = [{"node": k, "us": statistics.median(nodes[k][1:] or nodes[k])} for k in order]
    return {"rows": rows, "sum_us": sum(r["us"] for r in rows),
            "model_run_us": statistics.median(model_runs[1:]), "wall_us": statistics.median(walls) / 1e3}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet_small")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--unchained", action="store_true")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 calls: the script runs (tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.calls = 3
    from dagnet import kernels

    out = {"load_average": os.getloadavg(), "threads": kernels.NUM_THREADS,
           "dagnet": dagnet_rows(args.model, args.calls, True)}
    if args.unchained:
        out["dagnet_unchained"] = dagnet_rows(args.model, args.calls, False)
    if not args.no_ort and bench_infer.have_ort():
        out["ort"] = ort_rows(args.model, args.calls)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
