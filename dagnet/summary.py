"""Per-layer summary of a graph: output shape, parameter count and connection count - the
numbers course exercises ask students to work out by hand.

Connections follow the LeNet paper's counting: a conv output unit connects to C*kh*kw inputs
plus its bias, (C*kh*kw + 1) * F * H' * W' in all; an affine layer (D + 1) * M; a pooling unit
to its kh*kw window; element-wise and other ops one connection per output element.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import GraphError
from dagnet.graph import INPUT, PARAM, Graph
from dagnet.ir import Graph as IRGraph


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def connections(graph: Graph, node) -> int:
    """Connection count of an op node (see the module docstring)."""
    out = graph.shape_of(node)
    if node.op == "conv2d":
        w = graph.shape_of(node.inputs[1])
        return (_size(w[1:]) + 1) * _size(out)
    if node.op == "affine":
        d, m = graph.shape_of(node.inputs[1])
        return (d + 1) * m
    if node.op in ("max_pool2d", "avg_pool2d"):
        size = node.attrs.get("size", 2)
        kh, kw = (size, size) if isinstance(size, int) else size
        return kh * kw * _size(out)
    if node.op == "global_avg_pool":
        return _size(graph.shape_of(node.inputs[0]))
    return _size(out)


def summary_rows(graph: Graph) -> list[dict]:
    """One dict per non-param node: name, op, shape, params, connections."""
    if not isinstance(graph, IRGraph):
        raise GraphError(f"summary: expected a dagnet Graph, got {type(graph).__name__} "
                         f"(for a model name: dagnet.models.get_model(name))")
    rows = []
    for n in graph:
        if n.op == PARAM:
            continue
        shape = graph.shape_of(n)
        params = sum(_size(graph.shape_of(s)) for s in n.inputs if graph.node(s).op == PARAM)
        rows.append({"name": n.name, "op": n.op, "shape": tuple(shape), "params": params,
                     "connections": 0 if n.op == INPUT else connections(graph, n)})
    return rows


def summary_table(graph: Graph) -> str:
    """The rows as an aligned text table with totals."""
    rows = summary_rows(graph)
    head = ("layer", "op", "output (C, H, W) / units", "params", "connections")
    body = [(r["name"], r["op"], str(r["shape"]), f"{r['params']:,}", f"{r['connections']:,}")
            for r in rows]
    total = ("total", "", "", f"{sum(r['params'] for r in rows):,}",
             f"{sum(r['connections'] for r in rows):,}")
    table = [head] + body + [total]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return f"{graph.name}\n" + "\n".join(lines)
