"""Inference benchmark: prints one JSON object.

Eval-mode images/s (the scores of a batch, float32) at batch 1 and 256 for LeNet and
resnet_small (and, when named with --models, ResNet-50 and GoogLeNet at 224x224, batch 1 and 8,
MobileNet-v2 at 32x32, batch 1 and 64): dagnet's fused
eval plan, onnxruntime (CPU provider, 2 intra-op threads, all graph optimisations) running
dagnet's ONNX export, and PyTorch eager, with the same weights and batchnorm statistics.

- every contender in a process of its own, with its own thread defaults, all started first and
  timed in alternating windows (benchmarks/alternate.py; each timed sample SAMPLE_IMAGES images
  at least: 64 calls at batch 1): its images/s there (median of its windows), the headline
  ratios (the median of the rounds' ratios: the VM's drift cancels within a round) and its peak
  memory (the rise of the resident set's high-water mark over what the imports left);
- dagnet against onnxruntime also alternating in this process, medians, and dagnet's plan run
  step by step by its executor ("dagnet_steps": what its inference program, runtime/program.py,
  gains over that) (a detail: there
  onnxruntime runs without spinning threads, whose spinning slowed dagnet after each of its
  calls 3x on a loaded 2-core machine);
- outputs checked equal: onnxruntime's and torch's scores against dagnet's, the max difference
  over the scores' scale;
- dagnet's own process also reports how many of its batch-1 conv loops ran with the spinning
  helper threads and how many alone ("split_loops": alone, when the helpers found no free core);
- with onnx installed, the seconds to import dagnet's ONNX export and compile it (medians of 3).

    python benchmarks/bench_infer.py [--quick] [--models lenet resnet_small] [--rounds 7] [--window 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # bench_train's timing and torch module, also in the children

import alternate  # noqa: E402
import dagnet  # noqa: E402  (before numpy: it tunes OpenBLAS's threads, dagnet/procenv.py)
import numpy as np  # noqa: E402

from bench_train import have_torch, median_times, ratio, torch_module, worst  # noqa: E402
from dagnet import models as zoo  # noqa: E402

MODELS = {  # name -> () -> (graph, per-example input shape, batch sizes)
    "lenet": lambda: (zoo.lenet(), (1, 28, 28), (1, 256)),
    "resnet_small": lambda: (zoo.resnet_small(), (1, 28, 28), (1, 256)),
}
if hasattr(zoo, "resnet50"):  # ImageNet's ResNet-50, once the zoo has it
    MODELS["resnet50"] = lambda: (zoo.resnet50(), (3, 224, 224), (1, 8))
if hasattr(zoo, "googlenet"):  # ImageNet's GoogLeNet (torchvision's form)
    MODELS["googlenet"] = lambda: (zoo.googlenet(), (3, 224, 224), (1, 8))
if hasattr(zoo, "mobilenet_v2"):  # depthwise convs, at CIFAR size
    MODELS["mobilenet_v2"] = lambda: (zoo.mobilenet_v2(), (3, 32, 32), (1, 64))
CONTENDERS = ("dagnet", "onnxruntime", "torch")
#: float32 scores of different summation orders differ by ~1e-6 of their scale (ResNet-50's
#: random-weight logits by ~1e-3 absolute); a wrong kernel is off by O(1) of it
TOLERANCE = 1e-3


#: images per timed sample at least: a batch-1 call takes 0.1-0.7 ms, in which one preemption
#: or timer tick is a large share; a sample of 64 calls is a few to tens of milliseconds
SAMPLE_IMAGES = 64


def calls_per_sample(batch: int) -> int:
    """Calls timed together as one sample (each sample's time is divided by them)."""
    return max(1, SAMPLE_IMAGES // batch)


def _calls(run, x, k: int) -> None:
    for _ in range(k):
        run(x)


def scaled_diff(a, b) -> float:
    """max |a - b| over the scale of b (at least 1): comparable across models' logit sizes."""
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


def model_setup(name: str):
    """(graph, shape, batches, scores value, params, state): seeded params and batchnorm
    statistics away from their (0, 1) start, so that eval mode's normalisation matters."""
    graph, shape, batches = MODELS[name]()
    plan = dagnet.compile(graph, seed=0)
    rng = np.random.default_rng(1)
    for st in plan.state.values():
        for k, v in st.items():
            if k == "running_mean":
                v[...] = rng.normal(0, 0.1, v.shape)
            elif k == "running_var":
                v[...] = rng.uniform(0.5, 2.0, v.shape)
    return graph, shape, batches, graph.losses[0].inputs[0], plan.params, plan.state


def inputs(shape, batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch,) + shape).astype(np.float32)


def dagnet_runner(graph, scores, params, state):
    plan = dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state)
    name = next(iter(plan.input_specs))
    return lambda x: plan.forward({name: x}, mode="eval", outputs=[scores])[scores]


