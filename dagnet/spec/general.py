"""The general spec form: any DAG (skip connections, branches, shared params).

    name: block
    nodes:
      - {name: x, op: input, shape: [16, 8, 8]}
      - {name: conv1, op: conv2d, inputs: [x], filters: 16, size: 3, pad: 1}
      - {name: sum, op: add, inputs: [conv1, x]}
    outputs: [sum]                     # optional: default the losses, else the sinks

`op` is an op or one of its aliases, and the other keys are its attributes or their aliases:
the vocabulary of the sequential form (docs/spec.md). A node of an op that owns params (conv2d,
affine, batchnorm) listing only its data input is made by the builder, which creates its params
(`conv1.w`, `conv1.b`) and takes the builder keys (filters, size, init, ...); a node that lists
every input, params included, is added as is, its other keys being its attrs. `input` nodes
take shape/dtype/batched, `param` nodes shape/init/scale/value/decay/fan_in/fan_out,
`constant` nodes value/shape/dtype (`{name: two, op: constant, value: 2.0}`). Graph.to_spec
writes every node that way, so Graph -> spec -> Graph is exact, through YAML or JSON text too.
"""
from __future__ import annotations

import networkx as nx

from dagnet.errors import SpecError, did_you_mean
from dagnet.graph import build as build_op
from dagnet.init import param_problem
from dagnet.ir import CONSTANT, INPUT, LEAF_ATTRS, LEAVES, NODE_KEYS, PARAM, topological_order
from dagnet.ops import registered_ops
from dagnet.spec.vocab import (bind, build, builder_keys, check_keys, mapping, node_keys,
                               op_named, owns_params, sequence, string)


def build_general(spec: dict, graph_class):
    """A Graph of graph_class from a general-form spec mapping."""
    check_keys("spec", spec, ("name", "nodes", "outputs"), required=("nodes",))
    g = graph_class(string("name", spec.get("name", "graph")))
    nodes = [_parse_node(i, item) for i, item in enumerate(sequence("nodes", spec["nodes"]))]
    first: dict[str, dict] = {}
    for node in nodes:
        if node["name"] in first:
            raise SpecError(f"{node['path']}.name: duplicate name '{node['name']}' "
                            f"(nodes[{first[node['name']]['index']}] has it too)")
        first[node["name"]] = node
    _check_inputs(nodes)
    for node in nodes:
        _add_node(g, node)
    if "outputs" in spec:
        known = [n.name for n in g]
        outputs = sequence("outputs", spec["outputs"])
        for j, out in enumerate(outputs):
            if string(f"outputs[{j}]", out) not in g:
                raise SpecError(f"outputs[{j}]: no node named '{out}'{did_you_mean(out, known)}")
        g.outputs = outputs
    _infer_shapes(g, {n["name"]: f"nodes[{n['index']}]" for n in nodes})
    return g


def _parse_node(i: int, item) -> dict:
    """One entry of `nodes:` checked: name, op, inputs, attrs, its key path and build kind."""
    path = f"nodes[{i}]"
    item = mapping(path, item)
    for key in ("name", "op"):
        if key not in item:
            raise SpecError(f"{path}: missing key '{key}'")
    name = string(f"{path}.name", item["name"])
    path = f"{path} ({name})"
    op_name = string(f"{path}.op", item["op"])
    op = None if op_name in LEAVES else op_named(op_name)
    if op_name not in LEAVES and op is None:
        known = [*LEAVES, *registered_ops()]
        raise SpecError(f"{path}.op: unknown op {op_name!r}{did_you_mean(op_name, known)} "
                        f"Known ops: {', '.join(sorted(known))}")
    if op is None:
        if "inputs" in item:
            raise SpecError(f"{path}: {op_name} nodes take no 'inputs'")
        inputs = []
    elif "inputs" not in item:
        raise SpecError(f"{path}: missing key 'inputs'")
    else:
        inputs = sequence(f"{path}.inputs", item["inputs"])
        for j, src in enumerate(inputs):
            string(f"{path}.inputs[{j}]", src)
    rest = {k: v for k, v in item.items() if k not in NODE_KEYS}
    by_builder = op is not None and owns_params(op) and \
        len(inputs) == sum(p.batched for p in op.ports)
    if op is None:
        attrs = bind(path, rest, (), LEAF_ATTRS[op_name])
    elif op.attributes is None:
        attrs = rest  # an op that declares no attributes (a fused op): taken as they come
    else:
        note = (f" (a {op.name} node listing its params in inputs takes only its attrs; list "
                f"only its data input to have the builder make the params)"
                if owns_params(op) and not by_builder else "")
        attrs = bind(path, rest, (), builder_keys(op) if by_builder else node_keys(op), note)
    return {"index": i, "path": path, "name": name, "op": op_name if op is None else op.name,
            "opdef": op, "inputs": inputs, "attrs": attrs, "by_builder": by_builder}


def _check_inputs(nodes: list) -> None:
    """Every input names a node of the spec or a param the builder will make: the error names
    the node and the input that is wrong, whatever its op, before anything is built."""
    known = [n["name"] for n in nodes]
    made = [f"{n['name']}.{p.name}" for n in nodes if n["by_builder"]
            for p in n["opdef"].ports if not p.batched]
    names = set(known) | set(made)
    for node in nodes:
        for j, src in enumerate(node["inputs"]):
            if src not in names:
                raise SpecError(f"{node['path']}.inputs[{j}]: no node named "
                                f"'{src}'{did_you_mean(src, known + made)}")


def _add_node(g, node: dict) -> None:
    name, op, attrs, path = node["name"], node["op"], node["attrs"], node["path"]
    if op == INPUT:
        build(path, g.input, name, **attrs)
    elif op == PARAM:
        problem = param_problem(attrs)
        if problem:
            raise SpecError(f"{path}: {problem}")
        build(path, g.param, name, **attrs)
    elif op == CONSTANT:
        build(path, g.constant, name=name, **attrs)
    elif node["by_builder"]:
        srcs = node["inputs"]
        later = next((s for s in srcs if s not in g), None)
        if later is not None:
            j = srcs.index(later)
            raise SpecError(f"{path}.inputs[{j}]: '{later}' comes later in the list; a node "
                            f"whose params the builder makes must come after its input")
        build(f"nodes[{node['index']}]", build_op, g, node["opdef"], tuple(srcs),
              {**attrs, "name": name})
    else:
        build(path, g.add_node, op, node["inputs"], attrs, name)
        if all(src in g and _has_shape(g.node(src)) for src in node["inputs"]):
            # Inputs known: infer now, so a shape error names this node (not a later consumer).
            build(f"nodes[{node['index']}]", g.shape_of, name)


def _has_shape(n) -> bool:
    return n.op in LEAVES or "shape" in n.meta


def _infer_shapes(g, paths: dict) -> None:
    """Infer the shapes left (nodes listed before their inputs) in topological order, so that
    a shape error names its own node's key path."""
    try:
        order = topological_order(g)
    except nx.NetworkXUnfeasible:
        return  # a cycle: compile()'s validate pass reports it, printing the cycle
    for name in order:
        build(paths.get(name, name), g.shape_of, name)
