"""The axis ops both ways (rows under `# -- layout` in mapping.py): Transpose, Squeeze,
Unsqueeze and Expand (its shape an int64 input). Axes count over the full array on both sides (axis 0 of a batched value is its
batch axis); from opset 13 Squeeze and Unsqueeze take their axes as an int64 input, before as
an attribute.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import build
from dagnet.onnx.common import OnnxError, where
from dagnet.onnx.exporters import attrs as declared
from dagnet.ops import get_op

#: the first opset whose Squeeze/Unsqueeze take their axes as an input
AXES_INPUT = 13


# -- export ---------------------------------------------------------------------------------------
def transpose(w, n) -> None:
    perm = declared(n)["perm"]
    w.add("Transpose", n.inputs, n.name, **({} if perm is None else {"perm": list(perm)}))


def axes_op(onnx_op: str):
    """Squeeze or Unsqueeze: axes as an input (opset >= 13) or an attribute."""
    def export(w, n) -> None:
        axes = list(declared(n)["axes"])
        if w.opset >= AXES_INPUT:
            w.add(onnx_op, [*n.inputs, w.initializer(f"{n.name}.axes", axes, dtype=np.int64)], n.name)
        else:
            w.add(onnx_op, n.inputs, n.name, axes=axes)
    return export


def expand(w, n) -> None:
    shape = list(declared(n)["shape"])
    w.add("Expand", [*n.inputs, w.initializer(f"{n.name}.shape", shape, dtype=np.int64)], n.name)


# -- import ---------------------------------------------------------------------------------------
def _build(r, node, op_name: str, x, **attrs):
    r.bind(node, build(r.g, get_op(op_name), (x,), {**attrs, "name": r.out_name(node)}))


def _axes(r, node, a: dict):
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(node.input) > 1 and node.input[1]:
        return [int(v) for v in np.ravel(r.const(node, 1, "axes"))]
    return None


def transpose_(r, node, a: dict) -> None:
    perm = a.get("perm")
    _build(r, node, "transpose", r.tensor(node),
           **({} if perm is None else {"perm": [int(p) for p in perm]}))


def squeeze_(r, node, a: dict) -> None:
    x = r.tensor(node)
    axes = _axes(r, node, a)
    if axes is None:  # every size-1 axis the graph knows of (never the batch axis)
        batched = r.g.batched(x)
        full = ((None,) if batched else ()) + tuple(r.g.shape_of(x))
        axes = [i for i, d in enumerate(full) if d == 1]
    if not axes:
        r.alias(node, node.input[0])
        return
    _build(r, node, "squeeze", x, axes=axes)


def unsqueeze_(r, node, a: dict) -> None:
    axes = _axes(r, node, a)
    if not axes:
        raise OnnxError(f"{where(node)}: Unsqueeze without axes; ONNX requires them")
    _build(r, node, "unsqueeze", r.tensor(node), axes=axes)


def expand_(r, node, a: dict) -> None:
    shape = [int(v) for v in np.ravel(r.const(node, 1, "shape"))]
    _build(r, node, "expand", r.tensor(node), shape=shape)
