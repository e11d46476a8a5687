"""The shape ops both ways (rows under `# -- shape` in mapping.py): Reshape, Flatten and Concat
of unbatched values (batched ones keep importers.py's readers), Slice, Split, Pad, Tile and
Gather (an embedding when it looks rows of a 2-D initializer up by computed ids, layers.py).
Axes count over the full array on both sides. Their shapes, starts, pads, repeats and sizes are
int64 inputs in the opsets dagnet writes (attributes in older ones, read too).

A dagnet split is one node per part (a node is one value): export writes one ONNX Split for
the parts of one input, naming each output after its node; import makes a split node for each
used output of a Split.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import build
from dagnet.onnx import importers as im
from dagnet.onnx import layers
from dagnet.onnx.common import OnnxError, where
from dagnet.onnx.exporters import attrs as declared
from dagnet.ops import get_op

#: the first opsets taking Slice's bounds, Pad's pads, Split's sizes and Pad's axes as inputs
SLICE_INPUTS, PAD_INPUTS, SPLIT_INPUT, PAD_AXES = 10, 11, 13, 18


def _ints(w, n, what: str, values) -> str:
    return w.initializer(f"{n.name}.{what}", [int(v) for v in values], dtype=np.int64)


# -- export ---------------------------------------------------------------------------------------
def reshape(w, n) -> None:
    if w.batched(n.inputs[0]):
        shape = [-1, *w.shape(n.name)]  # -1 for the batch, the resolved per-example shape
    else:
        shape = list(declared(n)["shape"])  # as given: 0 and -1 mean what they mean in ONNX
    w.add("Reshape", [n.inputs[0], _ints(w, n, "shape", shape)], n.name)


def flatten(w, n) -> None:
    w.add("Flatten", n.inputs, n.name, axis=declared(n)["axis"])


def slice_(w, n) -> None:
    a = declared(n)
    if w.opset < SLICE_INPUTS:
        if a["steps"] is not None and any(s != 1 for s in a["steps"]):
            raise OnnxError(f"{n.name}: slice with steps needs opset {SLICE_INPUTS} or newer; "
                            f"export with opset={SLICE_INPUTS} (this export writes {w.opset})")
        axes = {} if a["axes"] is None else {"axes": list(a["axes"])}
        w.add("Slice", n.inputs, n.name, starts=list(a["starts"]), ends=list(a["ends"]), **axes)
        return
    ins = [n.inputs[0], _ints(w, n, "starts", a["starts"]), _ints(w, n, "ends", a["ends"])]
    if a["axes"] is not None or a["steps"] is not None:
        ins.append("" if a["axes"] is None else _ints(w, n, "axes", a["axes"]))
    if a["steps"] is not None:
        ins.append(_ints(w, n, "steps", a["steps"]))
    w.add("Slice", ins, n.name)


def split(w, n) -> None:
    """The first part of an input writes the Split of every part; the others are its outputs."""
    done = w.__dict__.setdefault("split_outputs", set())
    if n.name in done:
        return
    a = declared(n)
    x = n.inputs[0]
    full = ((None,) if w.batched(x) else ()) + tuple(w.shape(x))
    axis, sizes = get_op("split").sizes(n.attrs, full)
    key = {k: v for k, v in n.attrs.items() if k != "index"}
    siblings = {m.attrs["index"]: m.name for m in w.graph if m.op == "split"
                and m.inputs == n.inputs and {k: v for k, v in m.attrs.items() if k != "index"} == key}
    outputs = [siblings.get(i, f"{n.name}/part{i}") for i in range(len(sizes))]
    done.update(outputs)
    kw = {"axis": a["axis"]}
    ins = [x]
    if w.opset >= SPLIT_INPUT:
        ins.append(_ints(w, n, "split", sizes))
    else:
        kw["split"] = list(sizes)
    w.nodes.append(w.onnx.helper.make_node("Split", ins, outputs, name=n.name, **kw))


def pad(w, n) -> None:
    a = declared(n)
    mode, pads, axes = a["mode"], list(a["pads"]), a["axes"]
    if mode == "wrap" and w.opset < 19:
        raise OnnxError(f"{n.name}: pad mode wrap needs opset 19 or newer; export with opset=19 "
                        f"(this export writes {w.opset})")
    rank = w.rank(n.inputs[0])
    if axes is not None and w.opset < PAD_AXES:  # every axis's pads, the others 0
        full = [0] * (2 * rank)
        for k, ax in enumerate(axes):
            full[ax % rank], full[ax % rank + rank] = pads[k], pads[k + len(axes)]
        pads, axes = full, None
    if w.opset < PAD_INPUTS:
        w.add("Pad", n.inputs, n.name, pads=pads, mode=mode, value=a["value"])
        return
    ins = [n.inputs[0], _ints(w, n, "pads", pads), w.initializer(f"{n.name}.value", a["value"])]
    if axes is not None:
        ins.append(_ints(w, n, "axes", axes))
    w.add("Pad", ins, n.name, mode=mode)


def tile(w, n) -> None:
    w.add("Tile", [n.inputs[0], _ints(w, n, "repeats", declared(n)["repeats"])], n.name)


def gather(w, n) -> None:
    w.add("Gather", n.inputs, n.name, axis=declared(n)["axis"])


# -- import ---------------------------------------------------------------------------------------
def _build(r, node, op_name: str, inputs, name=None, **attrs):
    n = build(r.g, get_op(op_name), tuple(inputs), {**attrs, "name": name or r.out_name(node)})
    if name is None:
        r.bind(node, n)
    return n


def _batched(r, node, i: int = 0) -> bool:
    name = node.input[i]
    return name not in r.consts and r.g.batched(r.value(name, exact=False, where=where(node)))


def _list(r, node, i: int, what: str, a: dict, attr: str | None = None):
    """Ints from input i (an initializer or Constant), else from attribute `attr`, else None."""
    if i < len(node.input) and node.input[i]:
        return [int(v) for v in np.ravel(r.const(node, i, what))]
    return None if attr is None or attr not in a else [int(v) for v in a[attr]]


def reshape_(r, node, a: dict) -> None:
    if _batched(r, node):
        im.reshape(r, node, a)
        return
    target = _list(r, node, 1, "shape", a, "shape")
    if a.get("allowzero", 0) and 0 in target:
        raise OnnxError(f"{where(node)}: allowzero=1 with a 0 in shape {target} makes an empty "
                        f"axis; dagnet's values have no empty axes")
    _build(r, node, "reshape", [r.operand(node, 0)], shape=target)


def flatten_(r, node, a: dict) -> None:
    if _batched(r, node):
        im.flatten(r, node, a)
        return
    axis = int(a.get("axis", 1))
    _build(r, node, "flatten", [r.operand(node, 0)], **({} if axis == 1 else {"axis": axis}))


def concat_(r, node, a: dict) -> None:
    if any(_batched(r, node, i) for i in range(len(node.input))):
        im.concat(r, node, a)
        return
    _build(r, node, "concat", [r.operand(node, i) for i in range(len(node.input))],
           axis=int(a["axis"]))


def slice_in(r, node, a: dict) -> None:
    starts = _list(r, node, 1, "starts", a, "starts")
    ends = _list(r, node, 2, "ends", a, "ends")
    axes, steps = _list(r, node, 3, "axes", a, "axes"), _list(r, node, 4, "steps", a)
    if starts is None or ends is None:
        raise OnnxError(f"{where(node)}: Slice without starts or ends; ONNX requires both")
    kw = {k: v for k, v in (("axes", axes), ("steps", steps)) if v is not None}
    _build(r, node, "slice", [r.operand(node, 0)], starts=starts, ends=ends, **kw)


def split_in(r, node, a: dict) -> None:
    x = r.operand(node, 0)
    axis = int(a.get("axis", 0))
    sizes = _list(r, node, 1, "split", a, "split")
    kw = {"sizes": sizes} if sizes else {"parts": int(a.get("num_outputs", len(node.output)))}
    for i, out in enumerate(node.output):
        if out and (out in r.users or out in r.graph_outputs):
            n = _build(r, node, "split", [x], name=r.fresh(out, own=True), axis=axis, index=i,
                       **kw)
            r.values[out] = n.name


def pad_in(r, node, a: dict) -> None:
    pads = _list(r, node, 1, "pads", a, "pads")
    mode = a.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    value = r.const(node, 2, "constant_value", default=a.get("value", 0.0)) \
        if len(node.input) > 2 or "value" in a else 0.0
    axes = _list(r, node, 3, "axes", a)
    kw = {} if axes is None else {"axes": axes}
    _build(r, node, "pad", [r.operand(node, 0)], pads=pads, mode=mode,
           value=float(np.ravel(value)[0]) if np.size(value) else 0.0, **kw)


def tile_in(r, node, a: dict) -> None:
    _build(r, node, "tile", [r.operand(node, 0)], repeats=_list(r, node, 1, "repeats", a))


def gather_in(r, node, a: dict) -> None:
    table = node.input[0]
    if table in r.consts and np.ndim(r.consts[table]) == 2 and int(a.get("axis", 0)) == 0 \
            and node.input[1] not in r.consts:
        layers.load_gather(r, node, a)  # rows of a weight by computed ids: an embedding
        return
    _build(r, node, "gather", [r.operand(node, 0), r.operand(node, 1)], axis=int(a.get("axis", 0)))
