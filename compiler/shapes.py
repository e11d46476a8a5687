"""Pass: infer every value's shape and every node's parameter count. Graph -> annotated copy.

meta["shape"]: per-example shape for batched values, full shape for the others (params,
constants, unbatched inputs and what ops make of those only).
meta["batched"]: whether the value has a leading batch dimension.
meta["params"]: number of parameter scalars an op node reads (params feeding it directly).
meta["flops"]: forward FLOPs per example (rough, for plan.describe()).

The shape of one node is dagnet.infer.infer_node's, the function the builder runs as it goes.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import LEAVES, PARAM, Graph
from dagnet.infer import infer_node, is_batched, leaf_shape, op_shapes
from dagnet.ir import topological_order
from dagnet.ops import get_op

__all__ = ["infer_shapes", "topological_order"]


def infer_shapes(graph: Graph) -> Graph:
    g = graph.copy()
    for name in topological_order(g):
        n = g.node(name)
        if n.op in LEAVES:
            n.meta.pop("batched", None)  # from the declaration, not a stale annotation
            n.meta.update(shape=leaf_shape(n), batched=is_batched(n), params=0, flops=0)
            if n.op == PARAM:
                n.meta["params"] = int(np.prod(n.attrs["shape"], dtype=np.int64))
            continue
        srcs = [g.node(s) for s in n.inputs]
        in_shapes = [s.meta["shape"] for s in srcs]
        n.meta["shape"], n.meta["batched"] = infer_node(n, srcs, in_shapes)
        n.meta["params"] = sum(s.meta["params"] for s in srcs if s.op == PARAM)
        op = get_op(n.op, n.name)
        ins, out = op_shapes(op, srcs, n)
        n.meta["flops"] = int(op.flops(ins, out, n.attrs))
    return g
