"""Import: an ONNX model as an OnnxModel(graph, params, state).

Each ONNX value maps to the dagnet node named after it (so an exported model loads back with
its names), each initializer used as a weight to a param node named after it, one used as data
to a constant node (a param where dagnet's export listed it among its params in the model's
metadata); graph inputs keep their names and per-example shapes, the batch dimension dropped
(unless `unbatched` names them: dagnet's export lists its unbatched inputs in the model's
metadata). Each node is read by its row of the mapping table (mapping.py), except
nodes that depend on no data input: those fold into constants (fold.py). Models older than
opset 7 are first converted by onnx.version_converter (upgrade). `graph.outputs` stays the
default (the sinks) when those are the ONNX outputs in order, so a loss added with the builder
becomes the output; otherwise they are set explicitly. Loading reads only the protobuf: it never runs code from the model
(folding evaluates standard-domain ONNX ops only, with onnx.reference).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from dagnet.errors import AttrError
from dagnet.graph import Graph, Node
from dagnet.onnx import fold
from dagnet.onnx.common import (PARAMS_KEY, UNBATCHED_KEY, ConstantAsDataError, NotConstantError,
                                OnnxError, UnsupportedOnnxError, f32, onnx_attrs, onnx_module,
                                where)
from dagnet.onnx.mapping import IMPORTS
from dagnet.onnx.untrusted import check_graph, check_input_shapes, read_model, to_array

#: param role -> (initializer recorded in the param node, L2 decay applies)
#: float32 constants up to this size are read as the shortest decimals of their values
SHORT_DECIMALS = 4096
ROLES = {"weight": ("he", True), "bias": ("zeros", False), "gamma": ("ones", False),
         "beta": ("zeros", False), "slope": ("constant", False)}


@dataclass
class OnnxModel:
    """An imported model: the Graph, its params {name: array} and state {node: {...}}.

    Unpacks as `graph, params, state = load(path)`; compile with
    `dagnet.compile(m.graph, params=m.params, state=m.state)`. `notes` says what the import
    assumed or changed (an opset conversion, a fixed batch of 1 read as the batch), one line
    each."""

    graph: Graph
    params: dict
    state: dict
    notes: list = field(default_factory=list)

    def __iter__(self):
        return iter((self.graph, self.params, self.state))


class Reader:
    """The state of one import: the Graph being built and what each ONNX value became."""

    def __init__(self, onnx, model, input_shapes: dict, path: str = "the model",
                 unbatched=(), unfolded=(), trained=()):
        self.onnx = onnx
        og = model.graph
        self.opset = opset_of(model)
        self.g = Graph(og.name or "onnx")
        self.consts = {i.name: to_array(onnx, i, path) for i in og.initializer}
        # values that depend on the batch size (folded from a Shape): {value: (at 61, at 67)}
        self.batched: dict[str, tuple] = {}
        self.nodes = list(og.node)  # kept: their ids key `folded` and `absorbed`
        self.folded = fold.plan(self.nodes, set(self.consts) - set(unfolded))
        self.notes: list[str] = []
        self.values: dict[str, str] = {}  # ONNX value -> dagnet node
        # ONNX per-example shape of values whose dagnet node has another (GlobalAveragePool's
        # (C, 1, 1) is dagnet's (C,)): materialised by a reshape only if a consumer needs it
        self.views: dict[str, tuple] = {}
        self.params, self.state, self.param_of = {}, {}, {}
        self.users: dict[str, list] = {}
        for node in self.nodes:
            for v in node.input:
                self.users.setdefault(v, []).append(node)
        self.graph_outputs = [o.name for o in og.output]
        # names ONNX already uses: nodes dagnet invents (zero biases, reshapes) must avoid them
        self.reserved = set(self.consts) | {v for n in og.node for v in n.output}
        self.absorbed: set[int] = set()  # nodes imported together with an earlier one
        self.current = None  # the ONNX node being imported, for messages
        self.computed = {v for n in og.node for v in n.output} - set(self.consts)
        self.constant_nodes: dict[str, str] = {}  # initializer -> the constant node holding it
        self.trained = set(trained)  # initializers the exporter listed as params
        self.dtype, self.dtype_set = np.dtype(np.float32), False
        self.batch_of_one = None  # every batched data input declares a leading 1 (None: none)
        self._inputs(og, input_shapes, unbatched)

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
        self.values[out] = self.value(value, exact=False, where=where(node))
        if value in self.views:
            self.views[out] = self.views[value]

    def shape(self, value: str) -> tuple:
        """The ONNX per-example shape of a computed value (OnnxError naming the node being
        imported if `value` is a constant or unknown)."""
        if value in self.views:
            return self.views[value]
        at = where(self.current) if self.current is not None else "graph output"
        return tuple(self.g.shape_of(self.value(value, exact=False, where=at)))

    def value(self, value: str, exact: bool = True, where: str = "graph output") -> str:
        """The dagnet node holding `value`; `exact` reshapes it to its ONNX shape if they differ."""
        if value in self.batched:
            raise OnnxError(f"{where}: '{value}' is computed from the batch size (a Shape of "
                            f"data); dagnet reads such values only as a Reshape's target shape")
        if value in self.consts:
            raise ConstantAsDataError(f"{where}: '{value}' is a constant; dagnet imports constants "
                                      f"only as weights, biases, statistics and shapes, not as "
                                      f"data", value)
        if value not in self.values:
            raise OnnxError(f"{where}: '{value}' is produced by no earlier node and is no graph "
                            f"input (are the nodes in topological order?)")
        if exact and value in self.views:
            node = self.g.reshape(self.values[value], self.views.pop(value),
                                  name=self.fresh(f"{value}/reshape"))
            self.values[value] = node.name
        return self.values[value]

    def tensor(self, node, i: int = 0, exact: bool = True) -> str:
        return self.value(node.input[i], exact, where(node))

    def const(self, node, i: int, what: str, default=None):
        """Input i of node as an array (an initializer or Constant); `default` if it is absent."""
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            if default is None:
                raise OnnxError(f"{where(node)}: the {what} input is missing")
            return np.asarray(default)
        if name in self.batched:
            raise NotConstantError(f"{where(node)}: the {what} '{name}' is computed from the "
                                   f"batch size (a Shape of data); dagnet needs it fixed", name)
        if name not in self.consts:
            raise NotConstantError(f"{where(node)}: the {what} '{name}' must be an initializer "
                                   f"or a Constant; dagnet cannot import a computed {what}", name)
        return self.consts[name]

    def operand(self, node, i: int) -> str:
        """The dagnet node of input i of node as data: a computed value, a constant node
        holding the initializer or Constant (made once per value; never trained), or the param
        of an initializer dagnet's export listed among its params."""
        name = node.input[i]
        if name not in self.consts:
            return self.tensor(node, i)
        if name in self.trained:  # a param read as data (a bias added, a position table)
            a = np.asarray(self.consts[name])
            return self.param(name, a, "bias" if a.ndim == 1 else "weight")
        if name not in self.constant_nodes:
            a = np.asarray(self.consts[name])
            if a.dtype.kind == "b":
                a = a.astype(self.dtype)  # dagnet's masks are 0.0/1.0
            elif a.dtype == np.float32 and a.size <= SHORT_DECIMALS:
                # the shortest decimals of the float32 values, as attrs get (f32): the 0.1 the
                # model was written with, not 0.10000000149 (the same float32 either way)
                a = np.array([f32(v) for v in a.ravel()]).reshape(a.shape)
            dtype = "int64" if a.dtype.kind in "iu" else None
            self.constant_nodes[name] = self.g.constant(a, name=self.fresh(name, own=True),
                                                        dtype=dtype).name
        return self.constant_nodes[name]

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
    def _inputs(self, og, input_shapes: dict, unbatched) -> None:
        helper = self.onnx.helper
        for vi in og.input:
            if vi.name in self.consts:  # IR < 4 lists initializers among the inputs
                continue
            kind = vi.type.WhichOneof("value")
            if kind != "tensor_type":
                raise OnnxError(f"graph input '{vi.name}' is a {str(kind).replace('_type', '')}; "
                                f"dagnet imports tensor inputs only")
            t = vi.type.tensor_type
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
            if dtype.kind not in "fiu":
                raise OnnxError(f"graph input '{vi.name}' has type {dtype}; dagnet imports float "
                                f"inputs and integer ones (ids, labels, indices) only")
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in t.shape.dim]
            batched = unbatched is not True and vi.name not in unbatched
            shape = tuple(input_shapes.get(vi.name, dims[1:] if batched else dims))
            if (batched and not shape and dtype.kind == "f") or not all(
                    isinstance(d, (int, np.integer)) and d > 0 for d in shape):
                raise OnnxError(
                    f"graph input '{vi.name}' has shape {dims}: dagnet needs every dimension but "
                    f"the batch fixed; pass input_shapes={{'{vi.name}': (C, H, W)}} to load()")
            if dtype.kind != "f":  # integer ids (an embedding's), indices: int64, as dagnet feeds them
                dtype = np.dtype(np.int64)
            elif not self.dtype_set:
                self.dtype, self.dtype_set = dtype, True
            if batched:
                self.batch_of_one = self.batch_of_one is not False and dims[:1] == [1]
            node = self.g.input(self.fresh(vi.name, own=True), shape, str(dtype), batched=batched)
            self.values[vi.name] = node.name


