"""Export and import of the per-example normalisations and the embedding (rows of mapping.py):

    layer_norm     <-> LayerNormalization (opset 17)
    group_norm     <-> GroupNormalization (opset 21: scale and bias per channel); older opsets
                       write torch's decomposition (Reshape, InstanceNormalization, Reshape,
                       Mul, Add); opset 18-20's per-group scale and bias are read as well
    instance_norm  <-> InstanceNormalization
    embedding      <-> Gather of a 2-D initializer along axis 0 by integer ids
(lrn <-> LRN takes the same attributes under the same names: mapping.same.)
"""
from __future__ import annotations

import numpy as np

from dagnet.onnx.common import OnnxError, f32, where
from dagnet.onnx.exporters import attrs


# -- export ----------------------------------------------------------------------------------
def layer_norm(w, n) -> None:
    if w.opset < 17:
        raise OnnxError(f"node '{n.name}' (layer_norm): ONNX has LayerNormalization from opset 17;"
                        f" export with opset=17 or newer")
    a = attrs(n)
    w.add("LayerNormalization", n.inputs, n.name, axis=a["axis"], epsilon=a["eps"])


def instance_norm(w, n) -> None:
    w.add("InstanceNormalization", n.inputs, n.name, epsilon=attrs(n)["eps"])


def group_norm(w, n) -> None:
    a = attrs(n)
    if w.opset >= 21:
        w.add("GroupNormalization", n.inputs, n.name, num_groups=a["groups"], epsilon=a["eps"])
        return
    # torch's form before opset 18: normalise (N, G, -1) per row, then scale and shift per channel
    x, gamma, beta = n.inputs
    shape = w.shape(x)
    groups = a["groups"]
    rows = w.initializer(f"{n.name}.rows", [0, groups, -1], dtype=np.int64)
    ones = w.initializer(f"{n.name}.ones", np.ones(groups))
    zeros = w.initializer(f"{n.name}.zeros", np.zeros(groups))
    back = w.initializer(f"{n.name}.shape", [0, *shape], dtype=np.int64)
    per_channel = w.initializer(f"{n.name}.per_channel", [shape[0]] + [1] * (len(shape) - 1),
                                dtype=np.int64)
    r = w.add("Reshape", [x, rows], f"{n.name}/rows")
    s = w.add("InstanceNormalization", [r, ones, zeros], f"{n.name}/standardise",
              epsilon=a["eps"])
    s = w.add("Reshape", [s, back], f"{n.name}/back")
    g = w.add("Reshape", [gamma, per_channel], f"{n.name}/gamma")
    b = w.add("Reshape", [beta, per_channel], f"{n.name}/beta")
    w.add("Add", [w.add("Mul", [s, g], f"{n.name}/scale"), b], n.name)


def embedding(w, n) -> None:
    ids, table = n.inputs
    w.add("Gather", [table, ids], n.name, axis=0)


# -- import ----------------------------------------------------------------------------------
def _unused_extra_outputs(r, node) -> None:
    for out in node.output[1:]:
        if out and (out in r.users or out in r.graph_outputs):
            raise OnnxError(f"{where(node)}: its output '{out}' is used, but dagnet's op "
                            f"computes only the normalised value")


def _scale_bias(r, node, shape: tuple):
    """(gamma, beta) param names from the Scale and optional B inputs, shaped `shape`."""
    scale = np.asarray(r.const(node, 1, "scale"))
    bias = np.asarray(r.const(node, 2, "bias", default=np.zeros(shape)))
    for what, v in (("scale", scale), ("bias", bias)):
        try:
            np.broadcast_to(v, shape)
        except ValueError:
            raise OnnxError(f"{where(node)}: {what} of shape {v.shape} does not match the "
                            f"normalised shape {shape}") from None
    return (r.param(node.input[1], np.broadcast_to(scale, shape), "gamma"),
            r.param(node.input[2] if len(node.input) > 2 and node.input[2]
                    else f"{node.output[0]}.beta", np.broadcast_to(bias, shape), "beta"))


def load_layer_norm(r, node, a: dict) -> None:
    _unused_extra_outputs(r, node)
    x = r.tensor(node)
    shape = r.shape(node.input[0])
    axis = int(a.get("axis", -1))
    rank = len(shape) + 1
    if not -rank <= axis < rank or axis % rank == 0:
        raise OnnxError(f"{where(node)}: axis {axis} of a rank-{rank} value normalises over the "
                        f"batch or is out of range; dagnet normalises within each example")
    gamma, beta = _scale_bias(r, node, tuple(shape[axis % rank - 1:]))
    r.bind(node, r.g.layer_norm(x, axis=axis, eps=f32(a.get("epsilon", 1e-5)),
                                name=r.out_name(node), gamma=gamma, beta=beta))


def load_instance_norm(r, node, a: dict) -> None:
    x = r.tensor(node)
    c = r.shape(node.input[0])[0]
    gamma, beta = _scale_bias(r, node, (c,))
    r.bind(node, r.g.instance_norm(x, eps=f32(a.get("epsilon", 1e-5)), name=r.out_name(node),
                                   gamma=gamma, beta=beta))


def load_group_norm(r, node, a: dict) -> None:
    x = r.tensor(node)
    c, groups = r.shape(node.input[0])[0], int(a["num_groups"])
    scale, bias = (np.asarray(r.const(node, i, what)) for i, what in ((1, "scale"), (2, "bias")))
    if r.opset < 21 and scale.shape == (groups,) and c != groups:
        # opset 18-20: one scale and bias per group, the same for each of its channels
        scale, bias = (np.repeat(v, c // groups) for v in (scale, bias))
    if scale.shape != (c,) or bias.shape != (c,):
        raise OnnxError(f"{where(node)}: scale {scale.shape} and bias {bias.shape} must have "
                        f"one value per channel ({c},)")
    r.bind(node, r.g.group_norm(x, groups, eps=f32(a.get("epsilon", 1e-5)),
                                name=r.out_name(node),
                                gamma=r.param(node.input[1], scale, "gamma"),
                                beta=r.param(node.input[2], bias, "beta")))


def load_gather(r, node, a: dict) -> None:
    """A Gather from a 2-D initializer along axis 0 by computed ids: an embedding."""
    table = node.input[0]
    if table not in r.consts or np.ndim(r.consts[table]) != 2 or int(a.get("axis", 0)) != 0:
        raise OnnxError(f"{where(node)}: dagnet imports a Gather as an embedding only: rows "
                        f"(axis 0) of a 2-D initializer, looked up by integer ids")
    ids = r.tensor(node, 1)
    rows, dim = r.consts[table].shape
    weights = r.param(table, r.consts[table], "weight")
    r.bind(node, r.g.embedding(ids, rows, dim, name=r.out_name(node), w=weights))
