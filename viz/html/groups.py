"""The boxes of the explorer's two views, as a tree: runs of repeated blocks and their blocks
(both views), fused groups and near misses (the plan view).

    groups(graph_data_dict, repeats, plan)  -> {"graph": [group, ...], "plan": [group, ...]}

A group is {"id", "kind" (run | block | fused | miss), "members" (node names), "parent",
"label", "lines", "collapsible", "collapsed" (the default), "step"}. Boxes must nest (a
picture cannot cut one box with another): a group that would cut another is left out, as
render_plan leaves it out (a near miss then marks its edges instead, "edges_only").
"""
from __future__ import annotations

from dagnet.viz.graph import AUTO_FOLD_OPS, Cluster, nest, wrap


def groups(graph: dict, repeats, plan=None) -> dict:
    """{"graph": groups of the declared view, "plan": groups of the plan view (or [])}."""
    fold = graph["ops"] > AUTO_FOLD_OPS  # big graphs open with their runs folded, as render_graph
    blocks = _repeat_groups(repeats, graph, fold)
    out = {"graph": _nested(blocks), "plan": []}
    if plan is not None:
        out["plan"] = _nested(blocks + _fused_groups(plan) + _miss_groups(plan))
    return out


def _repeat_groups(repeats, graph: dict, fold: bool) -> list[dict]:
    ops = {n["name"]: n["op"] for n in graph["nodes"]}
    params = {n["name"]: n["params"] for n in graph["nodes"]}
    out = []
    for i, r in enumerate(repeats):
        first = r.blocks[0]
        lines = [f"{r.prefixes[0]} … {r.prefixes[-1]}"] if r.prefixes[0] else []
        lines += wrap(f"{len(first)} ops each: " + " → ".join(ops[v] for v in first))
        lines.append(f"{sum(params[v] for v in r.nodes):,} params in all")
        out.append({"id": f"run{i}", "kind": "run", "members": list(r.nodes), "label": f"{r.name} × {r.count}",
                    "lines": lines, "collapsible": True, "collapsed": fold, "step": None})
        for k, (block, prefix) in enumerate(zip(r.blocks, r.prefixes)):
            out.append({"id": f"run{i}/{k}", "kind": "block", "members": list(block),
                        "label": f"{prefix or r.name} ({k + 1}/{r.count})",
                        "lines": [f"{len(block)} ops · {sum(params[v] for v in block):,} params"],
                        "collapsible": True, "collapsed": False, "step": None})
    return out


def _fused_groups(plan) -> list[dict]:
    out = []
    for s in plan.steps:
        if not s.fused:
            continue
        note = plan.kernel_note(s)
        out.append({"id": f"step{s.index}", "kind": "fused", "members": list(s.members),
                    "label": f"#{s.index} {s.pattern}", "lines": ["one fused kernel" + (f": {note}" if note else "")],
                    "collapsible": True, "collapsed": False, "step": s.index})
    return out


def _miss_groups(plan) -> list[dict]:
    misses = plan.graph.meta.get("fusion", {}).get("near_misses", [])
    return [{"id": f"miss{i}", "kind": "miss", "members": list(nm["nodes"]),
             "label": f"✗ not fused: {nm['pattern']}", "lines": wrap(nm["reason"], 52),
             "collapsible": False, "collapsed": False, "step": None, "miss": i}
            for i, nm in enumerate(misses)]


def _nested(candidates: list[dict]) -> list[dict]:
    """The groups that nest, each with its parent's id; the others dropped (near misses kept
    as "edges_only", so the page can mark their edges)."""
    parents, rejected = nest([Cluster(g["id"], set(g["members"])) for g in candidates])
    rejected = {c.key for c in rejected}
    out = []
    for g in candidates:
        if g["id"] in rejected:
            if g["kind"] == "miss":
                out.append({**g, "parent": None, "edges_only": True, "collapsible": False})
            continue
        out.append({**g, "parent": parents[g["id"]]})
    return out