#: the oldest opset the importers read; older models are converted to it by
#: onnx.version_converter (whose adapters exist only where a conversion is exact): before opset 7
#: Add broadcast by attributes and BatchNormalization, Dropout carried is_test (Caffe2's exports)
OLDEST_READ = 7


def upgrade(onnx, model) -> tuple:
    """(model at opset OLDEST_READ or newer, notes): older models converted."""
    opset = opset_of(model)
    if opset >= OLDEST_READ:
        return model, []
    from onnx import version_converter

    try:
        model = version_converter.convert_version(model, OLDEST_READ)
    except Exception as e:  # noqa: BLE001 - the converter raises several kinds; say which
        raise OnnxError(f"the model's opset {opset} is older than {OLDEST_READ}, the oldest "
                        f"dagnet reads, and onnx.version_converter cannot convert it "
                        f"({str(e).strip().splitlines()[0][:160]}); re-export it at opset "
                        f"{OLDEST_READ} or newer") from None
    return model, [f"converted from opset {opset} to {OLDEST_READ} by onnx.version_converter"]


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def check_supported(og, unfolded=()) -> None:
    """One UnsupportedOnnxError listing every node whose op dagnet cannot import and which does
    not fold into a constant (fold.plan)."""
    nodes = list(og.node)
    folded = fold.plan(nodes, {i.name for i in og.initializer} - set(unfolded))
    bad = [f"  {n.op_type if n.domain in ('', 'ai.onnx') else n.domain + '.' + n.op_type} "
           f"(node '{n.name or n.output[0]}')" for n in nodes if id(n) not in folded
           and (n.domain not in ("", "ai.onnx") or n.op_type not in IMPORTS)]
    if bad:
        raise UnsupportedOnnxError(
            f"the model uses {len(bad)} node(s) with ops dagnet cannot import:\n" + "\n".join(bad)
            + f"\nsupported ops: {', '.join(sorted(IMPORTS))}")


