"""The tensor-math ops both ways (rows under `# -- tensor math` in mapping.py): elementwise and
broadcasting ops, comparisons and Where (ONNX's bool values are dagnet's 0.0/1.0 masks, so a
comparison is written with a Cast to float and Where reads its condition through a Cast to
bool), Clip, MatMul and Gemm beyond what affine takes, Einsum, the reductions and ArgMax.

Import reads an initializer or Constant used as data as a constant node (never trained); the
weights of MatMul and Gemm stay params, as importers.py makes them.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import build
from dagnet.infer import holds_ints
from dagnet.onnx.common import OnnxError, f32, onnx_attrs, where
from dagnet.onnx.exporters import attrs as declared
from dagnet.ops import get_op

#: ONNX elementwise op <-> dagnet op, no attributes on either side
UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Abs": "abs",
         "Neg": "neg", "Sin": "sin", "Cos": "cos", "Erf": "erf", "Sign": "sign"}
BINARY = {"Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}
COMPARE = {"Equal": "equal", "Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
           "GreaterOrEqual": "greater_equal"}
EXTREMA = {"Max": "maximum", "Min": "minimum"}
REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
          "ReduceProd": "prod", "ReduceL2": "l2"}
#: the first opset whose reduction takes its axes as an input rather than an attribute
AXES_INPUT = {"ReduceSum": 13}
_BOOL, _FLOATS = 9, (1, 10, 11, 16)  # TensorProto.BOOL; FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _elem(w) -> int:
    return w.onnx.helper.np_dtype_to_tensor_dtype(w.dtype)


# -- export ---------------------------------------------------------------------------------------
def compare(onnx_op: str):
    """A comparison: ONNX's bool result cast to the model's floats (dagnet's mask)."""
    def export(w, n) -> None:
        mask = w.add(onnx_op, n.inputs, f"{n.name}/bool")
        w.add("Cast", [mask], n.name, to=_elem(w))
    return export


def where_(w, n) -> None:
    cond = w.add("Cast", [n.inputs[0]], f"{n.name}/condition", to=_BOOL)
    w.add("Where", [cond, *n.inputs[1:]], n.name)


def clip(w, n) -> None:
    a = declared(n)
    limits = [w.initializer(f"{n.name}.{k}", a[k]) if a[k] is not None else "" for k in ("min", "max")]
    w.add("Clip", [n.inputs[0], *limits], n.name)


def reduce(onnx_op: str):
    def export(w, n) -> None:
        a = declared(n)
        inputs, extra = list(n.inputs), {}
        if a["axes"] is not None:
            if w.opset >= AXES_INPUT.get(onnx_op, 18):
                inputs.append(w.initializer(f"{n.name}.axes", list(a["axes"]), dtype=np.int64))
            else:
                extra["axes"] = list(a["axes"])
        w.add(onnx_op, inputs, n.name, keepdims=int(a["keepdims"]), **extra)
    return export


def argmax(w, n) -> None:
    a = declared(n)
    w.add("ArgMax", n.inputs, n.name, axis=a["axis"], keepdims=int(a["keepdims"]))


def einsum(w, n) -> None:
    w.add("Einsum", n.inputs, n.name, equation=declared(n)["equation"])


# -- import ---------------------------------------------------------------------------------------
def _build(r, node, op_name: str, inputs, **attrs):
    r.bind(node, build(r.g, get_op(op_name), tuple(inputs), {**attrs, "name": r.out_name(node)}))


def operands(op_name: str):
    """An ONNX op whose inputs are the dagnet op's operands, no attributes."""
    def imp(r, node, a: dict) -> None:
        _build(r, node, op_name, [r.operand(node, i) for i in range(len(node.input))])
    return imp


def comparison(op_name: str):
    """A comparison, and the Cast to float right after it (how export writes one) as the same
    node, named after the Cast: both ONNX values are dagnet's mask."""
    def imp(r, node, a: dict) -> None:
        cast_ = r.sole_user(node.output[0])
        last = node
        if cast_ is not None and cast_.op_type == "Cast" and \
                int(onnx_attrs(r.onnx, cast_).get("to", 0)) in _FLOATS:
            r.absorbed.add(id(cast_))
            last = cast_
        mask = build(r.g, get_op(op_name), (r.operand(node, 0), r.operand(node, 1)),
                     {"name": r.out_name(last)})
        r.bind(node, mask)
        r.bind(last, mask)
    return imp


def extremum(op_name: str):
    """Max/Min of one or more values: dagnet's maximum/minimum, pairwise."""
    def imp(r, node, a: dict) -> None:
        xs = [r.operand(node, i) for i in range(len(node.input))]
        if len(xs) == 1:
            r.alias(node, node.input[0])
            return
        h = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            last = i == len(xs) - 1
            name = r.out_name(node) if last else r.fresh(f"{node.output[0]}/{i}")
            h = build(r.g, get_op(op_name), (h, x), {"name": name}).name
        r.values[node.output[0]] = h
    return imp


def cast(r, node, a: dict) -> None:
    """Cast between dagnet's kinds of value: to a float type (the plan's floats) and to bool
    (a 0.0/1.0 mask: a comparison is one already; another value becomes |x| > 0)."""
    to, src = int(a["to"]), node.input[0]
    if src in r.consts:
        r.consts[node.output[0]] = np.asarray(r.consts[src]).astype(
            r.onnx.helper.tensor_dtype_to_np_dtype(to))
        return
    x = r.tensor(node)
    if holds_ints(r.g.node(x)):
        raise OnnxError(f"{where(node)}: casts integers; dagnet keeps indices as int64 and "
                        f"converts them to nothing else")
    if to in _FLOATS or (to == _BOOL and r.g.node(x).op in COMPARE.values()):
        r.alias(node, src)
    elif to == _BOOL:
        mask = r.g.greater(r.g.abs(x, name=r.fresh(f"{node.output[0]}/abs")), 0.0,
                           name=r.out_name(node))
        r.bind(node, mask)
    else:
        raise OnnxError(f"{where(node)}: Cast to type {to}: dagnet imports casts to floats and to "
                        f"bool (a 0.0/1.0 mask) only")


def clip_(r, node, a: dict) -> None:
    limits = {}
    for i, key in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            limits[key] = f32(np.asarray(r.const(node, i, key)).item())
        elif key in a:  # opset < 11: attributes
            limits[key] = f32(a[key])
    _build(r, node, "clip", [r.tensor(node)], **limits)


def reduce_(op_name: str):
    def imp(r, node, a: dict) -> None:
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = r.const(node, 1, "axes").tolist()
        if axes is not None and len(axes) == 0:
            axes = None
        if axes is None and a.get("noop_with_empty_axes", 0):
            r.alias(node, node.input[0])
            return
        keep = bool(a.get("keepdims", 1))
        _build(r, node, op_name, [r.tensor(node)], keepdims=keep,
               **({} if axes is None else {"axes": [int(x) for x in axes]}))
    return imp


def argmax_(r, node, a: dict) -> None:
    if a.get("select_last_index", 0):
        raise OnnxError(f"{where(node)}: select_last_index=1; dagnet's argmax takes the first "
                        f"maximum")
    _build(r, node, "argmax", [r.tensor(node)], axis=int(a.get("axis", 0)),
           keepdims=bool(a.get("keepdims", 1)))


def einsum_(r, node, a: dict) -> None:
    _build(r, node, "einsum", [r.operand(node, i) for i in range(len(node.input))],
           equation=a["equation"])


def matmul(r, node, a: dict) -> None:
    """MatMul of any operands: an initializer operand is a weight (a param)."""
    xs = [r.param(node.input[i], r.consts[node.input[i]], "weight") if node.input[i] in r.consts
          else r.tensor(node, i) for i in range(2)]
    _build(r, node, "matmul", xs)


def gemm(r, node, a: dict) -> None:
    """alpha * op(A) @ op(B) + beta * C, as matmul, mul and add (the cases affine does not
    take: transA, a computed B, an unbatched A): a transposed initializer is stored transposed,
    a transposed computed value goes through einsum. The last node takes the output's name."""
    out = node.output[0]
    alpha, beta = f32(a.get("alpha", 1.0)), f32(a.get("beta", 1.0))
    has_c = len(node.input) > 2 and bool(node.input[2])
    last = "add" if has_c else "mul" if alpha != 1 else "matmul"

    def name(step):
        return r.out_name(node) if step == last else r.fresh(f"{out}/{step}")

    def operand(i, trans):
        if node.input[i] in r.consts:
            c = np.asarray(r.consts[node.input[i]])
            return r.param(node.input[i], c.T if trans else c, "weight")
        x = r.tensor(node, i)
        if trans and r.g.batched(x):
            raise OnnxError(f"{where(node)}: trans{'AB'[i]}=1 transposes the batch axis of "
                            f"'{node.input[i]}' into its features; dagnet keeps the batch axis "
                            f"leading (load it with unbatched=['{node.input[i]}'] if it has none)")
        return r.g.einsum(x, equation="ij->ji", name=r.fresh(f"{out}/{'AB'[i]}T")).name if trans else x

    h = r.g.matmul(operand(0, a.get("transA", 0)), operand(1, a.get("transB", 0)), name=name("matmul"))
    if alpha != 1:
        h = r.g.mul(h, alpha, name=name("mul"))
    if has_c:
        c = node.input[2]
        if c in r.consts:
            bias = r.param(c, np.asarray(r.consts[c]) * beta, "bias")
        else:
            bias = r.tensor(node, 2)
            if beta != 1:
                bias = r.g.mul(bias, beta, name=r.fresh(f"{out}/beta")).name
        h = r.g.add(h, bias, name=name("add"))
    r.bind(node, h)
