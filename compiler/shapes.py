"""Pass: infer every value's shape and every node's parameter count. Graph -> annotated copy.

meta["shape"]: per-example shape for batched values, full shape for params.
meta["batched"]: whether the value has a leading batch dimension.
meta["params"]: number of parameter scalars an op node reads (params feeding it directly).
meta["flops"]: forward FLOPs per example (rough, for plan.describe()).

The shape of one node is dagnet.infer.infer_node's, the function the builder runs as it goes.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import INPUT, PARAM, Graph
from dagnet.infer import infer_node, is_batched
from dagnet.ir import topological_order
from dagnet.ops import get_op

__all__ = ["infer_shapes", "topological_order"]


def infer_shapes(graph: Graph) -> Graph:
    g = graph.copy()
    for name in topological_order(g):
        n = g.node(name)
        if n.op in (INPUT, PARAM):
            n.meta.update(shape=tuple(n.attrs["shape"]), batched=n.op == INPUT, params=0, flops=0)
            if n.op == PARAM:
                n.meta["params"] = int(np.prod(n.attrs["shape"], dtype=np.int64))
            continue
        srcs = [g.node(s) for s in n.inputs]
        in_shapes = [s.meta["shape"] for s in srcs]
        out = infer_node(n, srcs, in_shapes)
        n.meta["shape"] = out
        n.meta["batched"] = is_batched(n)
        n.meta["params"] = sum(s.meta["params"] for s in srcs if s.op == PARAM)
        n.meta["flops"] = int(get_op(n.op, n.name).flops(in_shapes, out, n.attrs))
    return g
