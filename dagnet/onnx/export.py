"""Export: a Graph or an ExecutionPlan as an ONNX model.

Opset 13 or newer (default 17); params, constants and batchnorm running statistics are
initializers (the params listed in the model's metadata, so that load() reads a param added as
data back as a param), the batch dimension the symbol "N" (unbatched inputs and outputs have
none). Loss nodes are not exported: the model's outputs are the scores each loss reads (the
graph's outputs when it has no loss), and inputs that only feed losses (labels) are dropped.
Fused nodes (op "a+b", attrs["members"]) export as their member ops. Each op is written by its
row of the mapping table (mapping.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dagnet import files
from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph, Node
from dagnet.infer import constant_array, holds_ints
from dagnet.onnx.common import MIN_OPSET, PARAMS_KEY, UNBATCHED_KEY, OnnxError, onnx_module
from dagnet.onnx.mapping import EXPORTS
from dagnet.ops import get_op
from dagnet.ops.fusion import FusedOp
from dagnet.version import __version__


@dataclass
class Writer:
    """Collects the ONNX nodes and initializers of one export."""

    onnx: object
    graph: Graph
    state: dict
    dtype: np.dtype
    #: the opset written: ops newer than it are written as their decompositions; an op whose
    #: attributes came in a later one says so (OnnxError)
    opset: int = 17

    def __post_init__(self):
        self.nodes, self.initializers = [], []

    def initializer(self, name: str, array, dtype=None) -> str:
        array = np.asarray(array, dtype=dtype or self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def add(self, op_type: str, inputs, output: str, **attrs) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], name=output,
                                                      **attrs))
        return output

    def shape(self, value: str) -> tuple:
        """Its dagnet shape: per example for a batched value (see batched), else full."""
        return tuple(self.graph.shape_of(value))

    def batched(self, value: str) -> bool:
        return self.graph.batched(value)

    def rank(self, value: str) -> int:
        """The number of axes ONNX sees (the batch axis counted)."""
        return len(self.shape(value)) + self.batched(value)


def _unpack(graph_or_plan, params, state):
    """(declared graph, params, state) from a Graph or, by duck typing, an ExecutionPlan."""
    if isinstance(graph_or_plan, Graph):
        graph = graph_or_plan
    elif all(hasattr(graph_or_plan, a) for a in ("source", "params", "state")):
        graph = graph_or_plan.source
        params = graph_or_plan.params if params is None else params
        state = graph_or_plan.state if state is None else state
    else:
        raise OnnxError(f"export takes a Graph or an ExecutionPlan, "
                        f"got {type(graph_or_plan).__name__}")
    if params is None:
        raise OnnxError("export needs the params: pass params={name: array} (e.g. plan.params) "
                        "or export the compiled plan itself")
    return graph, params, state or {}


def _arity(op_name: str) -> int:
    arity = get_op(op_name).arity
    return arity if isinstance(arity, int) else arity[0]


def _unfuse(graph: Graph) -> Graph:
    """A copy of graph with each fused node replaced by its members (names, ops, attrs as declared).

    A fused node's inputs are the first member's inputs, then each other member's extra inputs
    (all but the port the previous member's value enters, port 0 unless its record says)."""
    nodes, renamed = [], {}
    for n in graph:
        if n.op in LEAVES or not isinstance(get_op(n.op, n.name), FusedOp):
            nodes.append(n.copy())
            continue
        pos, prev = 0, None
        for m in n.attrs["members"]:
            take = m.get("arity", _arity(m["op"])) - (prev is not None)
            inputs = n.inputs[pos:pos + take]
            if prev is not None:
                inputs.insert(m.get("port", 0), prev)
            nodes.append(Node(m["name"], m["op"], dict(m["attrs"]), inputs))
            pos, prev = pos + take, m["name"]
        renamed[n.name] = prev
    g = Graph(graph.name)
    g.set_nodes(nodes)
    for n in g:
        n.inputs = [renamed.get(s, s) for s in n.inputs]
    g.outputs = [renamed.get(o, o) for o in graph.outputs]
    return g


def _exported_outputs(graph: Graph) -> list[str]:
    """The scores each loss reads, else the graph's outputs."""
    if graph.losses:
        return list(dict.fromkeys(loss.inputs[0] for loss in graph.losses))
    return graph.outputs


def _needed(graph: Graph, outputs: list[str]) -> list[Node]:
    """The nodes the outputs depend on, in graph order."""
    need, stack = set(), list(outputs)
    while stack:
        name = stack.pop()
        if name not in need:
            need.add(name)
            stack.extend(graph.node(name).inputs)
    return [n for n in graph if n.name in need]


def _checked_params(nodes: list[Node], params: dict) -> dict:
    """The params the exported nodes use; OnnxError listing every missing or misshapen one."""
    bad = []
    for n in nodes:
        if n.op != PARAM:
            continue
        if n.name not in params:
            bad.append(f"'{n.name}' is missing")
        elif tuple(np.shape(params[n.name])) != tuple(n.attrs["shape"]):
            bad.append(f"'{n.name}' has shape {tuple(np.shape(params[n.name]))}, "
                       f"the graph declares {tuple(n.attrs['shape'])}")
    if bad:
        raise OnnxError(f"cannot export: params {'; '.join(bad)}")
    return {n.name: np.asarray(params[n.name]) for n in nodes if n.op == PARAM}


def export(graph_or_plan, path, params: dict | None = None, state: dict | None = None,
           opset: int = 17):
    """Write a Graph (with params/state) or an ExecutionPlan to `path` as an ONNX model; returns it.

    Inputs are (N, *shape) with N symbolic; params are float32 unless they are all float64."""
    onnx = onnx_module()
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise OnnxError(f"opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}] "
                        f"(this onnx package's newest), got {opset}")
    graph, params, state = _unpack(graph_or_plan, params, state)
    graph = _unfuse(graph)
    outputs = _exported_outputs(graph)
    nodes = _needed(graph, outputs)
    used = _checked_params(nodes, params)
    all64 = used and all(a.dtype == np.float64 for a in used.values())
    w = Writer(onnx, graph, state, np.dtype(np.float64 if all64 else np.float32), opset)

    def info(name):
        ints = holds_ints(graph.node(name))
        elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.int64) if ints else w.dtype)
        dims = (["N"] if w.batched(name) else []) + list(w.shape(name))
        return onnx.helper.make_tensor_value_info(name, elem, dims)

    inputs = []
    for n in nodes:
        if n.op == INPUT:  # integer inputs (ids, indices) are int64 as dagnet feeds them
            inputs.append(info(n.name))
        elif n.op == PARAM:
            w.initializer(n.name, used[n.name])
        elif n.op == CONSTANT:
            a = constant_array(n.attrs, w.dtype)
            w.initializer(n.name, a, dtype=a.dtype)
        elif n.op in EXPORTS:
            EXPORTS[n.op](w, n)
        else:
            raise OnnxError(f"{n.name}: op '{n.op}' has no ONNX export; exportable ops: "
                            f"{', '.join(sorted(EXPORTS))}")
    onnx_graph = onnx.helper.make_graph(w.nodes, graph.name, inputs, [info(o) for o in outputs],
                                        w.initializers)
    model = onnx.helper.make_model(onnx_graph, producer_name="dagnet", producer_version=__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    unbatched = [n.name for n in nodes if n.op == INPUT and not w.batched(n.name)]
    # load() reads the unbatched inputs back without a batch axis, the params back as params
    props = {UNBATCHED_KEY: ",".join(unbatched)} if unbatched else {}
    if used:
        props[PARAMS_KEY] = ",".join(used)
    if props:
        onnx.helper.set_model_props(model, props)
    # the oldest IR that holds this opset, so that older runtimes read the file too
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model, full_check=True)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OnnxError(f"export: path = {path!r:.60}; give the .onnx file to write")
    if os.path.isdir(path):
        raise OnnxError(f"cannot write {os.fspath(path)}: it is a folder; give a file name such "
                        f"as {os.path.join(os.fspath(path), 'model.onnx')}")
    data = model.SerializeToString()
    files.write_atomically(path, lambda f: f.write(data), error=OnnxError, what="ONNX model")
    return model


# == load ======================================================================================
