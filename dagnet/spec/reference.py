"""The spec reference, docs/spec.md, written from the op declarations (never by hand):

    python -m dagnet.spec.reference > docs/spec.md

tests/test_spec_reference.py checks that the file is current and that its examples build.
"""
from __future__ import annotations

from dagnet.init import INIT_DOCS, PARAM_ATTRS
from dagnet.ir import INPUT_ATTRS
from dagnet.ops import registered_ops
from dagnet.ops.declare import Same
from dagnet.spec.sequential import LAYER_DEFAULTS
from dagnet.ir import CONSTANT_ATTRS
from dagnet.spec.vocab import declared_ops, layer_types, losses, operand_decls, owns_params

SEQUENTIAL_EXAMPLE = """\
name: lenet
input: {shape: [1, 28, 28]}          # the input node x (float32 unless dtype is given)
layers:
  - {type: conv, num_filters: 20, filter_size: 5}     # = {type: conv2d, filters: 20, size: 5}
  - {type: relu}
  - {type: pool, size: 2}
  - {type: conv, filters: 50, size: 5}
  - {type: relu}
  - {type: pool, size: 2}
  - {type: fc, hidden: 500}                           # = {type: affine, units: 500}
  - {type: relu}
  - {type: affine, units: 10}
loss: softmax
"""

GENERAL_EXAMPLE = """\
name: block
nodes:
  - {name: x, op: input, shape: [16, 8, 8]}
  - {name: y, op: input, shape: [], dtype: int64}
  - {name: conv1, op: conv2d, inputs: [x], filters: 16, size: 3, pad: 1}   # makes conv1.w, conv1.b
  - {name: bn1, op: batchnorm, inputs: [conv1]}                            # makes bn1.gamma, bn1.beta
  - {name: relu1, op: relu, inputs: [bn1]}
  - {name: sum, op: add, inputs: [relu1, x]}                               # the skip connection
  - {name: w, op: param, shape: [1024, 10], init: xavier, fan_in: 1024, fan_out: 10}
  - {name: b, op: param, shape: [10], init: zeros}
  - {name: scores, op: affine, inputs: [sum, w, b]}                        # params listed: as is
  - {name: loss, op: softmax_cross_entropy, inputs: [scores, y]}
"""


def _default(a) -> str:
    if a.required:
        return "required"
    if isinstance(a.default, Same):
        return f"= {a.default.attr}"
    if a.default is None:
        return "-"
    return f"`{str(a.default).lower() if isinstance(a.default, bool) else a.default}`"


def _kind(a) -> str:
    return {"int": "int", "pair": "int or [h, w]", "pads": "int, [h, w] or [top, left, bottom, right]",
            "number": "number", "scales": "number or [h, w]", "bool": "bool",
            "choice": " \\| ".join(a.choices), "dims": "list of ints",
            "target": "list of ints", "ints": "list of ints", "dtype": "dtype name",
            "tensor": "number or nested lists",
            "axes": "int or list of ints", "text": "string"}[a.kind]


def _attr_table(attrs, node_column: bool) -> list[str]:
    head = "| key | kind | default | bounds | also | "
    rows = [head + ("on the node | what |" if node_column else "what |"),
            "|---|---|---|---|---|" + ("---|---|" if node_column else "---|")]
    for a in attrs:
        bounds = f"`{a.bounds}`" if a.bounds else ""
        also = ", ".join(f"`{x}`" for x in a.aliases)
        node = ("yes" if a.node else "no: shapes the params") if node_column else None
        cells = [f"`{a.name}`", _kind(a), _default(a), bounds, also, *([node] if node else []),
                 a.doc]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _port(p) -> str:
    kind = "value (batched or not)" if p.either else "data"
    if p.dtype == "int":
        kind = "int64 indices" + (", batched or not" if p.either else "")
    if p.variadic:
        what = f"{kind}, {p.least} or more"
    elif p.batched:
        what = kind if p.grad or p.dtype == "int" else f"{kind}, no gradient"
    elif p.init:
        init = "the `init` attr" if p.init == "weight" else f"`{p.init}`"
        if isinstance(p.value, Same):
            init += f" (the `{p.value.attr}` attr)"
        elif p.value is not None:
            init += f" {p.value:g}"
        what = f"param, made by the builder with {init}"
    else:
        what = "param"
    return f"`{p.name}` ({what}){': ' + p.doc if p.doc else ''}"


def _op_section(op, layer_names: dict) -> list[str]:
    lines = [f"### `{op.name}`", "", op.doc, ""]
    names = [op.name, *op.aliases]
    if op.name in layer_names.values() and op.kind != "loss":
        lines.append(f"- names: {', '.join(f'`{n}`' for n in names)}; unnamed layers and "
                     f"nodes are called `{op.prefix}1`, `{op.prefix}2`, ...")
        operands = operand_decls(op)
        if operands:
            number = "[[1.0, 0.0], [0.0, 1.0]]" if op.name == "matmul" else "0.5"
            example = ", ".join(f"{a.name}: {number}" for a in operands)
            lines.append(f"- as a layer it reads the layer below and takes its other operands as "
                         f"constants: `{{type: {op.name}, {example}}}`")
    elif op.kind == "loss":
        lines.append(f"- a loss: `loss: {(op.aliases or (op.name,))[0]}` in the sequential "
                     f"form (also {', '.join(f'`{n}`' for n in names)})")
    else:
        lines.append(f"- general form only (it takes several data inputs); names: "
                     f"{', '.join(f'`{n}`' for n in names)}")
    lines.append(f"- inputs: {'; '.join(_port(p) for p in op.ports)}")
    if owns_params(op):
        lines.append("- a node listing only its data input is made by the builder, which makes "
                     "the params and takes every key below; a node listing its params too takes "
                     "only the keys stored on the node")
    lines.append("")
    if op.attributes:
        lines += _attr_table(op.attributes, owns_params(op)) + [""]
    else:
        lines += ["No attributes.", ""]
    return lines


