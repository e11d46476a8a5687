"""Per-op table of one training step (forward, backward, SGD-momentum update), dagnet or torch
eager, in this process (run each contender in a process of its own and alternate the runs).
Prints one JSON object: the step's median wall time and, per entry, the median ms per step.

    python benchmarks/profile_step.py dagnet|torch [--model resnet_small] [--steps 30] [--batch 64]
                                      [--quick]

dagnet: the plan's own executor with its two step hooks timed (planned buffers and in-place
steps as in training, unlike runtime/profiler.py's fresh arrays), and inside the fused steps the
kernels they call (conv, batchnorm, pool, affine), so a fused step splits into its parts;
"executor" is the step's time outside the hooks and the update (feeds, gradient sums, Python).
torch (in a child process that imports torch first, without dagnet's environment): torch.profiler's top-level events (forward ops, autograd's evaluate_function per backward
node, the optimizer's step), grouped by name and input shapes; the median wall time comes from
steps run without the profiler.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import alternate  # noqa: E402
import bench_train  # noqa: E402
import dagnet  # noqa: E402
import numpy as np  # noqa: E402

from dagnet.ops import fused  # noqa: E402
from dagnet.runtime.executor import Executor  # noqa: E402

KERNELS = ("conv_forward", "conv_backward", "batchnorm_forward", "batchnorm_backward",
           "maxpool_forward", "maxpool_backward", "conv_relu_pool_forward",
           "conv_relu_pool_backward", "affine_forward", "affine_backward")


class Clock:
    """Seconds by key within the current step: wall clock, and the process's CPU time under
    "cpu " + key (all its threads: the work done, less sensitive to the machine's load)."""

    def __init__(self):
        self.now = collections.Counter()
        self.steps = []

    def add(self, key, s, cpu=None):
        self.now[key] += s
        if cpu is not None:
            self.now["cpu " + key] += cpu

    def close_step(self):
        self.steps.append(self.now)
        self.now = collections.Counter()

    def medians_ms(self):
        keys = {k for s in self.steps for k in s}
        return {k: 1e3 * statistics.median(s.get(k, 0.0) for s in self.steps) for k in keys}


def time_steps(plan, add, cpu=time.process_time) -> None:
    """Time `plan`'s executor hooks and, inside the fused steps, the kernels they call (this
    process's dagnet.ops.fused patched): add(key, wall s, cpu s) per call, key "<step> fwd"
    or "<step> bwd", a kernel's "<step> fwd | <kernel>"; cpu: the CPU clock to read."""
    current = []  # the step the kernels run in

    class Timed(Executor):
        def step_forward(self, step, ins, mode, out=None, workspace=None):
            current.append(step.name + " fwd")
            t, c = time.perf_counter(), cpu()
            try:
                return super().step_forward(step, ins, mode, out, workspace)
            finally:
                add(current.pop(), time.perf_counter() - t, cpu() - c)

        def step_backward(self, step, dout, cache):
            current.append(step.name + " bwd")
            t, c = time.perf_counter(), cpu()
            try:
                return super().step_backward(step, dout, cache)
            finally:
                add(current.pop(), time.perf_counter() - t, cpu() - c)

    for name in KERNELS:  # the kernels the fused steps call, by the step they run in
        fn = getattr(fused, name)

        def inner(*a, _fn=fn, _name=name, **k):
            t, c = time.perf_counter(), cpu()
            try:
                return _fn(*a, **k)
            finally:
                if current:
                    add(f"{current[-1]} | {_name}", time.perf_counter() - t, cpu() - c)
        setattr(fused, name, inner)
    plan.executor = Timed(plan)


def dagnet_table(graph, x, y, steps):
    plan = dagnet.compile(graph, seed=0)
    clock = Clock()
    time_steps(plan, clock.add)
    configs = {p: {"learning_rate": 1e-3} for p in plan.params}
    totals = []
    feeds = plan.feeds_for(x, y)
    for i in range(steps + 3):
        # plan.loss_and_grads, with the forward and backward sweeps timed apart
        t, c = time.perf_counter(), time.process_time()
        plan.forward(feeds, mode="train", outputs=list(plan.losses))
        t1, c1 = time.perf_counter(), time.process_time()
        grads = plan.backward()
        t2, c2 = time.perf_counter(), time.process_time()
        for p, w in plan.params.items():
            bench_train.sgd_momentum(w, grads[p], configs[p])
        t3, c3 = time.perf_counter(), time.process_time()
        clock.add("update (sgd_momentum)", t3 - t2, c3 - c2)
        for phase, s, cs in (("fwd", t1 - t, c1 - c), ("bwd", t2 - t1, c2 - c1)):
            hooks = sum(v for k, v in clock.now.items()
                        if " | " not in k and not k.startswith("cpu ") and k.endswith(phase))
            chooks = sum(v for k, v in clock.now.items()
                         if " | " not in k and k.startswith("cpu ") and k.endswith(phase))
            clock.add(f"executor {phase} (outside the steps: feeds, gradient sums, Python)",
                      s - hooks, cs - chooks)
        clock.add("step", t3 - t, c3 - c)
        if i >= 3:
            totals.append(t3 - t)
            clock.close_step()
        else:
            clock.now = collections.Counter()
    return statistics.median(totals), clock.medians_ms()


def torch_table(graph, x, y, steps):
    from torch.profiler import ProfilerActivity, profile

    bench_train.have_torch()
    step = bench_train.torch_stepper(graph, dagnet.compile(graph, seed=0), x, y)
    for _ in range(2):
        step()
    step_s = alternate.timed_window(step, steps)["s"]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    clock = collections.Counter()
    for e in prof.events():
        if e.cpu_parent is not None:  # top-level events only: their times include their children
            continue
        # a backward node's shapes are those of the op it calls (its first child with some)
        src = next((c for c in e.cpu_children if c.input_shapes), e) if e.name.startswith("autograd::") else e
        shapes = [tuple(s) for s in (src.input_shapes or []) if s]
        key = e.name.replace("autograd::engine::evaluate_function: ", "bwd ")
        key = key if key.startswith("Optimizer") else f"{key} {shapes[:2]}"
        clock[key] += e.cpu_time_total / 1e3 / steps
    return step_s, dict(clock)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("contender", choices=["dagnet", "torch"])
    ap.add_argument("--model", default="resnet_small", choices=list(bench_train.MODELS))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="one step at batch 4: the script runs (tests)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.batch = 1, 4
    if args.contender == "torch" and "torch" not in sys.modules:
        # torch in a fresh process without what dagnet sets in the environment (its thread
        # defaults: its best case, as bench_train.py's headline runs it)
        import subprocess

        command, env = alternate.child_command(__file__, sys.argv[1:], torch_first=True)
        sys.exit(subprocess.run(command, env=env).returncode)
    graph, shape = bench_train.MODELS[args.model]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    table = dagnet_table if args.contender == "dagnet" else torch_table
    step_s, ms = table(graph, x, y, args.steps)
    print(json.dumps({"contender": args.contender, "model": args.model, "batch": args.batch,
                      "steps": args.steps, "step_ms": 1e3 * step_s,
                      "load_average": os.getloadavg(),
                      "ms": dict(sorted(ms.items(), key=lambda kv: -kv[1]))}, indent=1))


if __name__ == "__main__":
    main()