def load(path_or_model, input_shapes: dict | None = None, unbatched=None,
         unfolded=()) -> OnnxModel:
    """Import an ONNX model (a path or a ModelProto) as an OnnxModel(graph, params, state, notes).

    input_shapes {input: per-example shape} fixes inputs whose non-batch dimensions are symbolic.
    unbatched: the inputs to read with their full shapes, without a batch axis (True: all);
    default those dagnet's export listed in the model's metadata, else none: the first axis of
    an input is its batch axis. Nodes that depend on no data input fold into constants
    (fold.py), except through the initializers named in `unfolded` (the backend's inputs frozen
    to given values: what reads them must be imported, not folded by ONNX's reference
    implementation)."""
    onnx = onnx_module()
    if isinstance(path_or_model, onnx.ModelProto):
        model, path = path_or_model, "the model"
        check_graph(model)
    else:
        model, path = read_model(path_or_model), os.fspath(path_or_model)
    model, notes = upgrade(onnx, model)
    check_supported(model.graph, unfolded)
    props = {p.key: p.value for p in model.metadata_props}
    if unbatched is None:
        unbatched = [v for v in props.get(UNBATCHED_KEY, "").split(",") if v]
    trained = [v for v in props.get(PARAMS_KEY, "").split(",") if v]
    shapes = check_input_shapes(input_shapes)
    unknown = sorted(set(shapes) - {vi.name for vi in model.graph.input})
    if unknown:
        raise OnnxError(f"input_shapes names {unknown}, but the model's inputs are "
                        f"{[vi.name for vi in model.graph.input][:8]}")
    r = None
    try:
        r = Reader(onnx, model, shapes, path, unbatched, unfolded, trained)
        r.notes += notes
        _import_nodes(onnx, r)
        r.current = None
        for o in r.graph_outputs:
            if o in r.consts:
                raise ConstantAsDataError(f"graph output '{o}' is a constant: it depends on no "
                                          f"graph input, so it folded at import, and dagnet "
                                          f"computes outputs from inputs; drop it from the "
                                          f"outputs", o)
        outputs = [r.value(o) for o in r.graph_outputs]
    except MALFORMED as e:
        # The model is untrusted input: an attribute of the wrong type or a missing one, a
        # name that is not text, a zero stride, ... surface as these; all mean the same here.
        node = r.current if r is not None else None
        at = where(node) if node is not None else "its inputs and outputs"
        raise OnnxError(f"{path}: {at} cannot be imported ({type(e).__name__}: {str(e)[:100]}); "
                        f"the model is malformed, or uses the op in a way dagnet does not "
                        f"support") from None
    if outputs != r.g.outputs:
        r.g.outputs = outputs
    return OnnxModel(r.g, r.params, r.state, r.notes)


def _import_nodes(onnx, r: Reader) -> None:
    """Fold or import every node, in order (r.current: the one being read)."""
    # constant subgraphs first: they need nothing imported, and an exporter may place a bias's
    # Constant after the MatMul that reads it (as one affine) when it imports
    for node in r.nodes:
        if id(node) in r.folded and all(v in r.consts for v in node.input if v):
            r.current = node
            fold.evaluate(r, node)
            r.absorbed.add(id(node))
    for node in r.nodes:
        if id(node) in r.absorbed:
            continue
        r.current = node
        if id(node) in r.folded:
            fold.evaluate(r, node)
            continue
        try:
            IMPORTS[node.op_type](r, node, onnx_attrs(onnx, node))
        except AttrError as e:  # a value the dagnet op's declarations refuse
            raise OnnxError(f"{where(node)}: {e}") from None


#: what importer code raises on a malformed model (a DagnetError passes through as it is)
MALFORMED = (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError,
             AttributeError, UnicodeDecodeError)