def reference() -> str:
    """The text of docs/spec.md."""
    ops = declared_ops()
    layers = layer_types()
    fused = sorted(n for n, op in registered_ops().items() if op.attributes is None)
    lines = [
        "# dagnet spec reference",
        "",
        "A model spec is YAML or JSON, in one of two forms that share one vocabulary: an op is "
        "named by its name or an alias (`conv`, `fc`, `bn`, `pool`, ...), and its keys are its "
        "attributes or their aliases, among them the course names (`num_filters`, "
        "`filter_size`, `hidden`, ...). Python's builder takes the same names "
        "(`g.conv2d(x, num_filters=20, filter_size=5)`). Load a spec with "
        "`dagnet.Graph.from_spec(path)`; `g.to_spec()` / `dagnet.spec.save_spec(g, path)` write "
        "the general form. Every mistake is a `SpecError` naming the key path "
        "(see [errors.md](errors.md)).",
        "",
        "This file is generated from the op declarations (`python -m dagnet.spec.reference > "
        "docs/spec.md`); a test keeps it current.",
        "",
        "## The sequential form: a layer stack",
        "",
        "```yaml", SEQUENTIAL_EXAMPLE.rstrip(), "```", "",
        "| key | what |",
        "|---|---|",
        "| `name` | the graph's name (default `graph`) |",
        "| `input` | the input node `x`: `shape` (required) and `dtype` (see input nodes below) |",
        "| `layers` | the layers, in order: `type` (an op or alias below), optional `name`, and "
        "the op's keys |",
        f"| `loss` | {', '.join(f'`{n}`' for n in losses())} or `none` (default `softmax`); "
        "the labels input is `y` (int64), the loss node `loss`, the layer feeding it `scores` |",
        f"| {', '.join(f'`{k}`' for k in LAYER_DEFAULTS)} | defaults for every layer that "
        "takes them (conv, affine) |",
        "",
        "A layer without `name` is called after its op's short name and how many layers of that "
        "op came before: `conv1`, `relu1`, `pool1`, `fc1`, `bn1`, `drop1`, ...",
        "",
        f"Layer types: {', '.join(f'`{t}`' for t in sorted(layers))}.",
        "",
        "## The general form: any DAG",
        "",
        "```yaml", GENERAL_EXAMPLE.rstrip(), "```", "",
        "Each node has `name`, `op` (an op, an alias, `input`, `param` or `constant`) and, for ops, "
        "`inputs` (node names, in port order); its other keys are the op's keys. `outputs:` "
        "(optional) lists the graph's outputs; by default the losses, else the nodes nobody "
        "reads. A node may be listed before its inputs, except one whose params the builder "
        "makes.",
        "",
        "### `input` nodes", "",
        *_attr_table(INPUT_ATTRS, False), "",
        "### `param` nodes", "",
        *_attr_table(PARAM_ATTRS, False), "",
        "Initializers (`fan_in`/`fan_out` are recorded by the builder, else read off the "
        "shape: (F, C, kh, kw) conv or (D, M) affine weights):", "",
        *[f"- `{k}`: {v}" for k, v in INIT_DOCS.items()], "",
        "### `constant` nodes", "",
        "A fixed, non-trainable array (`{name: two, op: constant, value: 2.0}`; `value: [[1, 2], "
        "[3, 4]]`; `value: 0.5, shape: [3, 4]`), never batched; exported to ONNX as an "
        "initializer.", "",
        *_attr_table(CONSTANT_ATTRS, False), "",
        "## Values with and without the batch axis", "",
        "An input is a batch of examples by default: its `shape` leaves out the batch axis N. "
        "With `batched: false` it is one array of exactly `shape`; params and constants never "
        "have a batch axis. The tensor-math ops (values batched or not) count their axes over "
        "the full array as numpy and ONNX do: axis 0 of a batched value is its batch axis, and a "
        "reduction over it gives an unbatched value. Their output is batched when an input is. "
        "Operands broadcast by numpy's rule on the full shapes, the batch axis leading: N meets "
        "only 1 or another N, and an unbatched operand has at most as many axes as a batched "
        "one ((N, 3, 4) with (4,), (3, 4) or (1, 3, 4); never with (5, 3, 4) or (2, 1, 3, 4)).",
        "",
        "## Ops", "",
    ]
    for op in ops.values():
        lines += _op_section(op, {n: o.name for n, o in layers.items()})
    lines += [
        "## Fused ops", "",
        "The compiler's fuse pass replaces chains by these; they appear in specs of compiled "
        "graphs (`plan.graph.to_spec()`), with an attribute `members` (the chain's names, ops "
        "and attrs), and are not written by hand: "
        f"{', '.join(f'`{n}`' for n in fused)}.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
