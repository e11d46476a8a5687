"""Training-step benchmark: prints one JSON object.

Images/s of a full training step (forward, backward, SGD-momentum update), float32, batch 64,
for every zoo model with convolutions (lenet, lenet_bn, three_layer_convnet, convnet_deep,
resnet_small, resnet20 once the zoo has it):
- the headline: dagnet's fused plan, torch eager and torch.compile (Inductor's C++ backend;
  compile time reported apart) each in a process of its own (torch's with its own thread
  defaults: its best case), timed in alternating windows; each ratio is the median of the
  rounds' ratios (benchmarks/alternate.py: the VM's drift cancels within a round);
- details: dagnet fused, dagnet unfused and torch eager (built from the same Graph) in this one
  process, alternating, medians after warm-up (fused_speedup_lenet; the same-process ratio).
Also the planned peak memory and the wall time of one Fashion-MNIST LeNet epoch (the batch-size
and depth series are benchmarks/bench_series.py's).

    python benchmarks/bench_train.py [--quick] [--no-epoch] [--no-compile] [--rounds 9] [--window 7]
                                     [--models lenet resnet_small ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # alternate.py, also in the children

import alternate  # noqa: E402
import dagnet  # noqa: E402  (before numpy: it tunes OpenBLAS's threads, dagnet/procenv.py)
import numpy as np  # noqa: E402

from dagnet import models as zoo  # noqa: E402
from dagnet.models import convnet_deep, lenet, lenet_bn, resnet_small, three_layer_convnet  # noqa: E402
from dagnet.train.optim import sgd_momentum  # noqa: E402

MODELS = {  # name -> () -> (graph, per-example input shape): every zoo model with convolutions
    "lenet": lambda: (lenet(), (1, 28, 28)),
    "lenet_bn": lambda: (lenet_bn(), (1, 28, 28)),
    "three_layer_convnet": lambda: (three_layer_convnet(), (3, 32, 32)),
    "convnet_deep": lambda: (convnet_deep(), (1, 28, 28)),
    "resnet_small": lambda: (resnet_small(), (1, 28, 28)),
}
if hasattr(zoo, "resnet20"):  # the CIFAR ResNet-20, once the zoo has it
    MODELS["resnet20"] = lambda: (zoo.resnet20(), (3, 32, 32))


# -- dagnet ------------------------------------------------------------------------------------
def dagnet_stepper(plan, x, y, lr=1e-3):
    configs = {p: {"learning_rate": lr} for p in plan.params}

    def step():
        _, grads = plan.loss_and_grads(x, y)
        for p, w in plan.params.items():
            sgd_momentum(w, grads[p], configs[p])
    return step


# -- torch, built from the same graph ----------------------------------------------------------
def torch_module(graph, plan, state=None, output=None):
    """An eager torch.nn.Module that computes the graph's loss with the plan's initial params;
    with state (the plan's batchnorm running statistics) its eval-mode value `output` instead."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in plan.params.items()}

    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    def run(n, ins):
        a = n.attrs
        if n.op == "conv2d":
            return F.conv2d(ins[0], ins[1], ins[2], stride=pair(a.get("stride", 1)), padding=pair(a.get("pad", 0)),
                            groups=a.get("groups", 1))
        if n.op == "affine":
            return ins[0].flatten(1) @ ins[1] + ins[2]
        if n.op == "relu":
            return F.relu(ins[0])
        if n.op == "max_pool2d":
            return F.max_pool2d(ins[0], pair(a.get("size", 2)), pair(a.get("stride", a.get("size", 2))),
                                pair(a.get("pad", 0)), ceil_mode=a.get("ceil_mode", False))
        if n.op == "avg_pool2d":
            return F.avg_pool2d(ins[0], pair(a.get("size", 2)), pair(a.get("stride", a.get("size", 2))),
                                pair(a.get("pad", 0)))
        if n.op == "batchnorm" and state is not None:
            st = {k: torch.from_numpy(v) for k, v in state[n.name].items()}
            return F.batch_norm(ins[0], st["running_mean"], st["running_var"], ins[1], ins[2],
                                training=False, eps=a.get("eps", 1e-5))
        if n.op == "batchnorm":
            return F.batch_norm(ins[0], None, None, ins[1], ins[2], training=True, eps=a.get("eps", 1e-5))
        if n.op == "clip":  # relu6 (MobileNet-v2)
            return torch.clamp(ins[0], a.get("min"), a.get("max"))
        if n.op == "lrn":
            return F.local_response_norm(ins[0], a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75),
                                         a.get("bias", 1.0))
        if n.op == "global_avg_pool":
            return ins[0].mean(dim=(2, 3))
        if n.op == "add":
            return sum(ins[1:], ins[0])
        if n.op == "concat":
            return torch.cat(ins, dim=a.get("axis", 1))
        if n.op == "flatten":
            return ins[0].flatten(1)
        if n.op == "dropout":
            return F.dropout(ins[0], a.get("p", 0.5), training=state is None)
        if n.op == "softmax_cross_entropy":
            return F.cross_entropy(ins[0], ins[1])
        raise NotImplementedError(n.op)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterList(params.values())

        def forward(self, feeds):
            vals = dict(feeds)
            vals.update(params)
            for n in graph:
                if n.op not in ("input", "param") and not (output and n in graph.losses):
                    vals[n.name] = run(n, [vals[s] for s in n.inputs])
            return vals[output or graph.losses[0].name]

    return Net()


