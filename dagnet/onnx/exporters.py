"""How each dagnet op is written as ONNX nodes (the export side of the mapping table in
mapping.py). Each takes the Writer of the export and the dagnet node; the attrs come from the
op's declarations (read_attrs: defaults filled in, pairs as (h, w)), never from literals here.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops import get_op


def attrs(n) -> dict:
    """The node's attrs, checked and with their declared defaults."""
    return get_op(n.op, n.name).read_attrs(n.attrs)


def _strides_pads(a: dict) -> dict:
    return {"strides": list(a["stride"]), "pads": [*a["pad"], *a["pad"]]}


def conv(w, n) -> None:
    kernel = list(w.shape(n.inputs[1])[2:])
    w.add("Conv", n.inputs, n.name, kernel_shape=kernel, **_strides_pads(attrs(n)))


def pool(onnx_op: str, **extra):
    def export(w, n) -> None:
        a = attrs(n)
        w.add(onnx_op, n.inputs, n.name, kernel_shape=list(a["size"]), **_strides_pads(a),
              **extra)
    return export


def global_avg_pool(w, n) -> None:
    # ONNX keeps the (1, 1) plane; a Flatten named after the node gives dagnet's (N, C)
    pooled = w.add("GlobalAveragePool", n.inputs, f"{n.name}/pool")
    w.add("Flatten", [pooled], n.name, axis=1)


def affine(w, n) -> None:
    x, weight, bias = n.inputs
    if len(w.shape(x)) > 1:
        x = w.add("Flatten", [x], f"{n.name}/flatten", axis=1)
    w.add("Gemm", [x, weight, bias], n.name, transB=0)


def batchnorm(w, n) -> None:
    a = attrs(n)
    st = w.state.get(n.name) or get_op("batchnorm").init_state([w.shape(n.inputs[0])], n.attrs,
                                                               w.dtype)
    stats = [w.initializer(f"{n.name}.{k}", st[k]) for k in ("running_mean", "running_var")]
    w.add("BatchNormalization", [*n.inputs, *stats], n.name, epsilon=a["eps"],
          momentum=a["momentum"])


def dropout(w, n) -> None:
    ratio = w.initializer(f"{n.name}.ratio", attrs(n)["p"])
    w.add("Dropout", [n.inputs[0], ratio], n.name)


def flatten(w, n) -> None:
    w.add("Flatten", n.inputs, n.name, axis=1)


def reshape(w, n) -> None:
    # -1 for the batch and the resolved per-example shape: fully static but for N
    shape = w.initializer(f"{n.name}.shape", [-1, *w.shape(n.name)], dtype=np.int64)
    w.add("Reshape", [n.inputs[0], shape], n.name)


def add(w, n) -> None:
    w.add("Add" if len(n.inputs) == 2 else "Sum", n.inputs, n.name)


def concat(w, n) -> None:
    w.add("Concat", n.inputs, n.name, axis=attrs(n)["axis"])


def softmax(onnx_op: str):
    """Softmax / LogSoftmax over the op's axis (opset 13's one-axis semantics)."""
    def export(w, n) -> None:
        w.add(onnx_op, n.inputs, n.name, axis=attrs(n)["axis"])
    return export


def same_attrs(onnx_op: str, since: int = 1, older=None):
    """An op whose ONNX twin has the same attributes under the same names (the activations);
    ONNX added it in opset `since`: for an older opset, `older(w, n)` writes its
    decomposition."""
    def export(w, n) -> None:
        if w.opset < since:
            older(w, n)
        else:
            w.add(onnx_op, n.inputs, n.name, **attrs(n))
    return export


# -- decompositions for opsets older than the op ------------------------------------------------
def _const(w, n, what: str, value) -> str:
    return w.initializer(f"{n.name}.{what}", value)


def gelu_before_20(w, n) -> None:
    """x * (1 + erf(x / sqrt 2)) / 2, or the tanh form, as torch writes them before Gelu."""
    x = n.inputs[0]
    if attrs(n)["approximate"] == "tanh":
        cube = w.add("Mul", [x, w.add("Mul", [x, x], f"{n.name}/x2")], f"{n.name}/x3")
        inner = w.add("Add", [x, w.add("Mul", [cube, _const(w, n, "k", 0.044715)],
                                       f"{n.name}/kx3")], f"{n.name}/poly")
        u = w.add("Mul", [inner, _const(w, n, "c", np.sqrt(2 / np.pi))], f"{n.name}/u")
        s = w.add("Tanh", [u], f"{n.name}/tanh")
    else:
        s = w.add("Erf", [w.add("Div", [x, _const(w, n, "sqrt2", np.sqrt(2))], f"{n.name}/div")],
                  f"{n.name}/erf")
    one_plus = w.add("Add", [s, _const(w, n, "one", 1.0)], f"{n.name}/add")
    half = w.add("Mul", [x, _const(w, n, "half", 0.5)], f"{n.name}/half")
    w.add("Mul", [half, one_plus], n.name)


def mish_before_18(w, n) -> None:
    """x * tanh(softplus(x))."""
    x = n.inputs[0]
    t = w.add("Tanh", [w.add("Softplus", [x], f"{n.name}/softplus")], f"{n.name}/tanh")
    w.add("Mul", [x, t], n.name)


def hardswish_before_14(w, n) -> None:
    """x * HardSigmoid(x) with alpha 1/6, beta 1/2."""
    x = n.inputs[0]
    w.add("Mul", [x, w.add("HardSigmoid", [x], f"{n.name}/hardsigmoid", alpha=1 / 6, beta=0.5)],
          n.name)
