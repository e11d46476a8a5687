"""Checking one node and inferring its shape: the one place both happen. The builder
(dagnet.graph) runs them as each node is made, the compiler's validate and shapes passes over
a whole graph; all four check against the declarations of the node's op (dagnet.ops.declare)
or of input, param and constant nodes (dagnet.ir.LEAF_ATTRS).

A value is batched (a batch of examples: its shape is per example, the batch axis N not
written) or not (params, constants, unbatched inputs, losses, and what ops make of those only:
its shape is the full shape). An op with `full_shapes` sees every input's full shape, the batch
axis as None ((None, 3, 4) for a batch of 3x4 examples), and says by a leading None whether
its output is batched; other ops see per-example shapes of batched inputs and full shapes of
the others, and their output is batched when an input is (a loss's never).
"""
from __future__ import annotations

import math

import numpy as np

from dagnet.errors import AttrError, DagnetError, DTypeError, GraphError, ShapeError, did_you_mean
from dagnet.init import param_problem
from dagnet.ir import CONSTANT, INPUT, LEAF_ATTRS, LEAVES, PARAM, Node
from dagnet.ops.declare import tensor_array
from dagnet.ops import get_op

#: Most values one example (or one param) may hold: 2**40 float32s are 4 TiB. Beyond it a size
#: is a typo, and checking here keeps every later product of sizes inside int64.
MAX_ELEMENTS = 2 ** 40


def is_batched(n: Node) -> bool:
    """Whether node n's value has a leading batch dimension: meta["batched"] once its shape is
    inferred; before, an input's declaration (params and constants never; a loss never)."""
    if "batched" in n.meta:
        return n.meta["batched"]
    if n.op in LEAVES:
        return n.op == INPUT and n.attrs.get("batched", True)
    return get_op(n.op, n.name).kind != "loss"


def full_shape(shape, batched: bool, batch=None) -> tuple:
    """A value's full shape: (batch, *shape) when batched (batch None: unknown), else shape."""
    return (batch, *shape) if batched else tuple(shape)


def shape_text(shape, batched: bool) -> str:
    """(3, 4) of a batched value -> '(N, 3, 4)'; of an unbatched one -> '(3, 4)'."""
    dims = ["N", *map(str, shape)] if batched else [str(d) for d in shape]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def leaf_shape(n: Node) -> tuple:
    """The shape of an input, param or constant node (a constant's from its value)."""
    if n.op == CONSTANT:
        return constant_shape(n.attrs)
    return tuple(n.attrs["shape"])


def constant_shape(attrs: dict) -> tuple:
    """The shape of a constant node's value: its `shape` when given, else the value's own."""
    if attrs.get("shape") is not None:
        return tuple(int(d) for d in attrs["shape"])
    return tuple(np.shape(attrs["value"]))


def constant_array(attrs: dict, float_dtype) -> np.ndarray:
    """A constant node's value as a read-only array: float ones in `float_dtype` (the plan's),
    integer ones int64; a single number fills `shape`."""
    dtype = np.int64 if np.dtype(attrs.get("dtype", "float32")).kind in "iu" else float_dtype
    a = np.asarray(attrs["value"], dtype=dtype)
    if attrs.get("shape") is not None:
        a = np.full(tuple(attrs["shape"]), a, dtype=dtype)
    a.setflags(write=False)  # shared by every run: no op may write into it
    return a


def op_shapes(op, srcs: list[Node], n: Node) -> tuple[list, tuple]:
    """(input shapes, output shape) of inferred node n as its op's flops and workspace take
    them: per example (batched values without the batch axis) for most ops; full shapes with
    the batch axis as 1 for ops with `full_shapes`, so their counts are per example too."""
    if not getattr(op, "full_shapes", False):
        return [s.meta["shape"] for s in srcs], n.meta["shape"]
    return ([full_shape(s.meta["shape"], s.meta["batched"], 1) for s in srcs],
            full_shape(n.meta["shape"], n.meta["batched"], 1))


