"""Pass: drop every node that no requested output needs. Graph -> copy; graph.meta["pruned"]
lists what was dropped (in graph order) so a plan can say and draw it."""
from __future__ import annotations

import networkx as nx

from dagnet.graph import Graph


def prune(graph: Graph, outputs: list[str]) -> Graph:
    view = graph.nx
    keep = set(outputs)
    for out in outputs:
        keep |= nx.ancestors(view, out)
    g = graph.copy()
    dropped = [n.name for n in graph if n.name not in keep]
    for name in dropped:
        g.remove_node(name)
    g.outputs = list(outputs)
    g.meta["pruned"] = g.meta.get("pruned", []) + dropped
    return g
