"""Params and state for a compiled graph: fresh ones, or given ones checked against the graph."""
from __future__ import annotations

import numpy as np

from dagnet.errors import DagnetError, DTypeError, ShapeError
from dagnet.graph import LEAVES, PARAM, Graph
from dagnet.init import init_param
from dagnet.ops import get_op
from dagnet.compiler.shapes import infer_shapes


def float_dtype(dtype) -> np.dtype:
    """np.float32 or np.float64 from `dtype`; DTypeError for anything else."""
    try:
        dt = np.dtype(dtype)
    except Exception:  # noqa: BLE001 - numpy's dtype parser raises several kinds on junk
        dt = None
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def check_seed(seed) -> None:
    """DagnetError unless seed is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DagnetError(f"seed must be a non-negative integer, got {seed!r}")


def init_params(graph: Graph, seed: int = 0, dtype="float32") -> dict:
    """Fresh params for every param node, drawn in declaration order from one seeded rng, so
    fused, unfused and pruned plans of one graph start from identical numbers."""
    check_seed(seed)
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
    check_state(graph, compiled, state)


def check_state(graph: Graph, compiled: Graph, state: dict | None) -> None:
    """DagnetError when compile(state=...) is not {stateful node: {key: array}} of the graph."""
    if state is None:
        return
    if not isinstance(state, dict):
        raise DagnetError(f"state must be a dict {{node: {{key: array}}}}, got {type(state).__name__}")
    stateful = {n.name for n in graph if n.op not in LEAVES and get_op(n.op, n.name).stateful}
    unknown = sorted(str(k) for k in state if k not in stateful)
    if unknown:
        raise DagnetError(f"state for {unknown[:3]}, which {'is' if len(unknown) == 1 else 'are'} "
                          f"no stateful node of the graph (stateful: {sorted(stateful)}); pass "
                          f"the state saved with these params")
    for n in compiled:
        for member in n.meta.get("fused_group", [n.name]):
            src = graph.node(member) if member in graph else None
            if src is None or src.op in LEAVES or not get_op(src.op, src.name).stateful:
                continue
            if member not in state or not isinstance(state[member], dict):
                raise DagnetError(f"state for node '{member}' ({src.op}) is missing; pass the "
                                  f"state saved with the params (or state=None for fresh state)")


def init_state(graph: Graph, dtype="float32") -> dict:
    """Explicit per-node state (batchnorm running statistics), keyed by the declared node name."""
    g = graph if all("shape" in n.meta for n in graph) else infer_shapes(graph)
    state = {}
    for n in g:
        if n.op in LEAVES:
            continue
        op = get_op(n.op, n.name)
        if op.stateful:
            shapes = [g.node(s).meta["shape"] for s in n.inputs]
            state[n.name] = op.init_state(shapes, n.attrs, np.dtype(dtype))
    return state
