"""ONNX interchange: export a Graph or ExecutionPlan as an ONNX model; load ONNX models as Graphs.

    dagnet.onnx.export(plan, "lenet.onnx")                 # params and state from the plan
    model = dagnet.onnx.load("lenet.onnx")                 # OnnxModel(graph, params, state)
    plan = dagnet.compile(model.graph, mode="eval", params=model.params, state=model.state)
    graph, params, state = dagnet.onnx.load("lenet.onnx")  # an OnnxModel unpacks too

Export writes opset 13 or newer (default 17), params and batchnorm running statistics as
initializers, and a symbolic batch dimension "N". Loss nodes are not exported: the model's
outputs are the scores each loss reads (the graph's outputs when it has no loss), and inputs
that only feed losses (labels) are dropped. Fused nodes (op "a+b", attrs["members"]) export as
their member ops. Batchnorm exports with its eval semantics (running statistics), dropout as
Dropout (the identity at inference).

Load maps each ONNX value to the dagnet node named after it (so an exported model loads back
with its names) and each initializer used as a weight to a param node named after it; graph
inputs keep their names and per-example shapes, the batch dimension dropped. Some ONNX nodes
merge or vanish: MatMul + Add of a bias is one affine, GlobalAveragePool + Flatten one
global_avg_pool, a Flatten that only feeds Gemms is skipped (affine flattens each example
itself), Identity and Constant only rename values. A Reshape to one dimension becomes a flatten.
`graph.outputs` stays the default (the sinks) when those are the ONNX outputs in order, so a loss
added with the builder becomes the output; otherwise they are set explicitly. Loading reads only
the protobuf: it never runs code from the model.

`onnx` is an optional dependency (`pip install dagnet[onnx]`), imported inside these functions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagnet import __version__
from dagnet.errors import DagnetError
from dagnet.graph import INPUT, PARAM, Graph, Node
from dagnet.ops import get_op
from dagnet.ops.base import as_pair

#: the oldest opset export writes: Softmax's axis semantics and Dropout's ratio input need 13
MIN_OPSET = 13

#: dagnet activation -> (ONNX op, {attr: default}); the attrs have the same names in both
ACTIVATIONS = {
    "relu": ("Relu", {}),
    "leaky_relu": ("LeakyRelu", {"alpha": 0.01}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "elu": ("Elu", {"alpha": 1.0}),
}

#: param role -> (initializer recorded in the param node, L2 decay applies)
ROLES = {"weight": ("he", True), "bias": ("zeros", False), "gamma": ("ones", False),
         "beta": ("zeros", False)}


class OnnxError(DagnetError):
    """An ONNX model cannot be written or read; the message names the nodes and the fix."""


class UnsupportedOnnxError(OnnxError):
    """The model uses ONNX ops dagnet cannot import; the message lists each with its node."""


def _onnx():
    """The onnx module, or an OnnxError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise OnnxError("ONNX support needs the onnx package: pip install dagnet[onnx]") from None
    return onnx


def _f32(v) -> float:
    """An ONNX float attribute as the shortest decimal of its float32 value (1e-5, not 9.99e-6)."""
    return float(str(np.float32(v)))


def _compact(pair):
    """(2, 2) -> 2, (2, 3) -> [2, 3]: the builder's own attr forms, so round trips compare equal."""
    pair = tuple(int(v) for v in pair)
    return pair[0] if pair[0] == pair[1] else list(pair)


# == export ====================================================================================
@dataclass
class _Writer:
    """Collects the ONNX nodes and initializers of one export."""

    onnx: object
    graph: Graph
    state: dict
    dtype: np.dtype

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


def _strides_pads(attrs: dict, stride_default) -> dict:
    stride = as_pair(attrs.get("stride", stride_default))
    pad = as_pair(attrs.get("pad", 0))
    return {"strides": list(stride), "pads": [*pad, *pad]}


