"""The sequential spec form: a layer stack, as in config-file-driven course code.

    name: lenet
    input: {shape: [1, 28, 28]}        # the input node `x`; dtype float32 unless given
    layers:
      - {type: conv, filters: 20, size: 5}     # or num_filters / filter_size (course names)
      - {type: relu}
      - {type: pool, size: 2, stride: 2}
      - {type: affine, units: 500}             # or hidden
      - {type: relu}
      - {type: affine, units: 10}
    loss: softmax                      # softmax (default) | svm | none

A layer's `type` is an op or one of its aliases and its keys are the op's attributes or their
aliases (docs/spec.md lists them all: the same vocabulary as the general form); an op of two
values takes the layer below as its first and a constant as the other (`{type: mul, y: 0.5}`,
`{type: add, x1: [1, 2, 3]}`). A layer is named
after its op's short name and how many layers of that op came before (conv1, relu1, pool1, fc1,
bn1, drop1, ...); the layer feeding the loss is `scores`; `name:` overrides both. The labels
input is `y` (int64) and the loss node `loss`. Top-level `init` and `weight_scale` are defaults
for every layer that has them (conv, affine).
"""
from __future__ import annotations

from dagnet.errors import SpecError, did_you_mean
from dagnet.graph import build as build_op
from dagnet.ir import INPUT_ATTRS
from dagnet.ops import registered_ops
from dagnet.spec.vocab import (bind, build, builder_keys, check_keys, check_value, fail, losses,
                               layer_types, mapping, operand_decls, sequence, string)

#: top-level keys that give every layer that has the attr a default
LAYER_DEFAULTS = ("init", "weight_scale")


def _default_decls() -> dict:
    """The declarations of the top-level layer defaults (from the first op declaring each)."""
    out = {}
    for op in registered_ops().values():
        for a in op.attributes or ():
            if a.name in LAYER_DEFAULTS:
                out.setdefault(a.name, a)
    return out


def build_sequential(spec: dict, graph_class):
    """A Graph of graph_class from a sequential-form spec mapping."""
    check_keys("spec", spec, ("name", "input", "layers", "loss", *LAYER_DEFAULTS),
               required=("input", "layers"))
    g = graph_class(string("name", spec.get("name", "graph")))
    inp = mapping("input", spec["input"])
    attrs = bind("input", inp, (), INPUT_ATTRS)
    x = build("input", g.input, "x", **attrs)
    loss = _loss(spec.get("loss", "softmax"))
    labels = g.input("y", (), dtype="int64") if loss else None
    decls = _default_decls()
    defaults = {k: check_value(k, decls[k], spec[k]) for k in LAYER_DEFAULTS if k in spec}
    layers = sequence("layers", spec["layers"])
    if not layers:
        raise SpecError("layers: must list at least one layer")
    types = layer_types()
    counts: dict[str, int] = {}
    h = x
    for i, layer in enumerate(layers):
        path = f"layers[{i}]"
        layer = mapping(path, layer)
        if "type" not in layer:
            raise SpecError(f"{path}: missing key 'type'")
        kind = layer["type"]
        if not isinstance(kind, str) or kind not in types:
            raise SpecError(f"{path}.type: unknown layer type {kind!r}{did_you_mean(kind, types)} "
                            f"Known types: {', '.join(sorted(types))}")
        op = types[kind]
        operands = operand_decls(op)
        kwargs = bind(path, layer, ("type", "name"), builder_keys(op) + operands)
        args = (h, *(kwargs.pop(a.name) for a in operands)) if any(p.variadic for p in op.ports) \
            else (h,)
        kwargs = {**{k: v for k, v in defaults.items() if op.attr(k)}, **kwargs}
        counts[op.name] = counts.get(op.name, 0) + 1
        name = layer.get("name")
        if name is None:
            name = "scores" if loss and i == len(layers) - 1 else f"{op.prefix}{counts[op.name]}"
        kwargs["name"] = string(f"{path}.name", name)
        h = build(path, build_op, g, op, args, kwargs)
    if loss:
        build("loss", build_op, g, loss, (h, labels), {})
    return g


def _loss(name):
    """The loss op the `loss:` key names, or None for none."""
    table = losses()
    if name is None or name == "none":
        return None
    if not isinstance(name, str) or name not in table:
        fail("loss", f"one of {', '.join([*table, 'none'])}", name)
    return table[name]


__all__ = ["build_sequential"]
