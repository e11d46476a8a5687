"""Constant folding at import: ONNX nodes that depend on no data input become constants.

Exporters compute shapes, and sometimes weights, with small subgraphs: torch's
`x.view(x.size(0), -1)` is Shape -> Gather -> Unsqueeze -> Concat -> Reshape, a bias-free Linear
is Transpose(W) -> MatMul, Caffe2 reshapes weights, onnx.version_converter inserts Shape nodes.
Such nodes are evaluated once here by ONNX's own reference implementation (onnx.reference), as
TVM's FoldConstant and onnx-simplifier do, so the importers see constants; any op folds, ones
dagnet cannot run included.

The batch is the one unknown: Shape of a data value is its shape with a symbolic batch. Folded
values are therefore evaluated at two batch sizes (BATCHES); a value equal at both is a constant
(reader.consts), one that differs depends on the batch and is kept as the pair
(reader.batched). Only a Reshape's target reads such a pair, as "the batch" at position 0
(`batch_shape`); anywhere else it is an OnnxError naming the value.
"""
from __future__ import annotations

import numpy as np

from dagnet.onnx.common import NotConstantError, OnnxError, where

#: the two batch sizes a Shape of a data value is evaluated at: primes, so that no arithmetic
#: on the batch (x.size(0) // 2) gives one number at both
BATCHES = (61, 67)
#: ops never folded: their value changes from run to run, or their subgraphs may read data
NEVER = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
         "Multinomial", "If", "Loop", "Scan", "SequenceMap"}


def plan(nodes: list, constants: set) -> set[int]:
    """ids of the nodes (a list the caller keeps: protobuf makes a new Python object, with a new
    id, on each access otherwise) that fold: every input (non-empty) a constant or a folded
    value, or a Shape/Size (of any value: shapes are static). `constants` may fold."""
    known, out = set(constants), set()
    for node in nodes:
        inputs = [v for v in node.input if v]
        if node.domain not in ("", "ai.onnx") or node.op_type in NEVER:
            continue
        if node.op_type in ("Shape", "Size") or all(v in known for v in inputs):
            out.add(id(node))
            known.update(v for v in node.output if v)
    return out


def evaluate(r, node) -> None:
    """Fold `node`: its outputs into r.consts, or r.batched where they depend on the batch."""
    pairs = [_input_pair(r, node, v) for v in node.input if v]
    if node.op_type in ("Shape", "Size"):
        results = [[_shape_of(node, r, pairs[0][i], i)] for i in (0, 1)]
    elif any(a is not b for a, b in pairs):  # depends on the batch: evaluate at both sizes
        results = [_run(r, node, [p[i] for p in pairs]) for i in (0, 1)]
    else:
        results = [_run(r, node, [a for a, _ in pairs])] * 2
    for name, a, b in zip(node.output, *results):
        if not name:
            continue
        if a.shape == b.shape and np.array_equal(a, b):
            r.consts[name] = a
        else:
            r.batched[name] = (a, b)


def batch_shape(r, node, i: int, what: str, default=None) -> list:
    """Input i of node as a shape (a list of ints), None where it is the batch (a folded Shape
    of data, at position 0). OnnxError if another entry depends on the batch."""
    name = node.input[i] if i < len(node.input) else ""
    if name not in r.batched:
        return [int(d) for d in r.const(node, i, what, default)]
    a, b = (np.asarray(v).reshape(-1) for v in r.batched[name])
    out = []
    for k, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        if x == y:
            out.append(int(x))
        elif k == 0 and (x, y) == BATCHES:
            out.append(None)
        else:
            raise NotConstantError(f"{where(node)}: entry {k} of the {what} '{name}' is computed "
                                   f"from the batch size ({x} at batch {BATCHES[0]}); dagnet "
                                   f"takes only the batch itself from it, as the first entry",
                                   name)
    return out


# -- helpers -------------------------------------------------------------------------------------
def _input_pair(r, node, v: str):
    """(value at the first batch size, at the second) of an input; None for the data input of a
    Shape/Size (its shape is read instead)."""
    if v in r.batched:
        return r.batched[v]
    if v in r.consts:
        return r.consts[v], r.consts[v]
    return None, None


def _shape_of(node, r, value, i: int) -> np.ndarray:
    """Shape/Size of the node's input at batch size BATCHES[i] (honouring Shape's start/end)."""
    if value is None:  # a data value: its per-example shape, behind the batch if it has one
        shape = r.shape(node.input[0])
        if r.g.batched(r.value(node.input[0], exact=False, where=where(node))):
            shape = (BATCHES[i], *shape)
    else:
        shape = np.shape(value)
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return np.array(shape[slice(start, end)], dtype=np.int64)


def _run(r, node, values: list) -> list:
    """node's outputs on `values` by onnx.reference, at the model's opset."""
    onnx = r.onnx
    from onnx.reference import ReferenceEvaluator

    helper = onnx.helper
    names = [v for v in node.input if v]
    graph = helper.make_graph(
        [node], "fold", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(
            np.asarray(v).dtype), None) for n, v in zip(names, values)],
        [helper.make_value_info(o, onnx.TypeProto()) for o in node.output if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", r.opset)])
    try:
        with np.errstate(all="ignore"):
            out = ReferenceEvaluator(model).run(None, dict(zip(names, values)))
    except Exception as e:  # noqa: BLE001 - onnx.reference raises many kinds; name the node
        raise OnnxError(f"{where(node)}: its inputs are constants, but evaluating it to fold it "
                        f"failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:120]})"
                        ) from None
    outs = iter(out)
    return [np.asarray(next(outs)) if o else None for o in node.output]