def step_by_step(run):
    """run with eval plans run step by step by the executor, not as an EvalProgram."""
    from dagnet.runtime import program

    def steps(x):
        program.ENABLED = False
        try:
            return run(x)
        finally:
            program.ENABLED = True
    return steps


def ort_runner(graph, scores, params, state, folder, spinning=True):
    import onnxruntime as ort

    from dagnet.onnx import export

    path = os.path.join(folder, "model.onnx")
    export(dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state), path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # its threads sleep when idle instead of holding the cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def torch_runner(graph, scores, params, state):
    import torch

    net = torch_module(graph, _Params(params), state=state, output=scores).eval()
    feed = graph.inputs[0].name

    def run(x):
        with torch.inference_mode():
            return net({feed: torch.from_numpy(x)}).numpy()
    return run


class _Params:
    """What torch_module reads of a plan: its params."""

    def __init__(self, params):
        self.params = params


def make_runner(contender, graph, scores, params, state, folder):
    if contender == "dagnet":
        return dagnet_runner(graph, scores, params, state)
    if contender == "onnxruntime":
        return ort_runner(graph, scores, params, state, folder)
    return torch_runner(graph, scores, params, state)


def have_ort() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        return True
    except ImportError:
        return False


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def _serve(contender: str, model: str, batches) -> None:
    """One contender alone in this process, timing windows on request (alternate.serve); its
    last line: peak memory, max |scores - dagnet's scores| over the scale."""
    if contender == "torch":
        have_torch()
    graph, shape, _, scores, params, state = model_setup(model)
    base = _rss("VmRSS:")  # imports done: what the high-water mark gains is this contender's
    folder = tempfile.mkdtemp()
    run = make_runner(contender, graph, scores, params, state, folder)
    xs = {b: inputs(shape, b) for b in batches}
    got = {b: run(x) for b, x in xs.items()}

    def window(batch: int, samples: int) -> dict:
        k = calls_per_sample(batch)
        return alternate.timed_window(lambda: _calls(run, xs[batch], k), samples) | {"calls": k}

    def farewell() -> dict:
        out = {"peak_rss_bytes": _rss("VmHWM:") - base}
        if contender == "dagnet":  # the batch-1 filter split's loops: with its helpers, or alone
            out["split_loops"] = _split_counts()  # (mostly alone: a loaded machine, see helpers.h)
        reference = dagnet_runner(graph, scores, params, state)  # after the peak was read
        out["max_scaled_diff"] = max(scaled_diff(got[b], reference(xs[b])) for b in batches)
        shutil.rmtree(folder)
        return out
    alternate.serve({}, window, farewell)


def _split_counts() -> dict | None:
    from dagnet.ops import direct

    return direct._ext.helper_counts() if direct._ext is not None else None


def own_processes(model: str, batches, rounds: int, window: int, contenders) -> dict:
    """The headline figures: each contender in a process of its own (torch's imported first and
    without what dagnet set in the environment: its own thread defaults), all started, then per
    batch size `rounds` alternating windows of `window` samples each (alternate.py). Returns
    {contender: {"img_s": {batch: median}, "round_s": {batch: [...]}, "tail_cpu_ms": {batch:
    median CPU ms its process burnt after a window, before the next began}, peak_rss_bytes, ...}}."""
    started = {c: alternate.start(__file__, ["--serve", c, model, "--batches", *batches,
                                              "--sample-images", SAMPLE_IMAGES], c == "torch")
               for c in contenders}
    live = {c: p for c, p in started.items() if isinstance(p, alternate.Contender)}
    out = {c: p for c, p in started.items() if c not in live}  # {"error": ...}
    try:
        tails = {b: {} for b in batches}
        secs = {b: alternate.alternate(live, rounds, tails[b], batch=b, samples=window) for b in batches}
    finally:
        for c, p in live.items():
            out[c] = p.close()
    k = {b: calls_per_sample(b) for b in batches}
    for c in live:
        out[c]["round_s"] = {str(b): secs[b][c] for b in batches}
        out[c]["img_s"] = {str(b): b * k[b] / statistics.median(secs[b][c]) for b in batches}
        out[c]["tail_cpu_ms"] = {str(b): statistics.median(tails[b][c]) for b in batches}
    return out


