"""Pass: plan the forward-mode (JVP) sweep, and the sweep over a plan. Graph -> annotated copy.

plan_jvp(graph, wrt), run by compile(jvp=...) after the schedule. A value carries a tangent when it is an input in `wrt`
or an op output with such a value on a differentiable port; graph.meta["jvp"] = {"wrt": the
inputs, "order": the op nodes that carry one, in schedule order}. Every op on that path must
have a forward-mode rule (Op.jvp; Op.forward_mode says so), else GraphError names the node.

sweep(plan, feeds, tangents) runs the forward of an unfused plan and, beside each value, its
tangent: the directional derivative of every value along `tangents`, one sweep for any number
of outputs (reverse mode needs one backward sweep per output element). dagnet.jvp and
dagnet.jacobian (compiler/jacobian.py) are the user's way in.
"""
from __future__ import annotations

import numpy as np

from dagnet import runtime
from dagnet.errors import FeedError, GraphError
from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph
from dagnet.infer import constant_array
from dagnet.ops import get_op


def plan_jvp(graph: Graph, wrt) -> Graph:
    """The op nodes whose values depend on the inputs `wrt`, in schedule order (meta["jvp"])."""
    g = graph.copy()
    wrt = list(wrt)
    for name in wrt:
        if name not in g or g.node(name).op != INPUT:
            raise GraphError(f"tangent given for '{name}', which is not an input of the graph; "
                             f"forward mode differentiates with respect to inputs "
                             f"({', '.join(n.name for n in g.inputs) or 'none'})")
    carries, order = set(wrt), []
    for n in g:  # g is in schedule order
        if n.op in LEAVES:
            continue
        op = get_op(n.op, n.name)
        if not any(s in carries and op.needs_grad(p) for p, s in enumerate(n.inputs)):
            continue
        if "fused_group" in n.meta:
            raise GraphError(f"{n.name}: a fused step ({n.meta['pattern']}) carries a tangent "
                             f"of {', '.join(sorted(wrt))}; forward mode runs the ops one by "
                             f"one: compile with fuse=False")
        if not op.forward_mode:
            raise GraphError(f"{n.name}: op '{n.op}' has no forward-mode rule (jvp) and its value "
                             f"depends on {', '.join(sorted(wrt))}; differentiate this graph in "
                             f"reverse mode (dagnet.jacobian(..., strategy='reverse'))")
        carries.add(n.name)
        order.append(n.name)
    g.meta["jvp"] = {"wrt": sorted(wrt), "order": order}
    return g


def sweep(plan, feeds: dict, tangents: dict) -> tuple[dict, dict]:
    """(values, tangents) of every value of a plan compiled with jvp=the inputs in `tangents`,
    forward in eval mode (dropout off, batchnorm's running statistics); tangents only of the
    values that carry one. The plan is unfused (fused ops declare no forward-mode rule)."""
    g = plan.graph
    planned = g.meta.get("jvp", {}).get("wrt")
    if planned != sorted(tangents):
        raise GraphError(f"this plan carries tangents of {planned or 'no inputs'}, not of "
                         f"{sorted(tangents)}; compile it with jvp={sorted(tangents)}")
    feeds = runtime.check_feeds(plan, feeds)
    missing = [n.name for n in g.inputs if n.name not in feeds]
    if missing:
        raise FeedError(f"feed missing for input(s) {', '.join(missing)}; jvp needs every input")
    carries = set(g.meta["jvp"]["order"])
    values, tans = {}, {}
    for name, t in tangents.items():
        want = feeds[name].shape
        t = np.asarray(t, dtype=plan.dtype)
        if t.shape != want:
            raise FeedError(f"tangent '{name}': expected the shape of its feed {want}, got "
                            f"{t.shape}; a tangent is a direction in the input's space")
        tans[name] = t
    for n in g:
        if n.op == INPUT:
            values[n.name] = feeds[n.name]
        elif n.op == PARAM:
            values[n.name] = plan.params[n.name]
        elif n.op == CONSTANT:
            values[n.name] = constant_array(n.attrs, plan.dtype)
        else:
            op = get_op(n.op, n.name)
            inputs = [values[s] for s in n.inputs]
            values[n.name], cache = op.forward(inputs, n.attrs, mode="eval",
                                               state=plan.state.get(n.name))
            if n.name in carries:
                t = op.jvp([tans.get(s) if op.needs_grad(p) else None
                            for p, s in enumerate(n.inputs)], inputs, values[n.name], cache, n.attrs)
                if t is not None:
                    tans[n.name] = np.asarray(t, dtype=values[n.name].dtype)
    return values, tans
