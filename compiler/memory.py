"""Pass: liveness, in-place decisions and buffer assignment. Graph -> annotated copy.

Time runs over the forward steps 0..S-1 and, in train mode, the backward steps S..2S-1 (the
backward of forward step t happens at 2S-1-t). A value lives from the step that makes it to its
last forward use; in train mode a value that backward reads (the producer saves its output, or a
consumer saves its input) lives until that backward step. Op workspace (e.g. im2col columns)
lives during its step, or until the step's backward when the cache keeps it.

In place: an element-wise op that supports `out=` overwrites its input when that is provably
safe - the input is an op output (never a feed or param) that no view aliases, this op is its
only consumer, it is not a requested output, and (in train mode) neither this op's backward reads
its input nor the producer's backward reads its output. Nothing else runs in place.

Buffers: values are given buffers greedily; a buffer whose value is dead is reused by the next
value (best fit by size). Sizes are bytes per example (batched values scale with the batch;
unbatched ones, such as losses, are fixed). Ops whose Workspace (dagnet/ops/workspace.py) has a
planned part (conv's im2col columns) get a buffer for it the same way, by the workspace's
liveness and of the size they build in it. The runtime allocates these buffers once per plan
and hands ops views of them, as `out=` for values and `workspace=` for scratch
(dagnet/runtime/executor.py). Workspace a step's backward keeps lives until then; the rest
("transient") only during the step.
graph.meta["memory"] = {"buffers": {id: bytes/example}, "fixed_bytes", "timeline": S or 2S,
"activations": {"peak", "no_reuse", "peak_step"}, "total": the same with workspaces,
"workspaces": {step or "step:transient": Span(start, end, bytes)}}; node.meta: "buffer",
"workspace_buffer" (-1 when the op takes none), "live" (start, end), "inplace".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dagnet.graph import LEAVES, Graph
from dagnet.ops import get_op

WS = ":workspace"  # suffix of workspace entries in the liveness table


class Lifetime(NamedTuple):
    """A value (or a step's workspace) in the liveness table: bytes per example, live from
    step `start` to step `end` (both included)."""

    name: str
    start: int
    end: int
    size: int
    batched: bool = True
    #: the value whose buffer this one takes over (in place, or a view of it)
    alias: str | None = None


class Span(NamedTuple):
    """A workspace in graph.meta["memory"]["workspaces"]: live steps and bytes per example."""

    start: int
    end: int
    bytes: int


def can_run_inplace(g: Graph, users: dict, n, outputs: set, mode: str) -> bool:
    """Whether op node `n` may write its output over its (only) input; users = consumer_map."""
    op = get_op(n.op, n.name)
    if not (op.supports_out and op.fusion_kind == "elementwise" and len(n.inputs) == 1):
        return False
    src = g.node(n.inputs[0])
    if src.op in LEAVES or src.name in outputs:
        return False
    src_op = get_op(src.op, src.name)
    if src_op.may_alias or users.get(src.name) != [(n.name, 0)]:
        return False
    if tuple(src.meta.get("shape", ())) != tuple(n.meta.get("shape", ())) or \
            src.meta.get("batched", True) != n.meta.get("batched", True):
        return False
    if mode == "train" and ("input" in op.saves or "output" in src_op.saves):
        return False
    return True


def plan_memory(graph: Graph, mode: str = "train", itemsize: int = 4, inplace: bool = True) -> Graph:
    g = graph.copy()
    outputs = set(g.outputs)
    steps = [n for n in g if n.op not in LEAVES]
    S = len(steps)
    t_of = {n.name: t for t, n in enumerate(steps)}
    train = mode == "train"
    bwd = set(g.meta.get("backward", {}).get("order", [])) if train else set()

    def back_time(name):
        return 2 * S - 1 - t_of[name]

    values: list[Lifetime] = []
    planned: list[Lifetime] = []  # the workspaces of ops that take a planned buffer
    consumer_map = g.consumer_map()
    view_root: dict[str, str] = {}  # value -> the value owning its buffer (op outputs only)
    ends: dict[str, int] = {}
    for n in steps:
        op = get_op(n.op, n.name)
        n.meta["inplace"] = inplace and can_run_inplace(g, consumer_map, n, outputs, mode)
        users = consumer_map.get(n.name, [])
        end = max([t_of[u] for u, _ in users] + [t_of[n.name]])
        if n.name in outputs:
            end = max(end, S - 1)
        if train:
            if n.name in bwd and "output" in op.saves:
                end = max(end, back_time(n.name))
            for u, _ in users:
                if u in bwd and "input" in get_op(g.node(u).op).saves:
                    end = max(end, back_time(u))
        shape = n.meta.get("shape", ())
        # indices (argmax) are int64 whatever the plan's float dtype
        size = int(np.prod(shape, dtype=np.int64)) * (
            8 if getattr(op, "output_dtype", "float") == "int64" else itemsize)
        n.meta["live"] = (t_of[n.name], end)
        alias = n.inputs[0] if n.meta["inplace"] else None
        if op.may_alias and n.inputs[0] in view_root:
            # a view (flatten, reshape) holds its input's buffer: no bytes of its own, and the
            # buffer lives as long as the view does
            root = view_root[n.inputs[0]]
            view_root[n.name] = root
            ends[root] = max(ends[root], end)
            size, alias = 0, n.inputs[0]
        else:
            view_root[n.name] = n.name
        ends[n.name] = end
        values.append(Lifetime(n.name, t_of[n.name], end, size, bool(n.meta.get("batched", True)),
                               alias))
        in_shapes = [g.node(s).meta.get("shape", ()) for s in n.inputs]
        w = op.workspace(in_shapes, n.meta.get("shape", ()), n.attrs)
        if w.elements:
            # the scratch backward keeps lives until then; the rest only during the step
            ws = int(w.elements) * itemsize
            kept = int(w.saved) * itemsize if train and n.name in bwd else 0
            t = t_of[n.name]
            ws_end = back_time(n.name) if kept else t
            if kept:
                values.append(Lifetime(f"{n.name}{WS}", t, ws_end, kept))
            if ws > kept:
                values.append(Lifetime(f"{n.name}:transient{WS}", t, t, ws - kept))
            if w.planned:  # the part the op builds in a planned buffer
                planned.append(Lifetime(f"{n.name}{WS}", t, ws_end, int(w.planned) * itemsize))

    values = [v._replace(end=ends.get(v.name, v.end)) for v in values]  # views extended roots
    for n in steps:
        n.meta["live"] = (t_of[n.name], ends[n.name])
    # buffers for the values and for the scratch ops build in one (the peaks count all scratch)
    buffers, fixed, assign = _assign_buffers([v for v in values if not v.name.endswith(WS)] + planned)
    for n in steps:
        n.meta["buffer"] = assign[n.name]
        n.meta["workspace_buffer"] = assign.get(f"{n.name}{WS}", -1)
    timeline = 2 * S if train else S
    g.meta["memory"] = {
        "buffers": buffers,
        "fixed_bytes": fixed,
        "timeline": timeline,
        "mode": mode,
        "activations": _peaks([v for v in values if not v.name.endswith(WS)], timeline),
        "total": _peaks(values, timeline),
        "workspaces": {v.name[:-len(WS)]: Span(v.start, v.end, v.size)
                       for v in values if v.name.endswith(WS)},
    }
    return g


def _peaks(values: list[Lifetime], timeline) -> dict:
    """Bytes per example: the peak of live values over time, and the sum of all values (every
    value in its own buffer: no reuse, no in-place)."""
    live = np.zeros(timeline + 1, dtype=np.int64)
    total = 0
    for v in values:
        if v.batched:
            # an in-place value takes over its input's buffer at `start`, where the input is
            # still counted: count it from the next step on
            live[v.start + (v.alias is not None):v.end + 1] += v.size
            total += v.size
    return {"peak": int(live.max()), "no_reuse": int(total), "peak_step": int(live.argmax())}


def _assign_buffers(values: list[Lifetime]):
    """Greedy interval allocation: returns ({buffer: bytes}, fixed bytes, {value: buffer})."""
    buffers: dict[int, int] = {}
    busy_until: dict[int, int] = {}
    assign: dict[str, int] = {}
    fixed = 0
    # at equal start times the largest value picks first, so small ones do not take (and
    # then grow) the big free buffers
    for name, start, end, size, batched, alias in sorted(values, key=lambda v: (v.start, -v.size, v.name)):
        if not batched:
            fixed += size
            assign[name] = -1
            continue
        if alias is not None and alias in assign:
            b = assign[alias]
            busy_until[b] = max(busy_until[b], end)
            assign[name] = b
            continue
        free = [b for b, until in busy_until.items() if until < start]
        fits = [b for b in free if buffers[b] >= size]
        if fits:
            b = min(fits, key=lambda b: buffers[b])
        elif free:
            b = max(free, key=lambda b: buffers[b])
            buffers[b] = size
        else:
            b = len(buffers)
            buffers[b] = size
        busy_until[b] = end
        assign[name] = b
    return buffers, fixed, assign
