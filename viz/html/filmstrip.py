"""The compiler's passes as data for the explorer's slider: the declared graph, then what each
pass changed (viz.passes.status: added, removed, changed, or meta annotated), as deltas so
that a 1,000-node graph does not repeat itself nine times.

    frames(graph, mode="train") -> [{"pass": "declared", "nodes": [...]}, {"pass": "validate", ...}]

Params are left out of the pictures (the boxes list them) but counted in each frame's changes.
"""
from __future__ import annotations

from dagnet.graph import PARAM, Graph
from dagnet.compiler import run_passes
from dagnet.viz.passes import status

#: graphs with more nodes than this get no film strip (the page says so)
MAX_NODES = 5000
SHOWN_WIDTH = 40  # characters of a changed meta value shown in the details


def frames(graph: Graph, **options) -> list[dict]:
    """The declared graph's nodes, then one delta per pass: {"pass", "set" (added or changed
    nodes, in full), "removed", "annotated" ({name: {meta key: short value}}), "order" (the
    node names, where the pass reordered them), "counts" (per status, params included)}.
    options: those of run_passes (outputs, fuse, mode, dtype, wrt)."""
    snapshots = []
    run_passes(graph, trace=lambda name, g: snapshots.append((name, g)), **options)
    out = [{"pass": "declared", "nodes": [_node(n) for n in graph if n.op != PARAM]}]
    before = graph
    for name, g in snapshots:
        delta = {"pass": name, "set": [], "removed": [], "annotated": {}, "counts": {}}
        for n in g:
            state = status(before.node(n.name) if n.name in before else None, n)
            if state is None:
                continue
            delta["counts"][state] = delta["counts"].get(state, 0) + 1
            if n.op == PARAM:
                continue
            if state in ("added", "changed"):
                delta["set"].append({**_node(n), "status": state})
            else:
                delta["annotated"][n.name] = _meta_changes(before.node(n.name), n)
        for n in before:
            if n.name not in g:
                delta["counts"]["removed"] = delta["counts"].get("removed", 0) + 1
                if n.op != PARAM:
                    delta["removed"].append(n.name)
        order = [n.name for n in g if n.op != PARAM]
        if order != [n.name for n in before if n.op != PARAM and n.name in g]:
            delta["order"] = order
        out.append(delta)
        before = g
    return out


def _node(n) -> dict:
    return {"name": n.name, "op": n.op, "inputs": list(n.inputs)}


def _meta_changes(a, b) -> dict:
    """{meta key: the new value, shortened} for the meta entries that b adds or changes."""
    out = {}
    for k, v in b.meta.items():
        if k in a.meta and _same(a.meta[k], v):
            continue
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        out[k] = text if len(text) <= SHOWN_WIDTH else text[:SHOWN_WIDTH - 1] + "…"
    return out


def _same(x, y) -> bool:
    try:
        return bool(x == y)
    except ValueError:  # arrays
        return False
