"""compile(): the list of passes, then params and state, then the ExecutionPlan."""
from __future__ import annotations

import copy

import numpy as np

from dagnet.errors import DagnetError, DTypeError, FusionMismatchError, GraphError, ShapeError
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
from dagnet.compiler.validate import check_outputs, validate

MODES = ("train", "eval")


def run_passes(graph: Graph, outputs=None, fuse: bool = True, mode: str = "train",
               dtype="float32", wrt=(), inplace: bool = True, trace=None) -> Graph:
    """Every pass in order; `trace(name, graph)` (optional) sees the graph after each one."""
    if mode not in MODES:
        raise DagnetError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(graph, Graph):
        raise GraphError(f"compile() needs a dagnet Graph, got {type(graph).__name__}; build one "
                         f"with dagnet.Graph() or Graph.from_spec(path)")
    outputs = _output_names(outputs, graph)
    trace = trace or (lambda name, g: None)
    g = validate(graph)
    check_outputs(graph, outputs)
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


def _output_names(outputs, graph: Graph) -> list:
    if not outputs:
        return graph.outputs
    if isinstance(outputs, str) or not hasattr(outputs, "__iter__"):
        outputs = [outputs]  # one name (or node) instead of a list: what was meant is clear
    return [getattr(o, "name", o) for o in outputs]


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DagnetError(f"seed must be a non-negative integer, got {seed!r}")


def init_params(graph: Graph, seed: int = 0, dtype="float32") -> dict:
    """Fresh params for every param node, drawn in declaration order from one seeded rng, so
    fused, unfused and pruned plans of one graph start from identical numbers."""
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    params = {}
    for n in graph:
        if n.op != PARAM:
            continue
        try:
            params[n.name] = init_param(n.name, n.attrs, rng, dtype)
        except (MemoryError, ValueError) as e:
            # A typo such as units: 10000000 should not end in a numpy traceback.
            size = int(np.prod(n.attrs["shape"], dtype=np.float64)) * dtype.itemsize
            raise ShapeError(f"{n.name}: param of shape {tuple(n.attrs['shape'])} needs "
                             f"{_bytes(size)} of {dtype}, which cannot be allocated "
                             f"({type(e).__name__}); use smaller layers") from None
    return params


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.4g} {unit}"
        n /= 1024
    return f"{n:.4g} PiB"


def check_given(graph: Graph, compiled: Graph, params: dict, state: dict | None,
                dtype: np.dtype) -> None:
    """ShapeError/DTypeError/GraphError when arrays passed to compile(params=, state=) do not
    fit the graph (they would otherwise fail deep inside a kernel)."""
    if not isinstance(params, dict):
        raise DagnetError(f"params must be a dict {{param name: array}}, got {type(params).__name__}")
    kept = {n.name: n for n in compiled if n.op == PARAM}
    missing = sorted(set(kept) - set(params))
    if missing:
        raise DagnetError(f"params missing for {missing}; pass every param or none")
    for name, n in kept.items():
        a = params[name]
        want = tuple(n.attrs["shape"])
        if not isinstance(a, np.ndarray):
            raise DTypeError(f"param '{name}': expected a numpy array of shape {want}, got "
                             f"{type(a).__name__}")
        if a.shape != want:
            raise ShapeError(f"param '{name}': the graph needs shape {want}, the given array "
                             f"has {a.shape}; build the graph that made these params (for a "
                             f"checkpoint: Graph.from_spec(checkpoint.spec))")
        if a.dtype != dtype:
            raise DTypeError(f"param '{name}' is {a.dtype} but the plan is compiled for {dtype}; "
                             f"pass dtype={a.dtype} to compile() or convert the params")
    if state is None:
        return
    if not isinstance(state, dict):
        raise DagnetError(f"state must be a dict {{node: {{key: array}}}}, got {type(state).__name__}")
    for n in compiled:
        for member in n.meta.get("fused_group", [n.name]):
            src = graph.node(member) if member in graph else None
            if src is None or src.op in (INPUT, PARAM) or not get_op(src.op, src.name).stateful:
                continue
            if member not in state or not isinstance(state[member], dict):
                raise DagnetError(f"state for node '{member}' ({src.op}) is missing; pass the "
                                  f"state saved with the params (or state=None for fresh state)")


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

    graph: a Graph, or a model loaded by dagnet.onnx.load (its params and state come along).
    outputs: values to compute (default: the graph's losses, else its sinks); everything else
    is pruned. fuse: apply the fusion patterns. mode: "train" (plans backward; keeps what it
    needs) or "eval" (forward only; reuses dead buffers). params/state: arrays to use instead
    of fresh ones (shared, not copied). wrt: inputs to differentiate too. check: run the fused
    and the unfused plan on a random batch and raise FusionMismatchError naming the first
    fused group whose outputs or gradients differ.
    """
    dtype = _float_dtype(dtype)
    _check_seed(seed)
    if not isinstance(graph, (Graph, ExecutionPlan)) and isinstance(getattr(graph, "graph", None), Graph):
        # a loaded model (dagnet.onnx.load): its graph with its params and state, unless given
        params = graph.params if params is None else params
        state = graph.state if state is None and params is graph.params else state
        graph = graph.graph
    g = run_passes(graph, outputs, fuse, mode, dtype, wrt, inplace)
    outputs = _output_names(outputs, graph)
    kept = {n.name for n in g if n.op == PARAM}
    if params is None:
        fresh = init_params(graph, seed, dtype)
    else:
        check_given(graph, g, params, state, dtype)
        fresh = params
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
    groups = [s for s in fused.steps if s.fused]
    # asked for by name: values the memory plan would let later steps overwrite stay intact
    got = fused.forward(feeds, outputs=[s.name for s in groups] + fused.outputs)
    want = ref.forward(feeds, outputs=[s.members[-1] for s in groups] + ref.outputs)
    g_ref = ref.backward() if ref.losses else {}
    g_fused = fused.backward() if fused.losses else {}
    for step in groups:
        err = norm_error(got[step.name], want[step.members[-1]])
        if err > tol:
            raise FusionMismatchError(
                f"fused group {step.name} (pattern {step.pattern}): outputs differ from the "
                f"unfused chain (relative error {err:.2e} > {tol:g})")
        # measured against the group's largest gradient: a gradient that cancels to rounding
        # noise (a conv bias before batchnorm) differs in its noise, not in its value
        grads = [g_ref[p] for p in step.inputs if p in g_ref and p in fused.params and g_ref[p].size]
        floor = max((float(np.max(np.abs(g))) for g in grads), default=0.0)
        for p in step.inputs:
            if p in g_fused and p in fused.params:
                err = norm_error(g_fused[p], g_ref[p], floor)
                if err > tol:
                    raise FusionMismatchError(
                        f"fused group {step.name} (pattern {step.pattern}): gradient of '{p}' "
                        f"differs from the unfused chain (relative error {err:.2e} > {tol:g})")