def _export_conv(w: _Writer, n: Node) -> None:
    kernel = list(w.shape(n.inputs[1])[2:])
    w.add("Conv", n.inputs, n.name, kernel_shape=kernel, **_strides_pads(n.attrs, 1))


def _export_pool(onnx_op: str, **extra):
    def export(w: _Writer, n: Node) -> None:
        size = as_pair(n.attrs["size"])
        w.add(onnx_op, n.inputs, n.name, kernel_shape=list(size),
              **_strides_pads(n.attrs, n.attrs["size"]), **extra)
    return export


def _export_global_avg_pool(w: _Writer, n: Node) -> None:
    # ONNX keeps the (1, 1) plane; a Flatten named after the node gives dagnet's (N, C)
    pooled = w.add("GlobalAveragePool", n.inputs, f"{n.name}/pool")
    w.add("Flatten", [pooled], n.name, axis=1)


def _export_affine(w: _Writer, n: Node) -> None:
    x, weight, bias = n.inputs
    if len(w.shape(x)) > 1:
        x = w.add("Flatten", [x], f"{n.name}/flatten", axis=1)
    w.add("Gemm", [x, weight, bias], n.name, transB=0)


def _export_batchnorm(w: _Writer, n: Node) -> None:
    st = w.state.get(n.name) or get_op("batchnorm").init_state([w.shape(n.inputs[0])], n.attrs,
                                                               w.dtype)
    stats = [w.initializer(f"{n.name}.{k}", st[k]) for k in ("running_mean", "running_var")]
    w.add("BatchNormalization", [*n.inputs, *stats], n.name,
          epsilon=float(n.attrs.get("eps", 1e-5)), momentum=float(n.attrs.get("momentum", 0.9)))


def _export_dropout(w: _Writer, n: Node) -> None:
    ratio = w.initializer(f"{n.name}.ratio", n.attrs.get("p", 0.5))
    w.add("Dropout", [n.inputs[0], ratio], n.name)


def _export_reshape(w: _Writer, n: Node) -> None:
    # -1 for the batch and the resolved per-example shape: fully static but for N
    shape = w.initializer(f"{n.name}.shape", [-1, *w.shape(n.name)], dtype=np.int64)
    w.add("Reshape", [n.inputs[0], shape], n.name)


def _export_add(w: _Writer, n: Node) -> None:
    w.add("Add" if len(n.inputs) == 2 else "Sum", n.inputs, n.name)


def _export_activation(w: _Writer, n: Node) -> None:
    onnx_op, defaults = ACTIVATIONS[n.op]
    w.add(onnx_op, n.inputs, n.name, **{k: float(n.attrs.get(k, d)) for k, d in defaults.items()})


EXPORTERS = {
    "conv2d": _export_conv,
    "max_pool2d": _export_pool("MaxPool"),
    "avg_pool2d": _export_pool("AveragePool", count_include_pad=1),
    "global_avg_pool": _export_global_avg_pool,
    "affine": _export_affine,
    "batchnorm": _export_batchnorm,
    "dropout": _export_dropout,
    "flatten": lambda w, n: w.add("Flatten", n.inputs, n.name, axis=1),
    "reshape": _export_reshape,
    "add": _export_add,
    "concat": lambda w, n: w.add("Concat", n.inputs, n.name, axis=int(n.attrs.get("axis", 1))),
    "softmax": lambda w, n: w.add("Softmax", n.inputs, n.name, axis=1),
    **{op: _export_activation for op in ACTIVATIONS},
}


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
    onnx = _onnx()
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise OnnxError(f"opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}] "
                        f"(this onnx package's newest), got {opset}")
    graph, params, state = _unpack(graph_or_plan, params, state)
    graph = _unfuse(graph)
    outputs = _exported_outputs(graph)
    nodes = _needed(graph, outputs)
    used = _checked_params(nodes, params)
    all64 = used and all(a.dtype == np.float64 for a in used.values())
    w = _Writer(onnx, graph, state, np.dtype(np.float64 if all64 else np.float32))
    elem = onnx.helper.np_dtype_to_tensor_dtype(w.dtype)

    def info(name):
        return onnx.helper.make_tensor_value_info(name, elem, ["N", *w.shape(name)])

    inputs = []
    for n in nodes:
        if n.op == INPUT:
            inputs.append(info(n.name))
        elif n.op == PARAM:
            w.initializer(n.name, used[n.name])
        elif n.op in EXPORTERS:
            EXPORTERS[n.op](w, n)
        else:
            raise OnnxError(f"{n.name}: op '{n.op}' has no ONNX export; exportable ops: "
                            f"{', '.join(sorted(EXPORTERS))}")
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
@dataclass
class OnnxModel:
    """An imported model: the Graph, its params {name: array} and state {node: {...}}.

    Unpacks as `graph, params, state = load(path)`; compile with
    `dagnet.compile(m.graph, params=m.params, state=m.state)`."""

    graph: Graph
    params: dict
    state: dict

    def __iter__(self):
        return iter((self.graph, self.params, self.state))