def torch_stepper(graph, plan, x, y, lr=1e-3, compiled=False):
    """A torch training step; compiled: the module under torch.compile (Inductor's C++
    backend), compiled by the first call."""
    import torch

    net = torch_module(graph, plan)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    feeds = {graph.inputs[0].name: xt, graph.inputs[1].name: yt}
    forward = torch.compile(net) if compiled else net

    def step():
        opt.zero_grad(set_to_none=True)
        forward(feeds).backward()
        opt.step()
    return step


def median_times(steppers: dict, repeats: int, warmup: int = 3) -> dict:
    for s in steppers.values():
        for _ in range(warmup):
            s()
    times = {k: [] for k in steppers}
    names = list(steppers)
    for r in range(repeats):
        # alternate, so drifts hit every contender alike, and rotate the order each round, so
        # that none always runs right after the same other one (after a torch step the next
        # step ran slower: the caches hold torch's data and its threads are still winding down)
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            steppers[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def have_torch() -> bool:
    try:
        import torch

        torch.set_num_threads(2)
        return True
    except ImportError:
        return False


def child_json(script: str, args, torch_first: bool, timeout: int) -> dict:
    """The last JSON line that `script` (run as __main__ with `args`) prints in a fresh process,
    or {"error": its stderr's tail} if it failed; torch_first: as alternate.child_command's."""
    import subprocess

    command, env = alternate.child_command(script, args, torch_first)
    r = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-500:]}


def _serve(contender: str, model: str, batch: int) -> None:
    """A child process timing one contender's training step in windows on request (alternate.serve):
    dagnet's fused plan, torch eager or torch.compile (its first step, compilation, reported in the
    hello line)."""
    graph, shape = MODELS[model]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    hello = {}
    if contender == "dagnet":
        step = dagnet_stepper(dagnet.compile(graph, seed=0), x, y)
    else:
        have_torch()
        step = torch_stepper(graph, dagnet.compile(graph, seed=0), x, y, compiled=contender == "torch_compile")
        t = time.perf_counter()
        step()
        hello["first_step_s"] = time.perf_counter() - t
    for _ in range(3):
        step()
    alternate.serve(hello, lambda samples: alternate.timed_window(step, samples))


def own_processes(model: str, batch: int, rounds: int, window: int, compiled: bool) -> dict:
    """The headline figures: dagnet, torch eager (and torch.compile) each in a process of its own
    (torch's without what dagnet sets in the environment: its own thread defaults, its best case),
    timed in `rounds` alternating windows of `window` steps; each ratio is the median of the
    rounds' ratios (alternate.py)."""
    names = ["dagnet", "torch"] + (["torch_compile"] if compiled else [])
    started = {n: alternate.start(__file__, ["--serve", n, model, "--batch", batch], torch_first=n != "dagnet")
               for n in names}
    live = {n: c for n, c in started.items() if isinstance(c, alternate.Contender)}
    try:
        tails = {}
        secs = alternate.alternate(live, rounds, tails, samples=window) if "dagnet" in live else {}
    finally:
        for c in live.values():
            c.close()
    out = {"own_process_errors": {n: c["error"] for n, c in started.items() if n not in live}} \
        if len(live) < len(started) else {}
    img_s = {"dagnet": "dagnet_own_process_img_s", "torch": "torch_own_process_img_s",
             "torch_compile": "torch_compile_img_s"}
    for n, s in secs.items():
        out[img_s[n]] = batch / statistics.median(s)
    out["tail_cpu_ms"] = {n: statistics.median(t) for n, t in tails.items()}
    for n, key in (("torch", "ratio_vs_torch_own_process"), ("torch_compile", "ratio_vs_torch_compile")):
        if n in secs:
            out[f"round_ratios_vs_{n}"] = ratios = alternate.round_ratios(secs["dagnet"], secs[n])
            out[key] = statistics.median(ratios)
    if "torch_compile" in live:
        out["torch_compile_s"] = live["torch_compile"].hello["first_step_s"]
    return out


