"""How ONNX nodes become dagnet nodes (the import side of the mapping table in mapping.py).

Each takes the Reader of the import, the ONNX node and its attributes, and builds through the
builder (r.g.conv2d(...), ...), so the op's declared checks apply to what the model holds; what
dagnet cannot express (a transposed A in Gemm, a computed weight, ...) is an OnnxError
naming the node and the fix. The window ops (Conv, pools, Resize, ...) are in
importers_window.py. Some nodes merge or vanish: MatMul + Add of a bias is one affine,
GlobalAveragePool + Flatten one global_avg_pool, a Flatten that only feeds Gemms is skipped
(affine flattens each example itself), Identity and Constant only rename values. What the
layer ops do not take (a MatMul of any operands, a Gemm with transA, a ReduceMean over other
axes, an Add of a constant) goes to the tensor-math ops (tensor_math.py).
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import build
from dagnet.onnx import fold
from dagnet.onnx import tensor_math as tm
from dagnet.onnx.common import OnnxError, f32, onnx_attrs, where
from dagnet.ops import get_op


def extra_outputs_unused(r, node) -> None:
    """dagnet ops have one output: MaxPool's indices, Dropout's mask etc. must be unused."""
    for out in node.output[1:]:
        if out and (out in r.users or out in r.graph_outputs):
            raise OnnxError(f"{where(node)}: its output '{out}' is used, but dagnet's op "
                            f"computes only the first output")


def zeros_bias(r, node, m: int) -> str:
    return r.param(f"{node.output[0]}.b", np.zeros(m), "bias")


def _bias_vector(node, c, m: int):
    """A Gemm/Add bias broadcast along the batch: shape (), (M,) or (1, M) -> (M,)."""
    try:
        return np.broadcast_to(c, (1, m)).reshape(m)
    except ValueError:
        raise OnnxError(f"{where(node)}: bias of shape {c.shape} does not broadcast to one "
                        f"value per output ({m},); give it shape ({m},)") from None

def global_pool(r, node, keepdims: bool = True, op: str = "global_avg_pool") -> None:
    """global_avg_pool or global_max_pool; a Flatten that is its only reader joins it and
    names it (the pair export writes), else ONNX's (N, C, 1, 1) is kept as a view."""
    x = r.tensor(node)
    build_pool = getattr(r.g, op)
    flat = r.sole_user(node.output[0]) if keepdims else None
    if flat is not None and flat.op_type == "Flatten" and onnx_attrs(r.onnx, flat).get("axis", 1) == 1:
        r.absorbed.add(id(flat))
        r.bind(flat, build_pool(x, name=r.out_name(flat)))
        return
    n = build_pool(x, name=r.out_name(node))
    r.bind(node, n, view=(r.g.shape_of(n)[0], 1, 1) if keepdims else None)


def reduce_mean(r, node, a: dict) -> None:
    """ReduceMean over (H, W) of an (N, C, H, W) value: global_avg_pool (torch's dynamo export);
    over other axes, dagnet's mean."""
    rank = len(r.shape(node.input[0])) + 1
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:  # opset 18 moved axes to an input
        axes = r.const(node, 1, "axes").tolist()
    if rank != 4 or axes is None or sorted(int(x) % 4 for x in axes) != [2, 3]:
        tm.reduce_("mean")(r, node, a)  # any other axes: the mean reduction
        return
    global_pool(r, node, bool(a.get("keepdims", 1)))


def _reshape_to(r, node, target: tuple) -> None:
    """node reshapes each example to `target`: a flatten/reshape node, or no node when dagnet's
    value has that shape already or only Gemm/MatMul read it (affine flattens itself)."""
    x = r.tensor(node, exact=False)
    out = node.output[0]
    users = r.users.get(out, [])
    skip = out not in r.graph_outputs and (
        tuple(r.g.shape_of(x)) == target or len(target) == 1 and users and all(
            u.op_type in ("Gemm", "MatMul") for u in users))
    if skip:
        r.values[out] = x
        if tuple(r.g.shape_of(x)) != target:
            r.views[out] = target
    elif len(target) == 1:
        r.bind(node, r.g.flatten(x, name=r.out_name(node)))
    else:
        r.bind(node, r.g.reshape(x, target, name=r.out_name(node)))