def infer_node(n: Node, srcs: list[Node], in_shapes: list) -> tuple:
    """(output shape, batched) of op node n from its input nodes and their shapes (per example
    for batched inputs): the inputs' kinds (batched or not, integer or float) and the attrs are
    checked against the op's declarations first. Every error names the node and the op."""
    op = get_op(n.op, n.name)
    for port, src in enumerate(srcs):
        _check_port(n, op, port, src)
    check_node_attrs(n, op)
    batched = [is_batched(s) for s in srcs]
    full = getattr(op, "full_shapes", False)
    given = [full_shape(s, b) if full else tuple(s) for s, b in zip(in_shapes, batched)]
    try:
        out = tuple(op.infer_shape(given, n.attrs))
    except DagnetError as e:
        shapes = ", ".join(f"{s.name} {shape_text(sh, b) if full else tuple(sh)}"
                           for s, sh, b in zip(srcs, in_shapes, batched))
        raise type(e)(f"{n.name} ({n.op}, inputs {shapes}): {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        # attrs an op without declarations cannot use (your own op given the wrong types)
        raise AttrError(f"{n.name} ({n.op}): cannot use its attrs {n.attrs} with input shapes "
                        f"{[tuple(s) for s in in_shapes]} ({type(e).__name__}: {e}); check the "
                        f"attr names and types") from None
    if full:
        out_batched = bool(out) and out[0] is None
        if any(d is None for d in out[out_batched:]):
            raise ShapeError(f"{n.name} ({n.op}): its output {out} would carry the batch axis "
                             f"at position {out.index(None, out_batched)}; the batch axis stays "
                             f"the leading one")
        out = out[out_batched:]
    else:
        out_batched = op.kind != "loss" and (any(batched) or not srcs)
    check_size(n.name, "output", out)
    return out, out_batched


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
    return (f"no attr '{key}'{did_you_mean(key, known)} ({op.name} takes "
            f"{', '.join(known) if known else 'no attrs'})")


def check_leaf_attrs(owner: str, kind: str, attrs: dict) -> dict:
    """The attrs of an input, param or constant node checked against their declarations:
    GraphError for a missing or unknown key, ShapeError for a bad shape, AttrError for another
    bad value. Returns them as stored (shapes as lists of ints, dtypes as names, a constant's
    value as plain numbers); None values are absent."""
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
    if kind == CONSTANT:
        _check_constant(owner, out)
    check_size(owner, kind, leaf_shape(Node(owner, kind, out)))
    problem = param_problem(out) if kind == PARAM else None
    if problem:
        raise GraphError(f"{owner}: {problem}")
    return out


def _check_constant(owner: str, attrs: dict) -> None:
    """A constant's value as plain numbers; AttrError for a `shape` given with nested lists, or
    a float value declared int64."""
    a = tensor_array(attrs["value"])
    if attrs.get("shape") is not None and a.ndim:
        raise AttrError(f"{owner} (constant): shape {attrs['shape']} is for a single number to "
                        f"fill; a value of nested lists has its own shape {a.shape}: drop shape")
    if np.dtype(attrs.get("dtype", "float32")).kind in "iu" and a.dtype.kind == "f" \
            and not np.array_equal(a, np.round(a)):
        raise AttrError(f"{owner} (constant): dtype {attrs['dtype']} needs whole numbers, the "
                        f"value holds fractions; give dtype float32")
    attrs["value"] = a.tolist()


def holds_ints(n: Node) -> bool:
    """Whether node n's value holds integers (an integer input or constant, or an op that
    makes indices)."""
    if n.op in (INPUT, CONSTANT):
        return np.dtype(n.attrs.get("dtype", "float32")).kind in "iu"
    if n.op == PARAM:
        return False
    return getattr(get_op(n.op, n.name), "output_dtype", "float") == "int64"


def _check_port(n: Node, op, port: int, src: Node) -> None:
    """ShapeError when a param feeds a data port (or the reverse), DTypeError when an integer
    value feeds a float port or a float value an integer port (labels, indices): found when the
    graph is built or compiled, not in the first batch."""
    pname = op.input_names[min(port, len(op.input_names) - 1)]
    want = port in op.batched_inputs
    if not op.takes_either(port) and is_batched(src) != want:
        what = "a batched value (an input or an op output)" if want else "a param"
        have = "batched" if is_batched(src) else {PARAM: "a param", CONSTANT: "a constant"}.get(
            src.op, "a value without the batch axis")
        raise ShapeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') must be {what}, "
                         f"but '{src.name}' is {have}")
    ints, is_int = op.takes_ints(port), holds_ints(src)
    if is_int and not ints:
        what = f"an {src.attrs['dtype']} input" if src.op == INPUT else "integer indices"
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') needs floats, but "
                         f"'{src.name}' is {what}; only index ports (a loss's labels, indices) "
                         f"take integers: declare '{src.name}' with dtype float32")
    if ints and not is_int:
        what = f"a {src.attrs['dtype']} input" if src.op == INPUT else "an op output (floats)"
        raise DTypeError(f"{n.name}: op '{n.op}' input {port} ('{pname}') takes integer "
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
