"""The pictures autodiff courses draw by hand: a small computation graph with each node's value
and derivative, for forward mode (the tangent d node / d wrt carried along every edge) or
reverse mode (the adjoint d of / d node, and each edge's contribution to it, flowing back).

    dot = render_autodiff(g, {"x1": 1.5, "x2": 0.5}, mode="forward", wrt="x1")
    dot = render_autodiff(g, {"x1": 1.5, "x2": 0.5}, mode="reverse", of="y1", path="rev.svg")

Values and tangents come from dagnet.jvp (one forward-mode sweep); adjoints from the ops' own
backward, node by node in reverse order (each op's vector-Jacobian product), so the picture
shows exactly what the two sweeps compute.
"""
from __future__ import annotations

import graphviz
import numpy as np

from dagnet.compiler.jacobian import jvp
from dagnet.errors import ArgumentError, GraphError
from dagnet.ir import CONSTANT, INPUT, PARAM, topological_order
from dagnet.ops import get_op
from dagnet.viz import style
from dagnet.viz.graph import save

MODES = ("forward", "reverse")
#: graphs larger than this are no longer a picture to read by hand
MAX_NODES = 60
FORWARD_EDGE = "#2B6CB0"
REVERSE_EDGE = "#C53030"


def autodiff_values(graph, feeds: dict, mode: str = "forward", wrt=None, of=None):
    """(values, derivatives, edges): {node: value}, {node: tangent d node/d wrt (forward) or
    adjoint d of/d node (reverse)}, {(src, dst, port): what the edge carries (forward: src's
    tangent; reverse: dst's adjoint times d dst/d src, src's share of its adjoint)}."""
    if mode not in MODES:
        raise ArgumentError(f"render_autodiff: mode must be one of {MODES}, got {mode!r}")
    if len(graph) > MAX_NODES:
        raise GraphError(f"render_autodiff: graph '{graph.name}' has {len(graph)} nodes; the "
                         f"picture is for small graphs (at most {MAX_NODES}): use render_graph")
    ops = [n.name for n in graph if n.op not in (INPUT, PARAM, CONSTANT)]
    inputs = [n.name for n in graph.inputs]
    if mode == "forward":
        wrt = _one(graph, wrt or (inputs[0] if len(inputs) == 1 else None), "wrt", inputs)
        values, tangents = jvp(graph, feeds, {wrt: np.ones(np.shape(feeds[wrt]))}, outputs=ops)
        values = {**{k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()}, **values}
        tangents = {**{k: np.ones_like(values[k]) if k == wrt else np.zeros_like(values[k])
                       for k in feeds}, **tangents}
        edges = {(s, n.name, port): tangents[s] for n in graph if n.name in ops
                 for port, s in enumerate(n.inputs) if s in tangents}
        return values, tangents, edges
    of = _one(graph, of or (graph.outputs[0] if len(graph.outputs) == 1 else None), "of",
              [n.name for n in graph])
    return _reverse(graph, feeds, ops, of)


def _one(graph, name, what: str, choices: list) -> str:
    if name is None:
        raise ArgumentError(f"render_autodiff: name the {what}= node (one of {', '.join(choices)})")
    name = getattr(name, "name", name)
    graph.node(name, doing=f"differentiate {'with respect to' if what == 'wrt' else 'the output'} "
                           f"'{name}'")
    return name


def _reverse(graph, feeds, ops, of):
    """Values by the ops' forward in train mode (their backward needs those caches), then
    adjoints by each op's backward from `of` (seeded with ones) back to the inputs."""
    values, caches = {k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()}, {}
    for name in topological_order(graph):
        n = graph.node(name)
        if n.op in (PARAM, CONSTANT):
            raise GraphError(f"render_autodiff: '{name}' is a {n.op}; the reverse-mode picture "
                             f"takes graphs of inputs and ops (make it an input)")
        if name in ops:
            op = get_op(n.op)
            values[name], caches[name] = op.forward([values[s] for s in n.inputs], n.attrs, mode="train")
    adjoints = {name: np.zeros_like(v) for name, v in values.items()}
    adjoints[of] = np.ones_like(values[of])
    edges = {}
    order = topological_order(graph)
    for name in reversed(order[:order.index(of) + 1]):
        n = graph.node(name)
        if name not in ops:
            continue
        grads = get_op(n.op).backward(adjoints[name], caches[name], n.attrs)
        for port, (s, g) in enumerate(zip(n.inputs, grads)):
            if g is not None:
                edges[(s, name, port)] = g
                adjoints[s] = adjoints[s] + g
    return values, adjoints, edges


def number_text(v) -> str:
    """A scalar to 4 significant digits; an array as its shape and first values."""
    v = np.asarray(v)
    if v.size == 1:
        return f"{float(v.reshape(())):.4g}"
    head = ", ".join(f"{x:.3g}" for x in v.ravel()[:3])
    return f"{style.shape_text(v.shape)} [{head}{', ...' if v.size > 3 else ''}]"


def render_autodiff(graph, feeds: dict, mode: str = "forward", wrt=None, of=None, path=None,
                    format: str | None = None) -> graphviz.Digraph:
    """The graph left to right, each box its name, op, value and derivative (forward: the
    tangent, dotted; reverse: the adjoint, barred); forward edges carry the tangent, reverse
    edges point back and carry each contribution to the adjoint; written to `path` if given."""
    values, derivs, edges = autodiff_values(graph, feeds, mode, wrt, of)
    wrt_name = wrt if mode == "forward" else of
    wrt_name = getattr(wrt_name, "name", wrt_name) or (graph.inputs[0].name if mode == "forward"
                                                       else graph.outputs[0])
    mark = "\u0307" if mode == "forward" else "\u0304"  # combining dot / bar over the v
    what = f"d · / d {wrt_name}" if mode == "forward" else f"d {wrt_name} / d ·"
    dot = graphviz.Digraph(graph.name, graph_attr={
        "rankdir": "LR", "fontname": style.FONT, "labelloc": "t",
        "label": f"{graph.name}: {mode} mode, v{mark} = {what}"},
        node_attr={"fontname": style.FONT, "fontsize": "11"}, edge_attr={"fontname": style.FONT,
                                                                      "fontsize": "10"})
    for n in graph:
        if n.name not in values:
            continue
        look = {k: v for k, v in style.style_of(n).items() if k in ("fillcolor", "color", "style")}
        op = "" if n.op == INPUT else f"\n{n.op}"
        dot.node(n.name, f"{n.name}{op}\nv = {number_text(values[n.name])}\n"
                         f"v{mark} = {number_text(derivs[n.name])}", shape="box", **look)
    for n in graph:  # the edges no derivative flows along (past `of`), drawn faint
        for port, s in enumerate(n.inputs):
            if (s, n.name, port) not in edges and s in values and n.name in values:
                dot.edge(s, n.name, color="#BBBBBB")
    for (s, d, port), carried in edges.items():
        if mode == "forward":
            dot.edge(s, d, label=f"{s}{mark} = {number_text(carried)}", color=FORWARD_EDGE,
                     fontcolor=FORWARD_EDGE)
        else:
            dot.edge(s, d, label=f"{d}{mark}·∂{d}/∂{s} = {number_text(carried)}", dir="back",
                     color=REVERSE_EDGE, fontcolor=REVERSE_EDGE, style="dashed")
    if path is not None:
        save(dot, path, format)
    return dot
