"""What changed between two graphs or plans, and what each compiler pass did (a film strip).

diff(a, b) draws the union of both graphs: added nodes and edges green, removed ones red and
dashed, changed ones (op, attrs or inputs) orange, and nodes whose analysis results (meta)
changed blue with the new values listed. Nodes keep their name as id and their family color,
so the pictures of a film strip line up.

    diff(Graph.from_spec("a.yaml"), Graph.from_spec("b.yaml"), "ab.svg")
    film_strip(graph, "passes/")      # passes/00_declared.svg, 01_validate.svg, ...
"""
from __future__ import annotations

import os

import graphviz

from dagnet.graph import PARAM, Graph
from dagnet.compiler import run_passes
from dagnet.viz import style
from dagnet.viz.graph import (annotated, describe, emit, folded_params, node_attrs, node_id, render_graph,
                              save, title_label)

SHOWN = ("shape", "params")  # meta every box already shows
MARKS = {"added": "+ added", "removed": "− removed", "changed": "~ changed", "annotated": "meta changed"}


def _graph_of(x) -> Graph:
    return getattr(x, "graph", x)  # an ExecutionPlan draws its compiled graph


def status(a, b) -> str | None:
    """How node b differs from node a: added, removed, changed, annotated (meta only) or None."""
    if a is None:
        return "added"
    if b is None:
        return "removed"
    if (a.op, a.attrs, a.inputs) != (b.op, b.attrs, b.inputs):
        return "changed"
    return "annotated" if _meta_changes(a, b) else None


def _meta_changes(a, b) -> list[str]:
    return [k for k in b.meta if k not in a.meta or not _same(a.meta[k], b.meta[k])]


def _same(x, y) -> bool:
    try:
        return bool(x == y)
    except ValueError:  # arrays
        return False


def _short(value, width: int = 36) -> str:
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def diff(a, b, path=None, format: str | None = None, show_shapes: bool = True, rankdir: str = "TB",
         label=None, title: str | None = None) -> graphviz.Digraph:
    """Graphs or plans a and b drawn as one picture of their differences; written to `path`
    when given. label: a hook fn(node) -> str for the box text."""
    ga, gb = _graph_of(a), _graph_of(b)
    names = _merged_order(ga, gb)
    node = {v: (ga.node(v) if v in ga else None, gb.node(v) if v in gb else None) for v in names}
    states = {v: status(*node[v]) for v in names}
    # params folded into their op in both graphs stay hidden unless they were added, removed or
    # changed (their analysis results show in the op's box anyway)
    hidden = {v for v in folded_params(ga) & folded_params(gb) if states[v] in (None, "annotated")}
    # boxes show shapes and params even where a graph does not carry them yet; the statuses
    # above compare the graphs as given
    shown_a, shown_b = annotated(ga), annotated(gb)
    nodes = {}
    for v in names:
        if v in hidden:
            continue
        old, new = node[v]
        g = shown_b if new is not None else shown_a
        nodes[node_id(v)] = _node_attrs(g.node(v), g, states[v], old, new, show_shapes, hidden, label)
    edges = _edges(shown_a, shown_b, hidden, show_shapes)
    counts = {s: sum(1 for x in states.values() if x == s) for s in MARKS}
    sub = " · ".join(f"{MARKS[s]} {counts[s]}" for s in MARKS if counts[s]) or "no differences"
    meta = [k for k in gb.meta if not _same(ga.meta.get(k), gb.meta[k])]
    if meta:
        sub += " · graph meta: " + ", ".join(meta)
    heading = title or (f"{ga.name} → {gb.name}" if ga.name != gb.name else ga.name)
    dot = emit(f"{gb.name}_diff", title_label(heading, sub), rankdir, nodes, edges)
    if path is not None:
        save(dot, path, format)
    return dot


def _merged_order(ga: Graph, gb: Graph) -> list[str]:
    """b's node order, with each removed node placed after its predecessor in a."""
    order, prev = [n.name for n in gb], None
    for n in ga:
        if n.name not in gb:
            order.insert(order.index(prev) + 1 if prev else 0, n.name)
        prev = n.name
    return order


def _node_attrs(n, g, state, old, new, show_shapes, hidden, label) -> dict:
    attrs = {}
    lines = describe(n, g, show_shapes, True, hidden)
    if state is not None:
        color = style.DIFF[state]
        attrs.update(color=color, penwidth="3")
        if state == "removed":
            attrs.update(style.REMOVED)
        if state == "changed" and old.op != new.op:
            lines.append((f"was {old.op}", color))
        if state == "changed" and old.inputs != new.inputs:
            lines.append((f"inputs were {', '.join(old.inputs)}", color))
        if state == "annotated":
            lines += [(f"{k} = {_short(new.meta[k])}", color) for k in _meta_changes(old, new)
                      if k not in SHOWN]
    marks = [(MARKS[state], style.DIFF[state])] if state in ("added", "removed", "changed") else []
    return node_attrs(n, lines, marks, label, **attrs)


def _edges(ga: Graph, gb: Graph, hidden, show_shapes) -> list:
    def edge_set(g):
        return {(s, n.name, port): g.node(s) for n in g for port, s in enumerate(n.inputs)
                if s not in hidden and s in g}

    ea, eb = edge_set(ga), edge_set(gb)
    out = []
    for key in list(eb) + [k for k in ea if k not in eb]:
        src = eb.get(key) or ea[key]
        attrs = {}
        if show_shapes and src.op != PARAM and "shape" in src.meta:
            attrs["label"] = " " + style.shape_text(src.meta["shape"])
        if key not in ea:
            attrs.update(color=style.DIFF["added"], penwidth="2")
        elif key not in eb:
            attrs.update(color=style.DIFF["removed"], style="dashed")
        out.append((node_id(key[0]), node_id(key[1]), attrs))
    return out


def pass_frames(graph: Graph, **options) -> list[tuple[str, graphviz.Digraph]]:
    """[(pass name, picture)]: the declared graph, then each compiler pass's result drawn as
    a diff against the graph before it. options: those of dagnet.compile's passes (outputs,
    fuse, mode, dtype, wrt, inplace)."""
    snapshots = []
    run_passes(graph, trace=lambda name, g: snapshots.append((name, g)), **options)
    frames = [("declared", render_graph(graph, blocks=None, title=f"{graph.name} · 0. as declared"))]
    before = graph
    for i, (name, g) in enumerate(snapshots, 1):
        frames.append((name, diff(before, g, title=f"{graph.name} · {i}. after {name}")))
        before = g
    return frames


def film_strip(graph: Graph, directory, format: str = "svg", **options) -> list[str]:
    """Write the pictures of pass_frames as DIR/00_declared.svg, DIR/01_validate.svg, ...;
    returns their paths."""
    return [save(dot, os.path.join(os.fspath(directory), f"{i:02d}_{name}.{format}"), format)
            for i, (name, dot) in enumerate(pass_frames(graph, **options))]
