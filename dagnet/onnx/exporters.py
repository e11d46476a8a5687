"""How each dagnet op is written as ONNX nodes (the export side of the mapping table in
mapping.py). Each takes the Writer of the export and the dagnet node; the attrs come from the
op's declarations (read_attrs: defaults filled in, pairs as (h, w)), never from literals here.
"""
from __future__ import annotations

import numpy as np

from dagnet.onnx.common import OnnxError
from dagnet.ops import get_op


def attrs(n) -> dict:
    """The node's attrs, checked and with their declared defaults."""
    return get_op(n.op, n.name).read_attrs(n.attrs)


def _ints(v) -> list:
    """A 1-D op's int or a 2-D op's pair as ONNX's list."""
    return [int(v)] if np.isscalar(v) else [int(x) for x in v]


def _window(a: dict, rank: int = 2) -> dict:
    """strides, pads (ONNX's begins-then-ends order, dagnet's too) and, when not all 1,
    dilations of a window op's read attrs."""
    out = {"strides": _ints(a["stride"]), "pads": list(a["pad"])}
    if _ints(a["dilation"]) != [1] * rank:
        out["dilations"] = _ints(a["dilation"])
    return out


def _needs_opset(w, n, opset: int, what: str) -> None:
    if w.opset < opset:
        raise OnnxError(f"{n.name}: {what} needs opset {opset} or newer; export with "
                        f"opset={opset} (this export writes {w.opset})")


def conv(w, n) -> None:
    a = attrs(n)
    kernel = list(w.shape(n.inputs[1])[2:])
    group = {"group": a["groups"]} if a["groups"] != 1 else {}
    w.add("Conv", n.inputs, n.name, kernel_shape=kernel, **_window(a, len(kernel)), **group)


def conv_transpose(w, n) -> None:
    a = attrs(n)
    extra = {"output_padding": list(a["output_padding"])} if any(a["output_padding"]) else {}
    group = {"group": a["groups"]} if a["groups"] != 1 else {}
    w.add("ConvTranspose", n.inputs, n.name, kernel_shape=list(w.shape(n.inputs[1])[2:]),
          **_window(a), **extra, **group)


def pool(onnx_op: str, rank: int = 2):
    def export(w, n) -> None:
        a = attrs(n)
        extra = {"ceil_mode": 1} if a["ceil_mode"] else {}
        window = _window(a, rank)
        if onnx_op == "AveragePool":
            extra["count_include_pad"] = int(a["count_include_pad"])
            if "dilations" in window:
                _needs_opset(w, n, 19, "AveragePool with dilations")
        kernel = _ints(a["size"])
        w.add(onnx_op, n.inputs, n.name, kernel_shape=kernel, **window, **extra)
    return export


def global_pool(onnx_op: str):
    def export(w, n) -> None:
        # ONNX keeps the (1, 1) plane; a Flatten named after the node gives dagnet's (N, C)
        pooled = w.add(onnx_op, n.inputs, f"{n.name}/pool")
        w.add("Flatten", [pooled], n.name, axis=1)
    return export


def resize(w, n) -> None:
    a = attrs(n)
    mode = {"nearest": "nearest", "bilinear": "linear"}[a["mode"]]
    kw = {"mode": mode, "coordinate_transformation_mode": a["coordinates"]}
    if mode == "nearest":
        kw["nearest_mode"] = a["nearest_mode"]
    if a["size"] is None:
        scales = w.initializer(f"{n.name}.scales", [1.0, 1.0, *a["scale"]], dtype=np.float32)
        w.add("Resize", [n.inputs[0], "", scales], n.name, **kw)
        return
    _needs_opset(w, n, 18, "resize with a size (Resize's sizes for axes (2, 3), the batch "
                 "left free); or give the resize a scale")
    sizes = w.initializer(f"{n.name}.sizes", list(a["size"]), dtype=np.int64)
    w.add("Resize", [n.inputs[0], "", "", sizes], n.name, axes=[2, 3], **kw)


def blocks(onnx_op: str):
    def export(w, n) -> None:
        a = attrs(n)
        if onnx_op == "DepthToSpace":
            w.add(onnx_op, n.inputs, n.name, blocksize=a["block"], mode=a["mode"])
        elif a["mode"] == "DCR":
            w.add(onnx_op, n.inputs, n.name, blocksize=a["block"])
        else:  # SpaceToDepth has no mode: PyTorch's pixel_unshuffle order as its reshapes
            _space_to_depth_crd(w, n, a["block"])
    return export


def _space_to_depth_crd(w, n, b: int) -> None:
    c, h, wd = w.shape(n.inputs[0])
    split = w.initializer(f"{n.name}.split", [-1, c, h // b, b, wd // b, b], dtype=np.int64)
    merged = w.initializer(f"{n.name}.merged", [-1, c * b * b, h // b, wd // b], dtype=np.int64)
    x = w.add("Reshape", [n.inputs[0], split], f"{n.name}/split")
    x = w.add("Transpose", [x], f"{n.name}/move", perm=[0, 1, 3, 5, 2, 4])
    w.add("Reshape", [x, merged], n.name)


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