def flatten(r, node, a: dict) -> None:
    shape = r.shape(node.input[0])
    axis = int(a.get("axis", 1))
    if axis % (len(shape) + 1) != 1:
        raise OnnxError(f"{where(node)}: axis={axis} mixes the batch with other dimensions; "
                        f"dagnet flattens each example (axis=1)")
    _reshape_to(r, node, (int(np.prod(shape, dtype=np.int64)),))


def reshape(r, node, a: dict) -> None:
    shape = r.shape(node.input[0])
    given = fold.batch_shape(r, node, 1, "shape")  # None: the batch, from a folded Shape
    target = list(given)
    if not a.get("allowzero", 0):  # 0 copies the input's dimension; the batch stays symbolic
        full = [None, *shape]
        target = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(target)]
    if target[:1] == [1] and r.batch_of_one:
        target[0] = None
        r.notes.append(f"{where(node)}: the leading 1 of its target shape {given} is read as "
                       f"the batch (the model's inputs declare a batch of 1)")
    batch, rest = target[0], target[1:]
    if not rest or not (batch is None or batch == -1 and -1 not in rest) or 0 in rest:
        shown = ["N" if d is None else d for d in given]
        raise OnnxError(f"{where(node)}: target shape {shown} must "
                        f"keep the batch: 0 or -1 first, and positive sizes (at most one -1) after")
    size = int(np.prod(shape, dtype=np.int64))
    known = int(np.prod([d for d in rest if d != -1], dtype=np.int64))
    if -1 in rest:
        rest = [size // known if d == -1 else d for d in rest]
    if int(np.prod(rest, dtype=np.int64)) != size:
        raise OnnxError(f"{where(node)}: cannot reshape per-example shape {shape} ({size} "
                        f"values) to {rest}")
    _reshape_to(r, node, tuple(rest))


def gemm(r, node, a: dict) -> None:
    """Gemm of a batch A (N, D) and a weight initializer B: affine; any other: matmul, mul, add
    (tensor_math.gemm)."""
    weight = node.input[1] in r.consts and np.ndim(r.consts[node.input[1]]) == 2
    if a.get("transA", 0) or not weight or node.input[0] in r.consts or \
            not r.g.batched(r.values.get(node.input[0], node.input[0])):
        tm.gemm(r, node, a)
        return
    x = r.tensor(node, exact=False)
    b = r.const(node, 1, "weight")
    w = np.ascontiguousarray(b.T if a.get("transB", 0) else b)
    alpha, beta = f32(a.get("alpha", 1.0)), f32(a.get("beta", 1.0))
    w = w * alpha if alpha != 1 else w
    m = w.shape[1]
    if len(node.input) > 2 and node.input[2] in r.computed and node.input[2] not in r.consts:
        _gemm_plus_data(r, node, x, w, beta)
        return
    if len(node.input) > 2 and node.input[2]:
        c = _bias_vector(node, r.const(node, 2, "bias"), m)
        bias = r.param(node.input[2], c * beta if beta != 1 else c, "bias")
    else:
        bias = zeros_bias(r, node, m)
    r.bind(node, r.g.affine(x, m, name=r.out_name(node), w=r.param(node.input[1], w, "weight"),
                            b=bias))


def matmul(r, node, a: dict) -> None:
    """MatMul(X, W) of a batch X (N, D) and a weight initializer W (D, M), and the Add of a
    constant bias right after it, as one affine; any other MatMul as matmul."""
    x_name, w_name = node.input[0], node.input[1]
    if x_name in r.consts or w_name not in r.consts or np.ndim(r.consts[w_name]) != 2 \
            or not r.g.batched(r.values[x_name]) or len(r.shape(x_name)) != 1:
        tm.matmul(r, node, a)
        return
    x = r.tensor(node, exact=False)
    w = r.const(node, 1, "weight")
    m = w.shape[1]
    add, last = r.sole_user(node.output[0]), node
    is_add = add is not None and add.op_type == "Add"
    consts = [v for v in add.input if v in r.consts] if is_add else []
    if consts:
        bias = r.param(consts[0], _bias_vector(add, r.consts[consts[0]], m), "bias")
        r.absorbed.add(id(add))
        last = add
    else:
        bias = zeros_bias(r, node, m)
    r.bind(last, r.g.affine(x, m, name=r.out_name(last), w=r.param(node.input[1], w, "weight"),
                            b=bias))


def batchnorm(r, node, a: dict) -> None:
    x = r.tensor(node)
    if a.get("training_mode", 0):
        raise OnnxError(f"{where(node)}: training_mode=1; export the model in eval mode "
                        f"(dagnet picks the mode when it runs the graph)")
    extra_outputs_unused(r, node)
    scale, bias, mean, var = (r.const(node, i, what) for i, what in
                              enumerate(("scale", "bias", "mean", "var"), start=1))
    shape = r.shape(node.input[0])
    x = _as_channels_hw(r, node, x, shape)
    n = r.g.batchnorm(x, eps=f32(a.get("epsilon", 1e-5)), momentum=f32(a.get("momentum", 0.9)),
                      name=r.out_name(node), gamma=r.param(node.input[1], scale, "gamma"),
                      beta=r.param(node.input[2], bias, "beta"))
    r.state[n.name] = {"running_mean": np.array(mean, dtype=r.dtype),
                       "running_var": np.array(var, dtype=r.dtype)}
    r.bind(node, n, view=shape)


def dropout(r, node, a: dict) -> None:
    x = r.tensor(node)
    extra_outputs_unused(r, node)
    # read even at ratio 0: a computed mode cannot be imported (dagnet picks the mode)
    training = len(node.input) > 2 and node.input[2] and r.const(node, 2, "training_mode")
    p = float(r.const(node, 1, "ratio", default=a.get("ratio", 0.5)))
    if training and p:
        raise OnnxError(f"{where(node)}: training_mode=1 (input '{node.input[2]}'); export the "
                        f"model in eval mode (dagnet picks the mode when it runs the graph)")
    r.bind(node, r.g.dropout(x, p=f32(p), name=r.out_name(node)))


def normalised(op: str):
    """Softmax / LogSoftmax: opset 13 normalises one axis (default -1); older opsets flatten
    the value from `axis` (default 1) on into one axis and normalise that: a reshape around the
    op unless axis is the last."""
    def imp(r, node, a: dict) -> None:
        shape = r.shape(node.input[0])
        rank = len(shape) + 1
        new = r.opset >= 13
        axis = int(a.get("axis", -1 if new else 1))
        full = axis % rank if -rank <= axis < rank else None
        if full is None or full == 0:
            raise OnnxError(f"{where(node)}: axis {axis} of a rank-{rank} value is "
                            f"{'the batch axis' if full == 0 else 'out of range'}; dagnet "
                            f"normalises within each example (axis 1..{rank - 1})")
        x, name = r.tensor(node), r.out_name(node)
        rest = int(np.prod(shape[full:], dtype=np.int64))
        if new or rest == 1:  # the axis as written (-1 stays -1: models round-trip)
            keep = axis if new else -1 if full == rank - 1 else full
            r.bind(node, getattr(r.g, op)(x, axis=keep, name=name))
            return
        flat = r.g.reshape(x, (*shape[:full - 1], shape[full - 1] * rest),
                           name=r.fresh(f"{name}/flatten"))
        y = getattr(r.g, op)(flat, axis=-1, name=r.fresh(f"{name}/{op}"))
        r.bind(node, r.g.reshape(y, shape, name=name))
    return imp


def add(r, node, a: dict) -> None:
    xs = [r.operand(node, i) for i in range(len(node.input))]
    if len(xs) == 1:
        r.alias(node, node.input[0])
        return
    r.bind(node, r.g.add(*xs, name=r.out_name(node)))


def concat(r, node, a: dict) -> None:
    rank = len(r.shape(node.input[0])) + 1
    if "axis" not in a:  # optional only before opset 4 (older models are converted to 7)
        raise OnnxError(f"{where(node)}: the axis attribute is missing (required from opset 4)")
    axis = int(a["axis"]) % rank
    if axis == 0:
        raise OnnxError(f"{where(node)}: concatenates along the batch axis; dagnet joins "
                        f"features (axis >= 1)")
    xs = [r.tensor(node, i) for i in range(len(node.input))]
    r.bind(node, r.g.concat(*xs, axis=axis, name=r.out_name(node)))


def constant(r, node, a: dict) -> None:
    """A Constant (or any node of constants) folds: load() sends every such node to fold.py."""
    fold.evaluate(r, node)


def prelu(r, node, a: dict) -> None:
    """PRelu with its slope initializer as the prelu's param, in ONNX's own layout (broadcast
    against one example, aligned to the right); leading 1s for the batch axis are dropped."""
    x = r.tensor(node)
    slope = np.asarray(r.const(node, 1, "slope"))
    rank = len(r.shape(node.input[0]))
    while slope.ndim > rank and slope.shape[0] == 1:
        slope = slope.reshape(slope.shape[1:])
    if slope.ndim > rank:
        raise OnnxError(f"{where(node)}: slope of shape {slope.shape} varies along the batch "
                        f"axis; dagnet's prelu takes one slope per channel or per position")
    slope = slope.reshape(slope.shape or (1,))
    r.bind(node, r.g.op("prelu", x, r.param(node.input[1], slope, "slope"),
                        name=r.out_name(node)))


def _number(v, decl):
    """An ONNX float attribute: the declared default when it is that default rounded to
    float32 (selu's alpha, 1/6 round-trip exactly), else its shortest float32 decimal."""
    d = decl.default
    if isinstance(d, float) and np.float32(v) == np.float32(d):
        return d
    return f32(v)


def same_attrs(op_name: str, **onnx_defaults):
    """An ONNX node whose attributes are the dagnet op's under the same names (the
    activations): each declared attr read from the node, else ONNX's default where it differs
    from dagnet's (`onnx_defaults`: hardsigmoid's alpha), else the declared default."""
    def imp(r, node, a: dict) -> None:
        op = get_op(op_name)
        a = {**onnx_defaults, **a}
        attrs = {d.name: _number(a[d.name], d) if d.kind == "number" else a[d.name]
                 for d in op.attributes if d.node and d.name in a}
        r.bind(node, build(r.g, op, (r.operand(node, 0),), {**attrs, "name": r.out_name(node)}))
    return imp


# -- conformance fixes: cases ONNX's conformance suite showed, imported with existing ops ------
def _as_channels_hw(r, node, x: str, shape: tuple) -> str:
    """x of per-example shape (C, L) or (C, D, H, W) as (C, L, 1) / (C, D*H, W), which
    dagnet's spatial batchnorm normalises per channel alike (BatchNorm1d/3d); the caller binds
    the result with view=shape. Other ranks pass unchanged."""
    if len(shape) == 2:
        to = (shape[0], shape[1], 1)
    elif len(shape) == 4:
        to = (shape[0], shape[1] * shape[2], shape[3])
    else:
        return x
    return r.g.reshape(x, to, name=r.fresh(f"{node.output[0]}/as_chw")).name


def _gemm_plus_data(r, node, x: str, w, beta: float) -> None:
    """Gemm whose C is computed by a node, of the output's shape (torch's addmm): affine, then
    add (a C that is a graph input stays a bias, read as a constant)."""
    c = r.tensor(node, 2)
    if beta != 1:
        raise OnnxError(f"{where(node)}: beta={beta} scales the computed C '{node.input[2]}'; "
                        f"dagnet adds a computed C only with beta=1")
    y = r.g.affine(x, w.shape[1], name=r.fresh(f"{node.output[0]}/gemm"),
                   w=r.param(node.input[1], w, "weight"), b=zeros_bias(r, node, w.shape[1]))
    if tuple(r.g.shape_of(c)) != tuple(r.g.shape_of(y)):
        raise OnnxError(f"{where(node)}: the computed C '{node.input[2]}' has per-example shape "
                        f"{tuple(r.g.shape_of(c))}; dagnet adds a computed C only of the "
                        f"output's shape {tuple(r.g.shape_of(y))}")
    r.bind(node, r.g.add(y, c, name=r.out_name(node)))