class _Reader:
    """The state of one import: the Graph being built and what each ONNX value became."""

    def __init__(self, onnx, model, input_shapes: dict):
        self.onnx = onnx
        og = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.g = Graph(og.name or "onnx")
        self.consts = {i.name: onnx.numpy_helper.to_array(i) for i in og.initializer}
        self.values: dict[str, str] = {}  # ONNX value -> dagnet node
        # ONNX per-example shape of values whose dagnet node has another (GlobalAveragePool's
        # (C, 1, 1) is dagnet's (C,)): materialised by a reshape only if a consumer needs it
        self.views: dict[str, tuple] = {}
        self.params, self.state, self.param_of = {}, {}, {}
        self.users: dict[str, list] = {}
        for node in og.node:
            for v in node.input:
                self.users.setdefault(v, []).append(node)
        self.graph_outputs = [o.name for o in og.output]
        # names ONNX already uses: nodes dagnet invents (zero biases, reshapes) must avoid them
        self.reserved = set(self.consts) | {v for n in og.node for v in n.output}
        self.absorbed: set[int] = set()  # nodes imported together with an earlier one
        self.dtype = np.dtype(np.float32)
        self._inputs(og, input_shapes)

    # -- names and values --------------------------------------------------------------------
    def fresh(self, name: str, own: bool = False) -> str:
        """A valid, unused node name from `name` ('+' is reserved for fused groups); `own` says
        the name is the ONNX value's own, so it need not avoid the reserved names."""
        base = name.replace("+", "_").strip() or "value"
        cand, i = base, 1
        while cand in self.g or (not own and cand in self.reserved):
            cand, i = f"{base}_{i}", i + 1
        return cand

    def out_name(self, node) -> str:
        return self.fresh(node.output[0], own=True)

    def bind(self, node, dagnet_node: Node, view=None) -> None:
        """node's first output is dagnet_node's value (seen by ONNX with shape `view`)."""
        self.values[node.output[0]] = dagnet_node.name
        if view is not None and tuple(view) != tuple(self.g.shape_of(dagnet_node)):
            self.views[node.output[0]] = tuple(view)

    def alias(self, node, value: str) -> None:
        """node's first output is the same value as `value` (Identity, a Flatten dagnet skips)."""
        out = node.output[0]
        if value in self.consts:
            self.consts[out] = self.consts[value]
            return
        self.values[out] = self.values[value]
        if value in self.views:
            self.views[out] = self.views[value]

    def shape(self, value: str) -> tuple:
        """The ONNX per-example shape of a computed value."""
        return self.views.get(value) or tuple(self.g.shape_of(self.values[value]))

    def value(self, value: str, exact: bool = True, where: str = "graph output") -> str:
        """The dagnet node holding `value`; `exact` reshapes it to its ONNX shape if they differ."""
        if value in self.consts:
            raise OnnxError(f"{where}: '{value}' is a constant; dagnet imports constants only as "
                            f"weights, biases, statistics and shapes, not as data")
        if value not in self.values:
            raise OnnxError(f"{where}: '{value}' is produced by no earlier node and is no graph "
                            f"input (are the nodes in topological order?)")
        if exact and value in self.views:
            node = self.g.reshape(self.values[value], self.views.pop(value),
                                  name=self.fresh(f"{value}/reshape"))
            self.values[value] = node.name
        return self.values[value]

    def tensor(self, node, i: int = 0, exact: bool = True) -> str:
        return self.value(node.input[i], exact, _where(node))

    def const(self, node, i: int, what: str, default=None):
        """Input i of node as an array (an initializer or Constant); `default` if it is absent."""
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            if default is None:
                raise OnnxError(f"{_where(node)}: the {what} input is missing")
            return np.asarray(default)
        if name not in self.consts:
            raise OnnxError(f"{_where(node)}: the {what} '{name}' must be an initializer or a "
                            f"Constant; dagnet cannot import a computed {what}")
        return self.consts[name]

    def param(self, name: str, array, role: str) -> str:
        """The param node holding `array`, created once per initializer (a shared weight stays
        shared); an initializer used with two different transforms gets two params."""
        array = np.array(array, dtype=self.dtype, order="C")  # a writable copy: params train
        have = self.param_of.get(name)
        if have is not None and self.params[have].shape == array.shape \
                and np.array_equal(self.params[have], array):
            return have
        pname = self.fresh(name, own=have is None)
        init, decay = ROLES[role]
        self.g.param(pname, array.shape, init=init, decay=decay)
        self.params[pname] = array
        self.param_of.setdefault(name, pname)
        return pname

    def sole_user(self, value: str):
        """The only node reading `value` when it is no graph output, else None."""
        users = self.users.get(value, [])
        return users[0] if len(users) == 1 and value not in self.graph_outputs else None

    # -- graph inputs --------------------------------------------------------------------------
    def _inputs(self, og, input_shapes: dict) -> None:
        helper = self.onnx.helper
        for vi in og.input:
            if vi.name in self.consts:  # IR < 4 lists initializers among the inputs
                continue
            t = vi.type.tensor_type
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
            if dtype.kind != "f":
                raise OnnxError(f"graph input '{vi.name}' has type {dtype}; dagnet imports float "
                                f"inputs only")
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in t.shape.dim]
            shape = tuple(input_shapes.get(vi.name, dims[1:]))
            if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
                raise OnnxError(
                    f"graph input '{vi.name}' has shape {dims}: dagnet needs every dimension but "
                    f"the batch fixed; pass input_shapes={{'{vi.name}': (C, H, W)}} to load()")
            if not self.values:
                self.dtype = dtype
            node = self.g.input(self.fresh(vi.name, own=True), shape, str(dtype))
            self.values[vi.name] = node.name


