"""Write a zoo model as a general-form YAML spec in the builder's form: each node of an op that
makes its own params (conv, affine, batchnorm, layer_norm) lists only its data input (the
builder makes its params, and fills in the attributes left at their defaults), params and
constants read as data (a matmul's weight, a bias added) are nodes of their own, other nodes
list all their attributes, and a comment opens each block. The big residual, fire-module, dense
and attention nets in models/specs were written this way; tests/models check that every spec
file builds a graph equal to its function's default.

    python -m dagnet.models.spec_writer resnet50 > models/specs/resnet50.yaml
"""
from __future__ import annotations

import inspect
import sys

import numpy as np
import yaml

from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph
from dagnet.ops import get_op
from dagnet.ops.declare import resolve_default


def builder_nodes(graph: Graph) -> list[tuple[str, dict]]:
    """(block prefix, node mapping) per node in graph order, leaving out the params the builder
    makes (those read through an op's own param ports: conv filters, batchnorm gammas); params
    and constants read as data (a matmul's weight, a bias added) are listed as nodes."""
    owned = _owned_params(graph)
    out = []
    for n in graph:
        if n.name in owned:
            continue
        prefix = n.name.rsplit(".", 1)[0] if "." in n.name else ""
        if n.op in (PARAM, CONSTANT):
            out.append((prefix, {"name": n.name, "op": n.op,
                                 **{k: _plain(v) for k, v in n.attrs.items()}}))
            continue
        if n.op == INPUT:
            entry = {"name": n.name, "op": INPUT, "shape": list(n.attrs["shape"])}
            if n.attrs.get("dtype", "float32") != "float32":
                entry["dtype"] = n.attrs["dtype"]
            out.append((prefix, entry))
            continue
        op = get_op(n.op, n.name)
        data = [src for src, port in zip(n.inputs, _ports(op, len(n.inputs))) if port.batched]
        entry = {"name": n.name, "op": n.op, "inputs": data, **_builder_keys(graph, n)}
        by_builder = len(data) < len(n.inputs)  # the builder fills in the defaults
        for a in op.attributes or ():
            if a.name in n.attrs and not (by_builder and
                                          n.attrs[a.name] == resolve_default(a, n.attrs)):
                entry[a.name] = _plain(n.attrs[a.name])
        out.append((prefix, entry))
    return out


def _owned_params(graph: Graph) -> set:
    """The params read through an op's own param ports (the builder makes those)."""
    owned = set()
    for n in graph:
        if n.op not in LEAVES:
            ports = _ports(get_op(n.op, n.name), len(n.inputs))
            owned.update(src for src, port in zip(n.inputs, ports) if not port.batched)
    return owned


def _ports(op, count: int) -> list:
    """One port per input (a variadic port repeats)."""
    if any(p.variadic for p in op.ports):
        return [op.ports[0]] * count
    return list(op.ports[:count])


def _builder_keys(graph: Graph, n) -> dict:
    """What the builder needs to make the node's params: filters and size, or units; the init
    of the weight where it is not the default."""
    if n.op == "conv2d":
        f, _, kh, kw = graph.shape_of(n.inputs[1])
        keys = {"filters": f, "size": kh if kh == kw else [kh, kw]}
    elif n.op == "affine":
        keys = {"units": graph.shape_of(n.inputs[1])[1]}
    else:
        return {}
    w = graph.node(n.inputs[1]).attrs
    if w.get("init", "he") != "he":
        keys["init"] = w["init"]
    if w.get("scale") is not None:
        keys["weight_scale"] = w["scale"]
    return keys


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def spec_text(graph: Graph, header: str = "") -> str:
    """The YAML text: header comment lines, the name, one node per line, a comment per block."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] if header else []
    lines += [f"name: {graph.name}", "nodes:"]
    last = None
    for prefix, entry in builder_nodes(graph):
        if prefix and prefix != last:
            lines.append(f"  # {prefix}")
        last = prefix
        text = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=1000)
        lines.append(f"  - {text.strip()}")
    return "\n".join(lines) + "\n"


OWNED = "Conv, affine and batchnorm nodes list only their data input: the builder makes their params."
LISTED = ("Nodes of ops that make their own params (affine, layer_norm, conv, batchnorm) list\n"
          "only their data input: the builder makes those. Params read as data (the weights of\n"
          "matmul, the biases of add) are param nodes of their own.")


def main(argv=None) -> int:
    from dagnet.models import MODELS

    for name in argv if argv is not None else sys.argv[1:]:
        fn = MODELS[name]
        doc = inspect.cleandoc(fn.__doc__ or "")
        graph = fn()
        owned = _owned_params(graph)
        listed = any(n.op == PARAM and n.name not in owned for n in graph)
        header = (f"{name}(): written by `python -m dagnet.models.spec_writer {name}` from "
                  f"models/*.py\n\n{doc}\n\n{LISTED if listed else OWNED}")
        sys.stdout.write(spec_text(graph, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
