"""Export: a Graph or an ExecutionPlan as an ONNX model.

Opset 13 or newer (default 17); params and batchnorm running statistics are initializers, the
batch dimension the symbol "N". Loss nodes are not exported: the model's outputs are the
scores each loss reads (the graph's outputs when it has no loss), and inputs that only feed
losses (labels) are dropped. Fused nodes (op "a+b", attrs["members"]) export as their member
ops. Each op is written by its row of the mapping table (mapping.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagnet.graph import INPUT, PARAM, Graph, Node
from dagnet.onnx.common import MIN_OPSET, OnnxError, onnx_module
from dagnet.onnx.mapping import EXPORTS
from dagnet.ops import get_op
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
        return tuple(self.graph.shape_of(value))


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

    A fused node's inputs are the first member's inputs, then each other member's extra inputs."""
    nodes, renamed = [], {}
    for n in graph:
        if "members" not in n.attrs or "+" not in n.op:
            nodes.append(n.copy())
            continue
        pos, prev = 0, None
        for m in n.attrs["members"]:
            take = _arity(m["op"]) - (prev is not None)
            inputs = ([] if prev is None else [prev]) + n.inputs[pos:pos + take]
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
    elem = onnx.helper.np_dtype_to_tensor_dtype(w.dtype)

    def info(name, kind=elem):
        return onnx.helper.make_tensor_value_info(name, kind, ["N", *w.shape(name)])

    inputs = []
    for n in nodes:
        if n.op == INPUT:  # integer inputs (an embedding's ids) are int64 as dagnet feeds them
            ints = np.dtype(n.attrs["dtype"]).kind in "iu"
            inputs.append(info(n.name, onnx.TensorProto.INT64 if ints else elem))
        elif n.op == PARAM:
            w.initializer(n.name, used[n.name])
        elif n.op in EXPORTS:
            EXPORTS[n.op](w, n)
        else:
            raise OnnxError(f"{n.name}: op '{n.op}' has no ONNX export; exportable ops: "
                            f"{', '.join(sorted(EXPORTS))}")
    onnx_graph = onnx.helper.make_graph(w.nodes, graph.name, inputs, [info(o) for o in outputs],
                                        w.initializers)
    model = onnx.helper.make_model(onnx_graph, producer_name="dagnet", producer_version=__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    # the oldest IR that holds this opset, so that older runtimes read the file too
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


# == load ======================================================================================