def bench_model(graph, shape, batch, repeats, torch_ok):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    fused = dagnet.compile(graph, seed=0)
    unfused = dagnet.compile(graph, seed=0, fuse=False)
    steppers = {"dagnet_fused": dagnet_stepper(fused, x, y), "dagnet_unfused": dagnet_stepper(unfused, x, y)}
    if torch_ok:
        steppers["torch"] = torch_stepper(graph, dagnet.compile(graph, seed=0), x, y)
    t = median_times(steppers, repeats)
    out = {k + "_img_s": batch / v for k, v in t.items()}
    out["peak_bytes_planned"] = {"fused": fused.peak_bytes(batch), "unfused": unfused.peak_bytes(batch)}
    out["batch"] = batch
    return out


def ratio(a, b):
    """a / b, or None where either was not measured."""
    return a / b if a and b else None


def worst(ratios):
    """The smallest of the measured ratios (None if none was)."""
    measured = [r for r in ratios if r is not None]
    return min(measured) if measured else None


def lenet_epoch_seconds(batch=64) -> float:
    """Wall time of one epoch of LeNet on the 60,000 Fashion-MNIST training images."""
    from dagnet.data.idx import load_mnist_like

    data = load_mnist_like()
    X, y = data["X_train"], data["y_train"]
    plan = dagnet.compile(lenet(), seed=0)
    configs = {p: {"learning_rate": 1e-2} for p in plan.params}
    order = np.random.default_rng(0).permutation(len(X))
    t = time.perf_counter()
    for i in range(0, len(X), batch):
        idx = order[i:i + batch]
        _, grads = plan.loss_and_grads(X[idx], y[idx])
        for p, w in plan.params.items():
            sgd_momentum(w, grads[p], configs[p])
    return time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    ap.add_argument("--no-epoch", action="store_true", help="skip the full Fashion-MNIST epoch")
    ap.add_argument("--no-compile", action="store_true",
                    help="skip torch.compile (minutes of compilation per model; --quick skips it)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                    help="the zoo models to time (default: all)")
    # 9 rounds: with 5, the ResNets' headline moved 0.88-1.04 between quiet runs (round ratios
    # spread 0.79-1.31 within a run); each added round costs ~4 s of resnet20
    ap.add_argument("--rounds", type=int, default=9,
                    help="alternating windows per contender in the own-process comparison (the headline)")
    ap.add_argument("--window", type=int, default=7, help="timed steps per window")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    # 21 alternating rounds: on this noisy 2-core VM, medians of 9 swung by 5-10% run to run
    ap.add_argument("--repeats", type=int, default=21, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return _serve(*args.serve, args.batch)
    torch_ok = have_torch()
    batch, repeats = (8, 2) if args.quick else (args.batch, args.repeats)
    rounds, window = (2, 1) if args.quick else (args.rounds, args.window)
    compiled = torch_ok and not (args.quick or args.no_compile)
    results = {}
    for name in args.models:
        g, s = MODELS[name]()
        results[name] = r = bench_model(g, s, batch, repeats, torch_ok)
        if torch_ok:
            r.update(own_processes(name, batch, rounds, window, compiled))
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    report = {"quick": args.quick, "torch": torch_ok, "blas": blas,
              "row_isa": dagnet.kernels.ROW_ISAS[dagnet.kernels.ROW_ISA], "models": results,
              "env": {**{k: os.environ.get(k) for k in (
                  "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "DAGNET_NUM_THREADS",
                  "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")},
                  "malloc_tuned": dagnet.procenv.MALLOC_TUNED}}
    if not args.no_epoch and not args.quick:
        report["lenet_epoch_s"] = lenet_epoch_seconds()
    le = results.get("lenet", {})
    report["load_average"] = os.getloadavg()  # other processes on the machine: context for the figures
    report["summary"] = {
        # against torch in the same process (a detail) and in its own (its best case: the headline)
        "lenet_ratio_vs_torch": ratio(le.get("dagnet_fused_img_s"), le.get("torch_img_s")),
        "lenet_ratio_vs_torch_own_process": le.get("ratio_vs_torch_own_process"),
        "fused_speedup_lenet": ratio(le.get("dagnet_fused_img_s"), le.get("dagnet_unfused_img_s")),
        "lenet_epoch_s": report.get("lenet_epoch_s"),
        "worst_train_ratio_vs_torch": worst(r.get("ratio_vs_torch_own_process") for r in results.values()),
        "worst_train_ratio_vs_torch_compile": worst(r.get("ratio_vs_torch_compile") for r in results.values()),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
