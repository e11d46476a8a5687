"""THE op mapping table: one row per ONNX op <-> dagnet op, with the functions that convert
nodes and attrs each way (exporters.py writes, importers.py reads; both take the attrs' names,
defaults and checks from the dagnet op's declarations).

A row with `export` is how its dagnet op is written (one per op); a row with `load` is how its
ONNX op is read (several ONNX ops may become one dagnet op: Gemm and MatMul both become affine,
or matmul when affine cannot take them: their readers decide).
Adding an op whose ONNX twin has the same attributes (an activation) is one row:
`Row("Gelu", "gelu", *same("Gelu", "gelu"))`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dagnet.onnx import exporters as ex
from dagnet.onnx import importers as im
from dagnet.onnx import layers
from dagnet.onnx import importers_window as iw
from dagnet.onnx import layout as lay
from dagnet.onnx import shapes as sh
from dagnet.onnx import tensor_math as tm


@dataclass(frozen=True)
class Row:
    """ONNX op <-> dagnet op: export(writer, node) writes the dagnet node as ONNX nodes,
    load(reader, onnx_node, attrs) builds it; either may be None (one direction only)."""

    onnx: str
    op: str | None
    export: Callable | None = None
    load: Callable | None = None


def same(onnx_op: str, op: str, since: int = 1, older=None, **onnx_defaults) -> tuple:
    """(export, load) of an op whose ONNX twin takes the same attributes under the same names;
    since/older: the opset ONNX added it in and how to write it for older ones;
    onnx_defaults: ONNX's defaults where they differ from dagnet's."""
    return ex.same_attrs(onnx_op, since, older), im.same_attrs(op, **onnx_defaults)


TABLE = (
    Row("ReduceMean", "global_avg_pool", None, im.reduce_mean),
    Row("Gemm", "affine", ex.affine, im.gemm),
    Row("MatMul", "affine", None, im.matmul),
    Row("BatchNormalization", "batchnorm", ex.batchnorm, im.batchnorm),
    Row("Dropout", "dropout", ex.dropout, im.dropout),
    Row("Add", "add", ex.add, im.add),
    Row("Sum", "add", None, im.add),
    Row("Softmax", "softmax", ex.softmax("Softmax"), im.normalised("softmax")),
    Row("Relu", "relu", *same("Relu", "relu")),
    Row("LeakyRelu", "leaky_relu", *same("LeakyRelu", "leaky_relu")),
    Row("Sigmoid", "sigmoid", *same("Sigmoid", "sigmoid")),
    Row("Tanh", "tanh", *same("Tanh", "tanh")),
    Row("Elu", "elu", *same("Elu", "elu")),
    Row("Identity", None, None, lambda r, node, a: r.alias(node, node.input[0])),
    Row("Constant", None, None, im.constant),
    # -- convolution, pooling and resampling
    Row("Conv", "conv2d", ex.conv, iw.conv),
    Row("Conv", "conv1d", ex.conv, None),
    Row("ConvTranspose", "conv_transpose", ex.conv_transpose, iw.conv_transpose),
    Row("MaxPool", "max_pool2d", ex.pool("MaxPool"), iw.pool("max_pool2d", "max_pool1d")),
    Row("MaxPool", "max_pool1d", ex.pool("MaxPool", rank=1), None),
    Row("AveragePool", "avg_pool2d", ex.pool("AveragePool"), iw.pool("avg_pool2d", "avg_pool1d")),
    Row("AveragePool", "avg_pool1d", ex.pool("AveragePool", rank=1), None),
    Row("GlobalAveragePool", "global_avg_pool", ex.global_pool("GlobalAveragePool"),
        lambda r, node, a: im.global_pool(r, node)),
    Row("GlobalMaxPool", "global_max_pool", ex.global_pool("GlobalMaxPool"),
        lambda r, node, a: im.global_pool(r, node, op="global_max_pool")),
    Row("Resize", "resize", ex.resize, iw.resize),
    Row("Upsample", "resize", None, iw.upsample),
    Row("DepthToSpace", "depth_to_space", ex.blocks("DepthToSpace"), iw.blocks("depth_to_space")),
    Row("SpaceToDepth", "space_to_depth", ex.blocks("SpaceToDepth"), iw.blocks("space_to_depth")),
    # -- activations and normalisation layers
    Row("PRelu", "prelu", ex.same_attrs("PRelu"), im.prelu),
    Row("Gelu", "gelu", *same("Gelu", "gelu", 20, ex.gelu_before_20)),
    Row("Selu", "selu", *same("Selu", "selu")),
    Row("Softplus", "softplus", *same("Softplus", "softplus")),
    Row("Softsign", "softsign", *same("Softsign", "softsign")),
    Row("HardSigmoid", "hardsigmoid", *same("HardSigmoid", "hardsigmoid", alpha=0.2)),
    Row("HardSwish", "hardswish", *same("HardSwish", "hardswish", 14, ex.hardswish_before_14)),
    Row("Mish", "mish", *same("Mish", "mish", 18, ex.mish_before_18)),
    Row("LogSoftmax", "log_softmax", ex.softmax("LogSoftmax"), im.normalised("log_softmax")),
    Row("LayerNormalization", "layer_norm", layers.layer_norm, layers.load_layer_norm),
    Row("GroupNormalization", "group_norm", layers.group_norm, layers.load_group_norm),
    Row("InstanceNormalization", "instance_norm", layers.instance_norm, layers.load_instance_norm),
    Row("LRN", "lrn", *same("LRN", "lrn")),
    Row("Gather", "embedding", layers.embedding, None),  # read by the Gather row below
    # -- tensor math
    *(Row(o, op, ex.same_attrs(o), tm.operands(op)) for o, op in tm.UNARY.items()),
    *(Row(o, op, ex.same_attrs(o), tm.operands(op)) for o, op in tm.BINARY.items()),
    *(Row(o, op, ex.same_attrs(o), tm.extremum(op)) for o, op in tm.EXTREMA.items()),
    *(Row(o, op, tm.compare(o), tm.comparison(op)) for o, op in tm.COMPARE.items()),
    Row("Where", "where", tm.where_, tm.operands("where")),
    Row("Cast", None, None, tm.cast),
    Row("Clip", "clip", tm.clip, tm.clip_),
    Row("MatMul", "matmul", ex.same_attrs("MatMul"), None),  # read by the MatMul row above
    Row("Einsum", "einsum", tm.einsum, tm.einsum_),
    *(Row(o, op, tm.reduce(o), None if o == "ReduceMean" else tm.reduce_(op))
      for o, op in tm.REDUCE.items()),
    Row("ArgMax", "argmax", tm.argmax, tm.argmax_),
    # -- layout
    Row("Transpose", "transpose", lay.transpose, lay.transpose_),
    Row("Squeeze", "squeeze", lay.axes_op("Squeeze"), lay.squeeze_),
    Row("Unsqueeze", "unsqueeze", lay.axes_op("Unsqueeze"), lay.unsqueeze_),
    Row("Expand", "expand", lay.expand, lay.expand_),
    # -- shape (batched Reshape, Flatten and Concat: importers.py's readers)
    Row("Reshape", "reshape", sh.reshape, sh.reshape_),
    Row("Flatten", "flatten", sh.flatten, sh.flatten_),
    Row("Concat", "concat", ex.concat, sh.concat_),
    Row("Slice", "slice", sh.slice_, sh.slice_in),
    Row("Split", "split", sh.split, sh.split_in),
    Row("Pad", "pad", sh.pad, sh.pad_in),
    Row("Tile", "tile", sh.tile, sh.tile_in),
    Row("Gather", "gather", sh.gather, sh.gather_in),
)

#: dagnet op -> how it is written
EXPORTS = {row.op: row.export for row in TABLE if row.export}
#: ONNX op -> how it is read
IMPORTS = {row.onnx: row.load for row in TABLE if row.load}
