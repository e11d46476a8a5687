"""compile(): the list of passes, then params and state, then the ExecutionPlan."""
from __future__ import annotations

import copy

import numpy as np

from dagnet.errors import DagnetError, FusionMismatchError
from dagnet.gradcheck import norm_error
from dagnet.graph import INPUT, PARAM, Graph
from dagnet.init import init_param
from dagnet.ops import get_op
from dagnet.compiler.autodiff import plan_backward
from dagnet.compiler.fuse import fuse as fuse_pass
from dagnet.compiler.memory import plan_memory
from dagnet.compiler.plan import ExecutionPlan
from dagnet.compiler.prune import prune
from dagnet.compiler.schedule import schedule
from dagnet.compiler.shapes import infer_shapes
from dagnet.compiler.validate import validate

MODES = ("train", "eval")


def run_passes(graph: Graph, outputs=None, fuse: bool = True, mode: str = "train",
               dtype="float32", wrt=(), inplace: bool = True, trace=None) -> Graph:
    """Every pass in order; `trace(name, graph)` (optional) sees the graph after each one."""
    if mode not in MODES:
        raise DagnetError(f"mode must be one of {MODES}, got {mode!r}")
    outputs = [getattr(o, "name", o) for o in outputs] if outputs else graph.outputs
    trace = trace or (lambda name, g: None)
    g = validate(graph)
    trace("validate", g)
    g = infer_shapes(g)
    trace("infer_shapes", g)
    g = prune(g, outputs)
    trace("prune", g)
    if fuse:
        g = fuse_pass(g, outputs, mode)
        trace("fuse", g)
    g = schedule(g)
    trace("schedule", g)
    if mode == "train":
        g = plan_backward(g, wrt)
        trace("autodiff", g)
    g = plan_memory(g, mode, np.dtype(dtype).itemsize, inplace)
    trace("memory", g)
    return g


def init_params(graph: Graph, seed: int = 0, dtype="float32") -> dict:
    """Fresh params for every param node, drawn in declaration order from one seeded rng, so
    fused, unfused and pruned plans of one graph start from identical numbers."""
    rng = np.random.default_rng(seed)
    return {n.name: init_param(n.name, n.attrs, rng, np.dtype(dtype)) for n in graph if n.op == PARAM}


def init_state(graph: Graph, dtype="float32") -> dict:
    """Explicit per-node state (batchnorm running statistics), keyed by the declared node name."""
    g = graph if all("shape" in n.meta for n in graph) else infer_shapes(graph)
    state = {}
    for n in g:
        if n.op in (INPUT, PARAM):
            continue
        op = get_op(n.op, n.name)
        if op.stateful:
            shapes = [g.node(s).meta["shape"] for s in n.inputs]
            state[n.name] = op.init_state(shapes, n.attrs, np.dtype(dtype))
    return state


def compile(graph: Graph, outputs=None, fuse: bool = True, mode: str = "train",
            dtype="float32", seed: int = 0, params: dict | None = None,
            state: dict | None = None, wrt=(), inplace: bool = True,
            check: bool = False) -> ExecutionPlan:
    """Compile a graph into an ExecutionPlan.

    outputs: values to compute (default: the graph's losses, else its sinks); everything else
    is pruned. fuse: apply the fusion patterns. mode: "train" (plans backward; keeps what it
    needs) or "eval" (forward only; reuses dead buffers). params/state: arrays to use instead
    of fresh ones (shared, not copied). wrt: inputs to differentiate too. check: run the fused
    and the unfused plan on a random batch and raise FusionMismatchError naming the first
    fused group whose outputs or gradients differ.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise DagnetError(f"dtype must be float32 or float64, got {dtype}")
    outputs = [getattr(o, "name", o) for o in outputs] if outputs else graph.outputs
    g = run_passes(graph, outputs, fuse, mode, dtype, wrt, inplace)
    kept = {n.name for n in g if n.op == PARAM}
    fresh = init_params(graph, seed, dtype) if params is None else params
    missing = kept - set(fresh)
    if missing:
        raise DagnetError(f"params missing for {sorted(missing)}; pass every param or none")
    plan_params = {k: fresh[k] for k in fresh if k in kept}
    plan_state = init_state(graph, dtype) if state is None else state
    aliases = g.meta.get("fusion", {}).get("aliases", {})
    plan = ExecutionPlan(g, graph, mode, dtype, plan_params, plan_state, seed, outputs,
                         aliases, wrt)
    if check and fuse and mode == "train":
        check_fusion(plan, graph)
    return plan


def random_feeds(plan: ExecutionPlan, batch: int = 4, seed: int = 0) -> dict:
    """A random batch for every input: floats ~ N(0, 1); integers are class labels in range of
    the loss they feed (0 otherwise)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in plan.input_specs.items():
        shape = (batch,) + tuple(spec["shape"])
        if np.dtype(spec["dtype"]).kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(plan.dtype)
        else:
            classes = 1
            for s in plan.steps:
                if s.op.kind == "loss" and name in s.inputs:
                    classes = plan.graph.node(s.inputs[0]).meta["shape"][-1]
            feeds[name] = rng.integers(0, classes, size=shape)
    return feeds


def check_fusion(plan: ExecutionPlan, graph: Graph) -> None:
    """Raise FusionMismatchError naming the first fused group whose numbers differ from the
    unfused chain on a random batch."""
    ref = compile(graph, plan.outputs, fuse=False, mode="train", dtype=plan.dtype, seed=plan.seed,
                  params=plan.params, state=copy.deepcopy(plan.state), wrt=plan.wrt, inplace=False)
    fused = compile(graph, plan.outputs, fuse=True, mode="train", dtype=plan.dtype, seed=plan.seed,
                    params=plan.params, state=copy.deepcopy(plan.state), wrt=plan.wrt, inplace=False)
    feeds = random_feeds(plan)
    tol = 1e-9 if plan.dtype == np.float64 else 1e-4
    ref.forward(feeds)
    fused.forward(feeds)
    g_ref = ref.backward() if ref.losses else {}
    g_fused = fused.backward() if fused.losses else {}
    for step in fused.steps:
        if not step.fused:
            continue
        err = norm_error(fused._values[step.name], ref._values[step.members[-1]])
        if err > tol:
            raise FusionMismatchError(
                f"fused group {step.name} (pattern {step.pattern}): outputs differ from the "
                f"unfused chain (relative error {err:.2e} > {tol:g})")
        for p in step.inputs:
            if p in g_fused and p in fused.params:
                err = norm_error(g_fused[p], g_ref[p])
                if err > tol:
                    raise FusionMismatchError(
                        f"fused group {step.name} (pattern {step.pattern}): gradient of '{p}' "
                        f"differs from the unfused chain (relative error {err:.2e} > {tol:g})")