def import_and_compile_s(graph, scores, params, state, folder, rounds: int = 3) -> dict:
    """Seconds (medians) for dagnet to load its own ONNX export of the model and to compile
    the imported graph for inference: what a user waits for before the first batch."""
    import time

    from dagnet import onnx

    path = os.path.join(folder, "timed.onnx")
    onnx.export(dagnet.compile(graph, mode="eval", outputs=[scores], params=params, state=state), path)
    loads, compiles = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        m = onnx.load(path)
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        dagnet.compile(m.graph, mode="eval", params=m.params, state=m.state)
        compiles.append(time.perf_counter() - t)
    return {"onnx_import_s": sorted(loads)[rounds // 2], "compile_eval_s": sorted(compiles)[rounds // 2]}


def bench_model(model: str, batches, repeats: int, rounds: int, window: int, contenders) -> dict:
    graph, shape, _, scores, params, state = model_setup(model)
    ort_ok = "onnxruntime" in contenders
    out = {"batches": {}}
    with tempfile.TemporaryDirectory() as folder:
        if ort_ok:
            out.update(import_and_compile_s(graph, scores, params, state, folder))
        runners = {"dagnet": dagnet_runner(graph, scores, params, state),
                   "dagnet_steps": step_by_step(dagnet_runner(graph, scores, params, state))}
        if ort_ok:
            runners["onnxruntime"] = ort_runner(graph, scores, params, state, folder, spinning=False)
        for b in batches:
            x = inputs(shape, b)
            outs = {k: r(x) for k, r in runners.items()}
            k = calls_per_sample(b)
            t = median_times({c: (lambda r=r: _calls(r, x, k)) for c, r in runners.items()}, repeats)
            row = {c + "_img_s": b * k / v for c, v in t.items()}
            row["program_speedup_same_process"] = ratio(row["dagnet_img_s"], row["dagnet_steps_img_s"])
            if ort_ok:
                row["ort_max_scaled_diff"] = scaled_diff(outs["onnxruntime"], outs["dagnet"])
                row["ratio_vs_ort_same_process"] = ratio(row["dagnet_img_s"], row["onnxruntime_img_s"])
            out["batches"][str(b)] = row
    out["own_process"] = own = own_processes(model, batches, rounds, window, contenders)
    for b, row in out["batches"].items():
        for c, key in (("onnxruntime", "ratio_vs_ort"), ("torch", "ratio_vs_torch")):
            if "round_s" in own.get(c, {}) and "round_s" in own["dagnet"]:
                mine, theirs = own["dagnet"]["round_s"][b], own[c]["round_s"][b]
                row[key.replace("ratio_", "round_ratios_")] = ratios = alternate.round_ratios(mine, theirs)
                row[key] = statistics.median(ratios)
            else:
                row[key] = None
    diffs = [row.get("ort_max_scaled_diff", 0.0) for row in out["batches"].values()]
    diffs += [o.get("max_scaled_diff", 0.0) for o in out["own_process"].values()]
    out["outputs_equal"] = max(diffs) < TOLERANCE
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    # ResNet-50 and GoogLeNet at 224x224 take minutes per contender on 2 cores: only when named
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=["lenet", "resnet_small"])
    ap.add_argument("--repeats", type=int, default=21,
                    help="alternating samples per batch size in the same-process comparison (a detail)")
    ap.add_argument("--rounds", type=int, default=7,
                    help="alternating windows per contender and batch size in the own-process comparison")
    ap.add_argument("--window", type=int, default=5, help="timed samples per window")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    # the batch sizes instead of the model's (1 and its large one); a child serves these
    ap.add_argument("--batches", type=int, nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--sample-images", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global SAMPLE_IMAGES
    if args.sample_images or args.quick:  # a child runs as its parent; --quick, one call
        SAMPLE_IMAGES = args.sample_images or 1
    if args.serve:
        return _serve(*args.serve, args.batches)
    ort_ok, torch_ok = have_ort(), have_torch()
    contenders = [c for c, ok in zip(CONTENDERS, (True, ort_ok, torch_ok)) if ok]
    repeats, rounds, window = (2, 2, 1) if args.quick else (args.repeats, args.rounds, args.window)
    results = {}
    for name in args.models:
        batches = tuple(args.batches) if args.batches else (1, 4) if args.quick else MODELS[name]()[2]
        results[name] = bench_model(name, batches, repeats, rounds, window, contenders)

    def at(model, b):
        return results.get(model, {}).get("batches", {}).get(str(b), {}).get("ratio_vs_ort")
    big = {m: max(map(int, r["batches"])) for m, r in results.items()}
    report = {"quick": args.quick, "onnxruntime": ort_ok, "torch": torch_ok, "models": results,
              "load_average": os.getloadavg(),
              "summary": {
                  "lenet_infer_ratio_vs_ort": at("lenet", big.get("lenet")),
                  "resnet_small_infer_ratio_vs_ort": at("resnet_small", big.get("resnet_small")),
                  # the targets: >= 1 at the large batch, within 1.5x at batch 1
                  "worst_infer_ratio_vs_ort": worst(at(m, big[m]) for m in results),
                  "worst_infer_ratio_vs_ort_batch1": worst(at(m, 1) for m in results),
                  "outputs_equal": all(r["outputs_equal"] for r in results.values()),
              }}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
