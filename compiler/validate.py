"""Pass: validate the structure of a graph. Graph -> Graph (the same graph; raises on error).

Checks: unknown ops, arity, dangling inputs, inputs/params with inputs, cycles (the error prints
the cycle), outputs that do not exist, and every node's attrs against the declarations of its op
(or of input and param nodes): the checks the builder and the spec forms make too.
"""
from __future__ import annotations


import networkx as nx

from dagnet.errors import CycleError, GraphError, did_you_mean
from dagnet.graph import LEAVES, Graph
from dagnet.infer import check_leaf_attrs, check_node_attrs
from dagnet.ops import get_op


def validate(graph: Graph) -> Graph:
    """Raise a GraphError subclass naming the node and the fix, or return `graph` unchanged."""
    if len(graph) == 0:
        raise GraphError(f"graph '{graph.name}' is empty: add an input and some ops")
    for n in graph:
        _check_node(graph, n)
    view = graph.nx
    if not nx.is_directed_acyclic_graph(view):
        cycle = [u for u, _, _ in nx.find_cycle(view)]
        raise CycleError(f"cycle: {' -> '.join(cycle + [cycle[0]])}; a graph must be acyclic "
                         f"(remove one of these edges)")
    check_outputs(graph, graph.outputs)
    if not graph.outputs:
        raise GraphError(f"graph '{graph.name}' has no outputs: add an op or a loss")
    return graph


def check_outputs(graph: Graph, outputs) -> None:
    """GraphError for the first requested output that is not a node of the graph."""
    for out in outputs:
        if not isinstance(out, str) or out not in graph:
            raise GraphError(f"requested output {out!r} is not a node of graph "
                             f"'{graph.name}'{did_you_mean(out, [n.name for n in graph])}")


def _check_node(graph: Graph, n) -> None:
    if n.op in LEAVES:
        if n.inputs:
            raise GraphError(f"{n.name}: an {n.op} node takes no inputs, got {n.inputs}")
        check_leaf_attrs(n.name, n.op, n.attrs)
        return
    op = get_op(n.op, n.name)
    op.check_arity(len(n.inputs), n.name)
    for port, src in enumerate(n.inputs):
        if src not in graph:
            pname = op.input_names[min(port, len(op.input_names) - 1)]
            raise GraphError(f"{n.name}: input {port} ('{pname}') names '{src}', which is not a "
                             f"node of the graph; add it or fix the name")
    check_node_attrs(n, op)
