"""Pass: infer every value's shape and every node's parameter count. Graph -> annotated copy.

meta["shape"]: per-example shape for batched values, full shape for params.
meta["batched"]: whether the value has a leading batch dimension.
meta["params"]: number of parameter scalars an op node reads (params feeding it directly).
meta["flops"]: forward FLOPs per example (rough, for plan.describe()).
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from dagnet.errors import AttrError, DagnetError, DTypeError, ShapeError
from dagnet.graph import INPUT, PARAM, Graph, check_size, check_window_attrs
from dagnet.ops import get_op


def topological_order(graph: Graph) -> list[str]:
    """Deterministic topological order: ties broken by insertion index."""
    view = graph.nx
    index = nx.get_node_attributes(view, "index")
    return list(nx.lexicographical_topological_sort(view, key=index.__getitem__))


def _check_kind(n, op, port: int, src) -> None:
    """DTypeError when an integer input feeds a float port or a float value feeds a port that
    takes class indices (a loss's labels): found at compile time, not in the first batch."""
    labels = (op.differentiable_inputs is not None and port not in op.differentiable_inputs
              and port in op.batched_inputs)
    is_int = src.op == INPUT and np.dtype(src.attrs["dtype"]).kind in "iu"
    pname = op.input_names[min(port, len(op.input_names) - 1)]
    if is_int and not labels:
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') needs floats, but "
                         f"'{src.name}' is an {src.attrs['dtype']} input; only a loss's labels "
                         f"are integers: declare '{src.name}' with dtype float32")
    if labels and not is_int:
        what = f"a {src.attrs['dtype']} input" if src.op == INPUT else "an op output (floats)"
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') takes integer class "
                         f"indices, but '{src.name}' is {what}; feed it from an input declared "
                         f"with dtype int64")


def infer_shapes(graph: Graph) -> Graph:
    g = graph.copy()
    for name in topological_order(g):
        n = g.node(name)
        if n.op in (INPUT, PARAM):
            n.meta.update(shape=tuple(n.attrs["shape"]), batched=n.op == INPUT, params=0, flops=0)
            if n.op == PARAM:
                n.meta["params"] = int(np.prod(n.attrs["shape"], dtype=np.int64))
            continue
        op = get_op(n.op, n.name)
        srcs = [g.node(s) for s in n.inputs]
        for port, s in enumerate(srcs):
            want = port in op.batched_inputs
            if s.meta["batched"] != want:
                pname = op.input_names[min(port, len(op.input_names) - 1)]
                what = "a batched value (an input or an op output)" if want else "a param"
                raise ShapeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') must be {what}, "
                                 f"but '{s.name}' is {'batched' if s.meta['batched'] else 'a param'}")
            _check_kind(n, op, port, s)
        in_shapes = [s.meta["shape"] for s in srcs]
        check_window_attrs(n)
        try:
            out = tuple(op.infer_shape(in_shapes, n.attrs))
        except DagnetError as e:
            shapes = ", ".join(f"{s.name} {tuple(sh)}" for s, sh in zip(srcs, in_shapes))
            raise type(e)(f"{n.name} ({n.op}, inputs {shapes}): {e}") from None
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
            # attrs of the wrong type (a graph built with add_node, not the checked builder)
            raise AttrError(f"{n.name}: op '{n.op}' cannot use its attrs {n.attrs} "
                            f"({type(e).__name__}: {e}); check the attr names and types") from None
        check_size(n.name, "output", out)
        n.meta["shape"] = out
        n.meta["batched"] = op.kind != "loss"
        n.meta["params"] = sum(s.meta["params"] for s in srcs if s.op == PARAM)
        n.meta["flops"] = int(op.flops(in_shapes, out, n.attrs))
    return g
