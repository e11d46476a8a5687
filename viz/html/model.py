"""What the explorer page shows, as JSON-able dicts: the declared graph's nodes (params folded
into their ops), the compiled plan's steps, fusion, backward sweep and per-step time.

    data = {"graph": graph_data(g), "plan": plan_data(plan, timings)}

Shapes are per example (the batch dimension is left out, as everywhere in dagnet); bytes are
bytes per example; FLOPs are per example.
"""
from __future__ import annotations

import math

import numpy as np

from dagnet.graph import INPUT, PARAM, Graph
from dagnet.viz import style
from dagnet.viz.graph import annotated, port_name


def jsonable(value):
    """Attrs and meta values as JSON: tuples become lists, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def styles() -> dict:
    """The diagrams' look (viz.style) for the page: node families, cluster boxes, marks."""
    def box(attrs):
        kinds = attrs.get("style", "")
        return {"fill": attrs.get("fillcolor", attrs.get("bgcolor", "#FFFFFF")), "stroke": attrs["color"],
                "bold": "bold" in kinds, "dashed": "dashed" in kinds, "dotted": "dotted" in kinds,
                "text": attrs.get("fontcolor", "#222222")}

    return {"families": {k: box(v) for k, v in {**style.STYLES, "backward": style.BACKWARD}.items()},
            "clusters": {"fused": box(style.FUSED_CLUSTER), "miss": box(style.NEAR_MISS),
                         "block": box(style.BLOCK_CLUSTER), "run": box(style.BLOCK_CLUSTER),
                         "folded": box(style.BLOCK_NODE)},
            "pruned": box(style.PRUNED), "removed": box({**style.PRUNED, **style.REMOVED}),
            "step": style.STEP_MARK, "inplace": style.INPLACE_MARK, "peak": style.PEAK["color"],
            "gradient": style.GRADIENT_EDGE["color"], "edge": style.EDGE["color"],
            "param_edge": style.PARAM_EDGE["color"], "diff": dict(style.DIFF),
            "buffers": [style.buffer_color(b) for b in range(10)]}


def graph_data(graph: Graph) -> dict:
    """The declared graph: nodes in graph order (no params), params by name, outputs."""
    g = annotated(graph)
    users = g.consumer_map()
    nodes, params = [], {}
    for n in g:
        if n.op == PARAM:
            params[n.name] = {"shape": list(n.meta["shape"]), "count": int(n.meta["params"]),
                              "init": n.attrs.get("init"), "decay": bool(n.attrs.get("decay", True)),
                              "users": sorted({u for u, _ in users.get(n.name, [])})}
            continue
        node = {"name": n.name, "op": n.op, "family": style.family_of(n),
                "attrs": jsonable({k: v for k, v in n.attrs.items() if k not in ("shape",)}),
                "shape": list(n.meta["shape"]), "inputs": list(n.inputs),
                "params": int(n.meta.get("params", 0)), "flops": int(n.meta.get("flops", 0))}
        if n.op == INPUT:
            node["attrs"] = {"dtype": n.attrs.get("dtype", "float32")}
        else:
            node["ports"] = [port_name(n, p) for p in range(len(n.inputs))]
        nodes.append(node)
    return {"name": g.name, "nodes": nodes, "params": params, "outputs": list(g.outputs),
            "total_params": sum(p["count"] for p in params.values()),
            "ops": sum(1 for n in nodes if n["op"] != INPUT)}


def plan_data(plan, timings: dict | None = None) -> dict:
    """The compiled plan: steps (with kernel notes, buffers, lifetimes and times), fusion
    decisions and near misses, pruned nodes, the backward order and the memory totals."""
    meta = plan.graph.meta
    fusion = meta.get("fusion", {"fused": [], "near_misses": []})
    backward = meta.get("backward", {})
    in_backward = {s.name for s in plan.backward_steps}
    itemsize = plan.dtype.itemsize
    steps = []
    for s in plan.steps:
        node = plan.graph.node(s.name)
        live = node.meta.get("live")
        step = {"index": s.index, "name": s.name, "op": s.op_name, "members": list(s.members),
                "pattern": s.pattern, "shape": list(s.shape), "params": int(s.params),
                "flops": int(s.flops), "buffer": int(s.buffer), "workspace_buffer": int(s.workspace_buffer),
                "bytes": int(math.prod(s.shape)) * itemsize, "batched": bool(node.meta.get("batched", True)),
                "live": list(live) if live else None, "inplace": bool(s.inplace),
                "kernel": plan.kernel_note(s), "inputs": list(s.inputs), "frees": list(s.frees),
                "attrs": jsonable({k: v for k, v in s.attrs.items() if k != "members"})}
        if s.name in in_backward:
            step["grads"] = [p for p, need in zip(s.inputs, s.needs) if need]
            step["skips"] = [p for port, (p, need) in enumerate(zip(s.inputs, s.needs))
                             if not need and s.op.needs_grad(port) and p not in plan.params]
        steps.append(step)
    data = {"name": plan.graph.name, "mode": plan.mode, "dtype": str(plan.dtype), "steps": steps,
            "outputs": list(plan.outputs), "pruned": list(meta.get("pruned", [])),
            "fused": jsonable(fusion.get("fused", [])), "near_misses": jsonable(fusion.get("near_misses", [])),
            "backward": {"order": list(backward.get("order", [])), "fan_in": jsonable(backward.get("fan_in", {})),
                         "seeds": list(backward.get("seeds", []))},
            "params": int(sum(int(np.prod(p.shape)) for p in plan.params.values())),
            "timings": None}
    if timings:
        data["timings"] = timing_data(plan, timings)
    return data


def timing_data(plan, timings: dict) -> dict:
    """Seconds per step and heat colors (share of the slowest step, as render_plan colors)."""
    slowest = max((sum(t.values()) for t in timings.values()), default=0) or 1.0
    steps = {}
    for s in plan.steps:
        t = timings.get(s.name, {})
        total = float(sum(t.values()))
        steps[s.name] = {"forward": float(t.get("forward", 0.0)), "backward": float(t.get("backward", 0.0)),
                         "total": total, "heat": style.heat_color(total / slowest),
                         "heat_backward": style.heat_color(t.get("backward", 0.0) / slowest)}
    total = sum(v["total"] for v in steps.values())
    return {"steps": steps, "total": total, "slowest": slowest}
