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


def softmax(w, n) -> None:
    w.add("Softmax", n.inputs, n.name, axis=1)


def same_attrs(onnx_op: str):
    """An op whose ONNX twin has the same attributes under the same names (the activations)."""
    def export(w, n) -> None:
        w.add(onnx_op, n.inputs, n.name, **attrs(n))
    return export
