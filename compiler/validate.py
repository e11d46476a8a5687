"""Pass: validate the structure of a graph. Graph -> Graph (the same graph; raises on error).

Checks: unknown ops, arity, dangling inputs, inputs/params with inputs, cycles (the error prints
the cycle), outputs that do not exist, param and input attrs.
"""
from __future__ import annotations

import difflib

import networkx as nx
import numpy as np

from dagnet.errors import CycleError, GraphError
from dagnet.graph import INITIALIZERS, INPUT, PARAM, Graph, check_size
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
            close = difflib.get_close_matches(str(out), [n.name for n in graph], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise GraphError(f"requested output {out!r} is not a node of graph "
                             f"'{graph.name}'{hint}")


def _check_input_dtype(n) -> None:
    dtype = n.attrs.get("dtype")
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "fiu"
    except TypeError:
        ok = False
    if not ok:
        raise GraphError(f"{n.name}: input node needs a 'dtype' that is a float or integer type "
                         f"such as float32 or int64, got {dtype!r}")


def _check_param_attrs(n) -> None:
    init = n.attrs.get("init", "gaussian")
    if not isinstance(init, str) or init not in INITIALIZERS:
        raise GraphError(f"{n.name}: unknown initializer {init!r}; use one of "
                         f"{', '.join(INITIALIZERS)}")
    for key in ("scale", "value"):
        v = n.attrs.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise GraphError(f"{n.name}: param attr '{key}' must be a number, got {v!r}")
    for key in ("fan_in", "fan_out"):
        v = n.attrs.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise GraphError(f"{n.name}: param attr '{key}' must be a positive integer, got {v!r}")


def _check_node(graph: Graph, n) -> None:
    if n.op in (INPUT, PARAM):
        if n.inputs:
            raise GraphError(f"{n.name}: an {n.op} node takes no inputs, got {n.inputs}")
        shape = n.attrs.get("shape")
        if shape is None:
            raise GraphError(f"{n.name}: {n.op} node needs a 'shape'")
        if not isinstance(shape, (list, tuple)) or any(
                not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in shape):
            raise GraphError(f"{n.name}: {n.op} shape must be positive integers, got {shape}")
        check_size(n.name, n.op, shape)
        if n.op == INPUT:
            _check_input_dtype(n)
        else:
            _check_param_attrs(n)
        return
    op = get_op(n.op, n.name)
    op.check_arity(len(n.inputs), n.name)
    for port, src in enumerate(n.inputs):
        if src not in graph:
            pname = op.input_names[min(port, len(op.input_names) - 1)]
            raise GraphError(f"{n.name}: input {port} ('{pname}') names '{src}', which is not a "
                             f"node of the graph; add it or fix the name")
