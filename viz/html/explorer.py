"""The explorer's data for a Graph or ExecutionPlan, and the page made of it.

    explorer_html(plan_or_graph, timings=None, run=None, passes=True, title=None) -> str
"""
from __future__ import annotations

import os

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.viz import style
from dagnet.viz.fold import find_repeats
from dagnet.viz.graph import annotated
from dagnet.viz.html import filmstrip
from dagnet.viz.html.groups import groups
from dagnet.viz.html.model import graph_data, plan_data, styles
from dagnet.viz.html.page import page
from dagnet.viz.html.timeline import memory_data


def explorer_data(obj, timings: dict | None = None, run: dict | None = None, passes: bool = True,
                  title: str | None = None) -> dict:
    """Everything the page shows, as JSON-able dicts. obj: a Graph (compiled here for the plan
    view; a graph that does not compile gets the declared view and the reason) or an
    ExecutionPlan. timings: {step: {"forward": s, "backward": s}} (plan.profile). run: a
    training run's curves, recipe and metrics (run_data)."""
    plan, graph, problem = _plan_and_graph(obj)
    shown = annotated(graph)
    gdata = graph_data(shown)
    pdata = plan_data(plan, timings) if plan is not None else None
    data = {"title": title or graph.name, "subtitle": _subtitle(gdata, plan, problem, timings),
            "styles": {**styles(), "heat": [style.heat_color(f) for f in (0, 0.25, 0.5, 0.75, 1)]},
            "graph": gdata, "plan": pdata, "memory": memory_data(plan) if plan is not None else None,
            "groups": groups(gdata, find_repeats(shown), plan), "passes": None, "pass_families": {},
            "run": run}
    if passes and problem is None and len(graph) <= filmstrip.MAX_NODES:
        options = {"mode": plan.mode, "dtype": plan.dtype, "outputs": plan.outputs, "wrt": plan.wrt,
                   "fuse": "fusion" in plan.graph.meta}
        data["passes"] = filmstrip.frames(graph, **options)
        data["pass_families"] = _families(data["passes"])
    return data


def explorer_html(obj, timings: dict | None = None, run: dict | None = None, passes: bool = True,
                  title: str | None = None) -> str:
    """The explorer page (one HTML document, everything inline) for a Graph or ExecutionPlan."""
    data = explorer_data(obj, timings, run, passes, title)
    return page(data, f"{data['title']} · dagnet")


def write_html(text: str, path) -> str:
    """Write a page to path (folders made as needed); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _plan_and_graph(obj):
    """(plan or None, declared graph, why it did not compile or None)."""
    if isinstance(obj, Graph):
        import dagnet  # the facade's compile: viz sits above the compiler

        try:
            return dagnet.compile(obj), obj, None
        except DagnetError as e:
            return None, obj, str(e)
    if hasattr(obj, "steps") and hasattr(obj, "source"):
        return obj, obj.source, None
    raise DagnetError(f"the explorer draws a dagnet Graph or ExecutionPlan, got a {type(obj).__name__}; "
                      f"pass the graph, or the plan that dagnet.compile(graph) returns")


def _subtitle(g: dict, plan, problem, timings) -> str:
    parts = [f"{g['ops']} ops", f"{g['total_params']:,} params"]
    if plan is not None:
        meta = plan.graph.meta
        parts += [f"{len(plan.steps)} steps", f"{sum(1 for s in plan.steps if s.fused)} fused",
                  f"{len(meta.get('fusion', {}).get('near_misses', []))} near misses",
                  f"{len(meta.get('pruned', []))} pruned", f"mode {plan.mode}, {plan.dtype}"]
        if meta.get("memory"):
            parts.append(f"peak {style.bytes_text(plan.peak_bytes(1))} per example")
        if timings:
            parts.append(f"timed: {style.seconds_text(sum(sum(t.values()) for t in timings.values()))} per step")
    if problem:
        parts.append(f"not compiled: {problem}")
    return " · ".join(parts)


def _families(frames: list) -> dict:
    """{op: style family} for every op in the film strip (fused ops included)."""
    ops = {n["op"] for f in frames for n in f.get("nodes", []) + f.get("set", [])}
    out = {}
    for op in ops:
        try:
            out[op] = style.family_of(Node("n", op))
        except DagnetError:
            out[op] = "fused" if "+" in op else "op"
    return out