def _where(node) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'"


def _attrs(onnx, node) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _extra_outputs_unused(r: _Reader, node) -> None:
    """dagnet ops have one output: MaxPool's indices, Dropout's mask etc. must be unused."""
    for out in node.output[1:]:
        if out and (out in r.users or out in r.graph_outputs):
            raise OnnxError(f"{_where(node)}: its output '{out}' is used, but dagnet's op "
                            f"computes only the first output")


def _pair(node, a: dict, key: str, default) -> tuple:
    v = tuple(int(x) for x in a.get(key, default))
    if len(v) != 2:
        raise OnnxError(f"{_where(node)}: {key} {list(v)}: dagnet imports 2-D windows only")
    return v


def _window(r: _Reader, node, a: dict, x: str, kernel: tuple):
    """(stride, pad, floor) of a 2-D window op on dagnet value x; OnnxError for what dagnet
    cannot express (dilation, asymmetric pads)."""
    if any(d != 1 for d in a.get("dilations", (1, 1))):
        raise OnnxError(f"{_where(node)}: dilations {list(a['dilations'])} are not supported "
                        f"(dagnet windows are dense)")
    in_hw = tuple(r.g.shape_of(x))[-2:]
    stride = _pair(node, a, "strides", (1, 1))
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((-(-h // s) - 1) * s + k - h, 0) for h, k, s in zip(in_hw, kernel, stride)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    else:
        pads = [int(p) for p in a.get("pads", (0, 0, 0, 0))]
    if pads[:2] != pads[2:]:
        raise OnnxError(f"{_where(node)}: pads {pads} (auto_pad {auto}) are asymmetric "
                        f"(begin {pads[:2]}, end {pads[2:]}); dagnet pads both sides equally: "
                        f"re-export with symmetric padding")
    pad = tuple(pads[:2])
    # ONNX floors a stride that does not tile the input; dagnet asks for that with floor=True
    floor = any((h + 2 * p - k) % s for h, k, s, p in zip(in_hw, kernel, stride, pad))
    return stride, pad, floor


def _zeros_bias(r: _Reader, node, m: int) -> str:
    return r.param(f"{node.output[0]}.b", np.zeros(m), "bias")


def _bias_vector(node, c, m: int):
    """A Gemm/Add bias broadcast along the batch: shape (), (M,) or (1, M) -> (M,)."""
    try:
        return np.broadcast_to(c, (1, m)).reshape(m)
    except ValueError:
        raise OnnxError(f"{_where(node)}: bias of shape {c.shape} does not broadcast to one "
                        f"value per output ({m},); give it shape ({m},)") from None


def _import_conv(r: _Reader, node, a: dict) -> None:
    x = r.tensor(node)
    w = r.const(node, 1, "weight")
    if w.ndim != 4:
        raise OnnxError(f"{_where(node)}: weight shape {w.shape}: dagnet imports 2-D "
                        f"convolutions only")
    if a.get("group", 1) != 1:
        raise OnnxError(f"{_where(node)}: group={a['group']} (grouped or depthwise convolution) "
                        f"is not supported; dagnet convolutions have group 1")
    kernel = tuple(w.shape[2:])
    stride, pad, floor = _window(r, node, a, x, kernel)
    f = w.shape[0]
    b = (r.param(node.input[2], r.const(node, 2, "bias"), "bias")
         if len(node.input) > 2 and node.input[2] else _zeros_bias(r, node, f))
    r.bind(node, r.g.conv2d(x, filters=f, size=_compact(kernel), stride=_compact(stride),
                            pad=_compact(pad), floor=floor, name=r.out_name(node),
                            w=r.param(node.input[1], w, "weight"), b=b))


def _import_pool(op: str):
    def imp(r: _Reader, node, a: dict) -> None:
        x = r.tensor(node)
        _extra_outputs_unused(r, node)
        kernel = _pair(node, a, "kernel_shape", ())
        stride, pad, floor = _window(r, node, a, x, kernel)
        if a.get("ceil_mode", 0) and floor:
            raise OnnxError(f"{_where(node)}: ceil_mode=1 with a stride that does not tile the "
                            f"input keeps a partial window dagnet drops; pad the input or use "
                            f"ceil_mode=0")
        if op == "avg_pool2d" and any(pad) and not a.get("count_include_pad", 0):
            raise OnnxError(f"{_where(node)}: count_include_pad=0 with padding: dagnet's "
                            f"avg_pool2d counts the zero padding in the mean (count_include_pad=1)")
        r.bind(node, getattr(r.g, op)(x, size=_compact(kernel), stride=_compact(stride),
                                      pad=_compact(pad), floor=floor, name=r.out_name(node)))
    return imp


def _import_global_pool(r: _Reader, node, keepdims: bool = True) -> None:
    """global_avg_pool; a Flatten that is its only reader joins it and names it (the pair
    export writes), else ONNX's (N, C, 1, 1) is kept as a view."""
    x = r.tensor(node)
    flat = r.sole_user(node.output[0]) if keepdims else None
    if flat is not None and flat.op_type == "Flatten" and _attrs(r.onnx, flat).get("axis", 1) == 1:
        r.absorbed.add(id(flat))
        r.bind(flat, r.g.global_avg_pool(x, name=r.out_name(flat)))
        return
    n = r.g.global_avg_pool(x, name=r.out_name(node))
    r.bind(node, n, view=(r.g.shape_of(n)[0], 1, 1) if keepdims else None)


def _import_reduce_mean(r: _Reader, node, a: dict) -> None:
    """ReduceMean over (H, W) of an (N, C, H, W) value: global_avg_pool (torch's dynamo export)."""
    rank = len(r.shape(node.input[0])) + 1
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:  # opset 18 moved axes to an input
        axes = r.const(node, 1, "axes").tolist()
    if rank != 4 or axes is None or sorted(int(x) % 4 for x in axes) != [2, 3]:
        raise OnnxError(f"{_where(node)}: dagnet imports ReduceMean only over axes (2, 3) of an "
                        f"(N, C, H, W) value (a global average pool), got axes {axes}, rank {rank}")
    _import_global_pool(r, node, bool(a.get("keepdims", 1)))


def _reshape_to(r: _Reader, node, target: tuple) -> None:
    """node reshapes each example to `target`: a flatten/reshape node, or no node when dagnet's
    value has that shape already or only Gemm/MatMul read it (affine flattens itself)."""
    x = r.tensor(node, exact=False)
    out = node.output[0]
    users = r.users.get(out, [])
    skip = out not in r.graph_outputs and (
        tuple(r.g.shape_of(x)) == target or users and all(u.op_type in ("Gemm", "MatMul")
                                                           for u in users))
    if skip:
        r.values[out] = x
        if tuple(r.g.shape_of(x)) != target:
            r.views[out] = target
    elif len(target) == 1:
        r.bind(node, r.g.flatten(x, name=r.out_name(node)))
    else:
        r.bind(node, r.g.reshape(x, target, name=r.out_name(node)))


def _import_flatten(r: _Reader, node, a: dict) -> None:
    shape = r.shape(node.input[0])
    axis = int(a.get("axis", 1))
    if axis % (len(shape) + 1) != 1:
        raise OnnxError(f"{_where(node)}: axis={axis} mixes the batch with other dimensions; "
                        f"dagnet flattens each example (axis=1)")
    _reshape_to(r, node, (int(np.prod(shape, dtype=np.int64)),))


def _import_reshape(r: _Reader, node, a: dict) -> None:
    shape = r.shape(node.input[0])
    target = [int(d) for d in r.const(node, 1, "shape")]
    if not a.get("allowzero", 0):  # 0 copies the input's dimension; the batch stays symbolic
        full = [None, *shape]
        target = [full[i] if d == 0 and i < len(full) else d for i, d in enumerate(target)]
    batch, rest = target[0], target[1:]
    if not rest or not (batch is None or batch == -1 and -1 not in rest) or 0 in rest:
        raise OnnxError(f"{_where(node)}: target shape {r.const(node, 1, 'shape').tolist()} must "
                        f"keep the batch: 0 or -1 first, and positive sizes (at most one -1) after")
    size = int(np.prod(shape, dtype=np.int64))
    known = int(np.prod([d for d in rest if d != -1], dtype=np.int64))
    if -1 in rest:
        rest = [size // known if d == -1 else d for d in rest]
    if int(np.prod(rest, dtype=np.int64)) != size:
        raise OnnxError(f"{_where(node)}: cannot reshape per-example shape {shape} ({size} "
                        f"values) to {rest}")
    _reshape_to(r, node, tuple(rest))


def _import_gemm(r: _Reader, node, a: dict) -> None:
    if a.get("transA", 0):
        raise OnnxError(f"{_where(node)}: transA=1 transposes the batch into the features; "
                        f"dagnet's affine takes A as (N, D)")
    x = r.tensor(node, exact=False)
    b = r.const(node, 1, "weight")
    w = np.ascontiguousarray(b.T if a.get("transB", 0) else b)
    alpha, beta = _f32(a.get("alpha", 1.0)), _f32(a.get("beta", 1.0))
    w = w * alpha if alpha != 1 else w
    m = w.shape[1]
    if len(node.input) > 2 and node.input[2]:
        c = _bias_vector(node, r.const(node, 2, "bias"), m)
        bias = r.param(node.input[2], c * beta if beta != 1 else c, "bias")
    else:
        bias = _zeros_bias(r, node, m)
    r.bind(node, r.g.affine(x, m, name=r.out_name(node), w=r.param(node.input[1], w, "weight"),
                            b=bias))


def _import_matmul(r: _Reader, node, a: dict) -> None:
    """MatMul(X, W), and the Add of a constant bias right after it, as one affine."""
    if len(r.shape(node.input[0])) != 1:
        raise OnnxError(f"{_where(node)}: dagnet imports MatMul of an (N, D) value only, got "
                        f"(N, {', '.join(map(str, r.shape(node.input[0])))})")
    x = r.tensor(node, exact=False)
    w = r.const(node, 1, "weight")
    if w.ndim != 2:
        raise OnnxError(f"{_where(node)}: weight shape {w.shape}: dagnet needs a (D, M) matrix")
    m = w.shape[1]
    add, last = r.sole_user(node.output[0]), node
    is_add = add is not None and add.op_type == "Add"
    consts = [v for v in add.input if v in r.consts] if is_add else []
    if consts:
        bias = r.param(consts[0], _bias_vector(add, r.consts[consts[0]], m), "bias")
        r.absorbed.add(id(add))
        last = add
    else:
        bias = _zeros_bias(r, node, m)
    r.bind(last, r.g.affine(x, m, name=r.out_name(last), w=r.param(node.input[1], w, "weight"),
                            b=bias))


def _import_batchnorm(r: _Reader, node, a: dict) -> None:
    x = r.tensor(node)
    if a.get("training_mode", 0):
        raise OnnxError(f"{_where(node)}: training_mode=1; export the model in eval mode "
                        f"(dagnet picks the mode when it runs the graph)")
    _extra_outputs_unused(r, node)
    scale, bias, mean, var = (r.const(node, i, what) for i, what in
                              enumerate(("scale", "bias", "mean", "var"), start=1))
    n = r.g.batchnorm(x, eps=_f32(a.get("epsilon", 1e-5)), momentum=_f32(a.get("momentum", 0.9)),
                      name=r.out_name(node), gamma=r.param(node.input[1], scale, "gamma"),
                      beta=r.param(node.input[2], bias, "beta"))
    r.state[n.name] = {"running_mean": np.array(mean, dtype=r.dtype),
                       "running_var": np.array(var, dtype=r.dtype)}
    r.bind(node, n)


def _import_dropout(r: _Reader, node, a: dict) -> None:
    x = r.tensor(node)
    _extra_outputs_unused(r, node)
    if len(node.input) > 2 and node.input[2]:
        r.const(node, 2, "training_mode")  # a computed mode cannot be imported; dagnet picks it
    p = float(r.const(node, 1, "ratio", default=a.get("ratio", 0.5)))
    r.bind(node, r.g.dropout(x, p=_f32(p), name=r.out_name(node)))


def _import_softmax(r: _Reader, node, a: dict) -> None:
    rank = len(r.shape(node.input[0])) + 1
    axis = int(a.get("axis", -1 if r.opset >= 13 else 1))
    if rank != 2 or axis % rank != 1:
        raise OnnxError(f"{_where(node)}: dagnet's softmax takes (N, C) over C; got rank {rank}, "
                        f"axis {axis}")
    r.bind(node, r.g.softmax(r.tensor(node), name=r.out_name(node)))


def _import_add(r: _Reader, node, a: dict) -> None:
    consts = [v for v in node.input if v in r.consts]
    if consts:
        raise OnnxError(f"{_where(node)}: adds the constant {consts[0]!r}; dagnet imports a "
                        f"constant add only as the bias right after a MatMul")
    xs = [r.tensor(node, i) for i in range(len(node.input))]
    if len(xs) == 1:
        r.alias(node, node.input[0])
        return
    r.bind(node, r.g.add(*xs, name=r.out_name(node)))


def _import_concat(r: _Reader, node, a: dict) -> None:
    rank = len(r.shape(node.input[0])) + 1
    axis = int(a["axis"]) % rank
    if axis == 0:
        raise OnnxError(f"{_where(node)}: concatenates along the batch axis; dagnet joins "
                        f"features (axis >= 1)")
    xs = [r.tensor(node, i) for i in range(len(node.input))]
    r.bind(node, r.g.concat(*xs, axis=axis, name=r.out_name(node)))


def _import_activation(op: str):
    defaults = ACTIVATIONS[op][1]

    def imp(r: _Reader, node, a: dict) -> None:
        attrs = {k: _f32(a.get(k, d)) for k, d in defaults.items()}
        if attrs.get("alpha", 1) <= 0:
            raise OnnxError(f"{_where(node)}: alpha={attrs['alpha']}; dagnet's {op} needs "
                            f"alpha > 0")
        r.bind(node, r.g.op(op, r.tensor(node), name=r.out_name(node), **attrs))
    return imp


def _import_constant(r: _Reader, node, a: dict) -> None:
    onnx = r.onnx
    attr = node.attribute[0]
    r.consts[node.output[0]] = (onnx.numpy_helper.to_array(attr.t) if attr.name == "value"
                                else np.asarray(onnx.helper.get_attribute_value(attr)))


IMPORTERS = {
    "Conv": _import_conv,
    "MaxPool": _import_pool("max_pool2d"),
    "AveragePool": _import_pool("avg_pool2d"),
    "GlobalAveragePool": lambda r, node, a: _import_global_pool(r, node),
    "ReduceMean": _import_reduce_mean,
    "Gemm": _import_gemm,
    "MatMul": _import_matmul,
    "Flatten": _import_flatten,
    "Reshape": _import_reshape,
    "BatchNormalization": _import_batchnorm,
    "Dropout": _import_dropout,
    "Softmax": _import_softmax,
    "Add": _import_add,
    "Sum": _import_add,
    "Concat": _import_concat,
    "Identity": lambda r, node, a: r.alias(node, node.input[0]),
    "Constant": _import_constant,
    **{onnx_op: _import_activation(op) for op, (onnx_op, _) in ACTIVATIONS.items()},
}


def _check_supported(og) -> None:
    """One UnsupportedOnnxError listing every node whose op dagnet cannot import."""
    bad = [f"  {n.op_type if n.domain in ('', 'ai.onnx') else n.domain + '.' + n.op_type} "
           f"(node '{n.name or n.output[0]}')"
           for n in og.node if n.domain not in ("", "ai.onnx") or n.op_type not in IMPORTERS]
    if bad:
        raise UnsupportedOnnxError(
            f"the model uses {len(bad)} node(s) with ops dagnet cannot import:\n" + "\n".join(bad)
            + f"\nsupported ops: {', '.join(sorted(IMPORTERS))}")


def load(path_or_model, input_shapes: dict | None = None) -> OnnxModel:
    """Import an ONNX model (a path or a ModelProto) as an OnnxModel(graph, params, state).

    input_shapes {input: per-example shape} fixes inputs whose non-batch dimensions are symbolic."""
    onnx = _onnx()
    model = (path_or_model if isinstance(path_or_model, onnx.ModelProto)
             else onnx.load(str(path_or_model)))
    _check_supported(model.graph)
    r = _Reader(onnx, model, dict(input_shapes or {}))
    for node in model.graph.node:
        if id(node) not in r.absorbed:
            IMPORTERS[node.op_type](r, node, _attrs(onnx, node))
    outputs = [r.value(o) for o in r.graph_outputs]
    if outputs != r.g.outputs:
        r.g.outputs = outputs
    return OnnxModel(r.g, r.params, r.state)
