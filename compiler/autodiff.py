"""Pass: plan the backward sweep over the (fused) schedule. Graph -> annotated copy.

A value requires a gradient when it is a param that is not frozen, an input asked for in
`wrt`, or an op output with such a value on a differentiable port. Frozen params (fine-tuning)
get no gradient, so the steps only they would need drop out of the backward order. Each op node
that requires a gradient gets meta["needs"]: one bool per input port (False skips work, e.g.
the first conv's input grad). graph.meta["backward"] = {"order": op nodes in backward order,
"fan_in": {value: number of gradient contributions summed into it, where > 1 (fan-out in
forward)}, "seeds": losses, "wrt": inputs differentiated, "frozen": frozen params}.
"""
from __future__ import annotations


from dagnet.errors import GraphError
from dagnet.graph import INPUT, LEAVES, PARAM, Graph
from dagnet.ops import get_op


def plan_backward(graph: Graph, wrt=(), freeze=()) -> Graph:
    g = graph.copy()
    wrt = set(wrt)
    for name in wrt:
        if name not in g or g.node(name).op != INPUT:
            raise GraphError(f"gradient requested for '{name}', which is not an input of the graph")
    for name in freeze:
        if name in g and g.node(name).op != PARAM:  # absent: pruned away, nothing to freeze
            raise GraphError(f"cannot freeze '{name}': it is a {g.node(name).op} node, not a "
                             f"param; freeze its params ({name}.w, ...)")
    frozen = {name for name in freeze if name in g}
    requires = {n.name for n in g if (n.op == PARAM and n.name not in frozen) or n.name in wrt}
    order = []
    contributions: dict[str, int] = {}
    for n in g:  # g is in schedule order
        if n.op in LEAVES:
            continue
        op = get_op(n.op, n.name)
        needs = tuple(src in requires and op.needs_grad(port) for port, src in enumerate(n.inputs))
        n.meta["needs"] = needs
        if any(needs):
            requires.add(n.name)
            order.append(n.name)
            for src, need in zip(n.inputs, needs):
                if need:
                    contributions[src] = contributions.get(src, 0) + 1
    seeds = [o for o in g.outputs if g.node(o).kind == "loss" and o in requires]
    g.meta["backward"] = {
        "order": order[::-1],
        "fan_in": {v: c for v, c in contributions.items() if c > 1},
        "seeds": seeds,
        "wrt": sorted(wrt),
        "frozen": sorted(frozen),
    }
    return g


def frozen_params(graph: Graph, names=()) -> tuple:
    """The params that `names` freeze: a param itself, or an op node's own params."""
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        name = getattr(name, "name", name)
        node = graph.node(name, doing=f"freeze '{name}'")
        if node.op == INPUT:
            raise GraphError(f"cannot freeze '{name}': it is an input, which has no params; "
                             f"name a param or an op node")
        found = [name] if node.op == PARAM else \
            [s for s in node.inputs if graph.node(s).op == PARAM]
        out += [p for p in found if p not in out]
    return tuple(out)
