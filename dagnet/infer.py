"""Checking one node and inferring its shape: the one place both happen. The builder
(dagnet.graph) runs them as each node is made, the compiler's validate and shapes passes over
a whole graph; all four check against the declarations of the node's op (dagnet.ops.declare)
or of input and param nodes (dagnet.ir.LEAF_ATTRS).
"""
from __future__ import annotations

import difflib
import math

import numpy as np

from dagnet.errors import AttrError, DagnetError, DTypeError, GraphError, ShapeError
from dagnet.init import param_problem
from dagnet.ir import INPUT, LEAF_ATTRS, PARAM, Node
from dagnet.ops import get_op

#: Most values one example (or one param) may hold: 2**40 float32s are 4 TiB. Beyond it a size
#: is a typo, and checking here keeps every later product of sizes inside int64.
MAX_ELEMENTS = 2 ** 40


def is_batched(n: Node) -> bool:
    """Whether node n's value has a leading batch dimension (inputs and op outputs; a loss's
    mean and params do not)."""
    if n.op in (INPUT, PARAM):
        return n.op == INPUT
    return get_op(n.op, n.name).kind != "loss"


def infer_node(n: Node, srcs: list[Node], in_shapes: list) -> tuple:
    """The output shape of op node n from its input nodes and their shapes: the inputs' kinds
    (batched or param, integer or float) and the attrs are checked against the op's
    declarations first. Every error names the node and the op."""
    op = get_op(n.op, n.name)
    for port, src in enumerate(srcs):
        _check_port(n, op, port, src)
    check_node_attrs(n, op)
    try:
        out = tuple(op.infer_shape(in_shapes, n.attrs))
    except DagnetError as e:
        shapes = ", ".join(f"{s.name} {tuple(sh)}" for s, sh in zip(srcs, in_shapes))
        raise type(e)(f"{n.name} ({n.op}, inputs {shapes}): {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        # attrs an op without declarations cannot use (your own op given the wrong types)
        raise AttrError(f"{n.name} ({n.op}): cannot use its attrs {n.attrs} with input shapes "
                        f"{[tuple(s) for s in in_shapes]} ({type(e).__name__}: {e}); check the "
                        f"attr names and types") from None
    check_size(n.name, "output", out)
    return out


def check_node_attrs(n: Node, op=None) -> None:
    """AttrError for an attr the op does not declare or a value its declaration refuses."""
    op = op or get_op(n.op, n.name)
    if op.attributes is None:
        return
    for key, value in n.attrs.items():
        a = op.attr(key)
        if a is None or not a.node or a.name != key:
            raise AttrError(f"{n.name} ({n.op}): {unknown_attr(op, key)}")
        problem = a.problem(value)
        if problem:
            raise AttrError(f"{n.name} ({n.op}): {key} {problem}")


def unknown_attr(op, key: str) -> str:
    """Why `key` is no attr of op's nodes, and what would be."""
    a = op.attr(key)
    known = [x.name for x in op.attributes if x.node]
    if a is not None and not a.node:
        return (f"'{key}' is a builder argument: it sets the shape or initializer of the "
                f"params g.{op.name}() makes and is not stored on a node")
    if a is not None:
        return f"attr '{key}' is spelled '{a.name}' on a node"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (f"no attr '{key}'{hint} ({op.name} takes "
            f"{', '.join(known) if known else 'no attrs'})")


def check_leaf_attrs(owner: str, kind: str, attrs: dict) -> dict:
    """The attrs of an input or param node checked against their declarations: GraphError for
    a missing or unknown key, ShapeError for a bad shape, AttrError for another bad value.
    Returns them as stored (shapes as lists of ints, dtypes as names); None values are absent."""
    decls = {a.name: a for a in LEAF_ATTRS[kind]}
    for key in attrs:
        if key not in decls:
            raise GraphError(f"{owner}: an {kind} node has no attr '{key}' (its attrs: "
                             f"{', '.join(decls)})")
    out = {}
    for a in decls.values():
        v = attrs.get(a.name)
        if v is None:
            if a.required:
                raise GraphError(f"{owner}: {kind} node needs a '{a.name}' ({a.doc})")
            continue
        problem = a.problem(v)
        if problem:
            error = ShapeError if a.kind == "dims" else AttrError
            raise error(f"{owner} ({kind}): {a.name} {problem}")
        v = a.read(v)
        out[a.name] = list(v) if isinstance(v, tuple) else v
    check_size(owner, kind, out["shape"])
    problem = param_problem(out) if kind == PARAM else None
    if problem:
        raise GraphError(f"{owner}: {problem}")
    return out


def _check_port(n: Node, op, port: int, src: Node) -> None:
    """ShapeError when a param feeds a data port (or the reverse), DTypeError when an integer
    input feeds a float port or a float value feeds a loss's labels: found when the graph is
    built or compiled, not in the first batch."""
    pname = op.input_names[min(port, len(op.input_names) - 1)]
    want = port in op.batched_inputs
    if is_batched(src) != want:
        what = "a batched value (an input or an op output)" if want else "a param"
        raise ShapeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') must be {what}, "
                         f"but '{src.name}' is {'batched' if is_batched(src) else 'a param'}")
    labels = (op.differentiable_inputs is not None and port not in op.differentiable_inputs
              and want)
    is_int = src.op == INPUT and np.dtype(src.attrs["dtype"]).kind in "iu"
    if is_int and not labels:
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') needs floats, but "
                         f"'{src.name}' is an {src.attrs['dtype']} input; only a loss's labels "
                         f"are integers: declare '{src.name}' with dtype float32")
    if labels and not is_int:
        what = f"a {src.attrs['dtype']} input" if src.op == INPUT else "an op output (floats)"
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') takes integer class "
                         f"indices, but '{src.name}' is {what}; feed it from an input declared "
                         f"with dtype int64")


def check_size(owner: str, what: str, shape) -> None:
    """ShapeError if a shape holds more than MAX_ELEMENTS values (per example for values)."""
    try:
        count = math.prod(int(d) for d in shape)
    except (TypeError, ValueError):
        return  # not a shape of integers: the caller's own checks report it
    if count > MAX_ELEMENTS:
        raise ShapeError(f"{owner}: {what} shape {tuple(shape)} holds {count:.3g} values"
                         f"{' per example' if what != 'param' else ''}, more than any machine "
                         f"can hold (limit {MAX_ELEMENTS:.3g}); check the sizes, strides and pads")
