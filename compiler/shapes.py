"""Pass: infer every value's shape and every node's parameter count. Graph -> annotated copy.

meta["shape"]: per-example shape for batched values, full shape for params.
meta["batched"]: whether the value has a leading batch dimension.
meta["params"]: number of parameter scalars an op node reads (params feeding it directly).
meta["flops"]: forward FLOPs per example (rough, for plan.describe()).
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from dagnet.errors import DagnetError, ShapeError
from dagnet.graph import INPUT, PARAM, Graph
from dagnet.ops import get_op


def topological_order(graph: Graph) -> list[str]:
    """Deterministic topological order: ties broken by insertion index."""
    view = graph.nx
    index = nx.get_node_attributes(view, "index")
    return list(nx.lexicographical_topological_sort(view, key=index.__getitem__))


def infer_shapes(graph: Graph) -> Graph:
    g = graph.copy()
    for name in topological_order(g):
        n = g.node(name)
        if n.op in (INPUT, PARAM):
            n.meta.update(shape=tuple(n.attrs["shape"]), batched=n.op == INPUT, params=0, flops=0)
            if n.op == PARAM:
                n.meta["params"] = int(np.prod(n.attrs["shape"], dtype=np.int64))
            continue
        op = get_op(n.op, n.name)
        srcs = [g.node(s) for s in n.inputs]
        for port, s in enumerate(srcs):
            want = port in op.batched_inputs
            if s.meta["batched"] != want:
                pname = op.input_names[min(port, len(op.input_names) - 1)]
                what = "a batched value (an input or an op output)" if want else "a param"
                raise ShapeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') must be {what}, "
                                 f"but '{s.name}' is {'batched' if s.meta['batched'] else 'a param'}")
        in_shapes = [s.meta["shape"] for s in srcs]
        try:
            out = tuple(op.infer_shape(in_shapes, n.attrs))
        except DagnetError as e:
            shapes = ", ".join(f"{s.name} {tuple(sh)}" for s, sh in zip(srcs, in_shapes))
            raise type(e)(f"{n.name} ({n.op}, inputs {shapes}): {e}") from None
        n.meta["shape"] = out
        n.meta["batched"] = op.kind != "loss"
        n.meta["params"] = sum(s.meta["params"] for s in srcs if s.op == PARAM)
        n.meta["flops"] = int(op.flops(in_shapes, out, n.attrs))
    return g
