"""Pass: order the nodes for execution. Graph -> copy in schedule order, meta["step"] set on
op nodes. The order is a deterministic topological sort (ties broken by insertion order), so
the same graph always gives the same plan."""
from __future__ import annotations

from dagnet.graph import LEAVES, Graph
from dagnet.ir import topological_order


def schedule(graph: Graph) -> Graph:
    g = graph.copy()
    order = topological_order(graph)
    g.reorder(order)
    step = 0
    for n in g:
        if n.op not in LEAVES:
            n.meta["step"] = step
            step += 1
    return g
