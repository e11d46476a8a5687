"""dagnet as an ONNX backend: `onnx.backend.base.Backend`, the interface onnxruntime implements.

    import dagnet.onnx.backend as backend
    rep = backend.prepare(model)              # checks the model and that dagnet imports its ops
    y, = rep.run([x])                         # outputs in the model's order (also by name)
    backend.run_model(model, [x]); backend.run_node(node, [x, w])

A BackendRep imports the model with dagnet.onnx.load when it first runs, compiles it in eval
mode and keeps the plan while the inputs keep their shapes. Two things a general ONNX runtime
does that dagnet's importer does not are bridged here, each exactly or not at all:

- an input read as a weight, bias, statistic, shape or ratio (node tests feed Conv's W as an
  input) is frozen to the value given, as if it were an initializer; the plan is rebuilt when
  such a value changes;
- dagnet's values carry a batch axis, so each data input's leading dimension is fed as the
  batch. That is exact because the importer refuses every op that would mix examples (a
  softmax, concat, reshape or reduction over axis 0); inputs whose leading dimensions differ,
  and values of rank < 2 used as data, are refused with NoBatchAxisError.

This module compiles, so it sits above the core with the facade (tests/test_layering.py).
"""
from __future__ import annotations

import numpy as np

from dagnet.compiler import compile as compile_graph
from dagnet.onnx.common import (ConstantAsDataError, NoBatchAxisError, NotConstantError,
                                OnnxError, onnx_module)
from dagnet.onnx.load import check_supported, load

onnx = onnx_module()
from onnx.backend.base import Backend, BackendRep, namedtupledict  # noqa: E402

DEVICES = ("CPU",)


class DagnetRep(BackendRep):
    """A prepared model: run(inputs) imports (once per input signature), compiles and runs it."""

    def __init__(self, model):
        self.model = model
        og = model.graph
        inits = {i.name for i in og.initializer}
        self.input_names = [vi.name for vi in og.input if vi.name not in inits]
        self.output_names = [o.name for o in og.output]
        self.declared = {o.name: _static_shape(o) for o in og.output}
        self._built = None  # (signature, frozen {input: array}, plan, data inputs, outputs)

    def run(self, inputs, **kwargs):
        """The model's outputs for `inputs` (a list in graph-input order, a dict by name, or one
        array), as a tuple that also answers to the output names."""
        feeds = self._feeds(inputs)
        built = self._built
        if built is None or built[0] != _signature(feeds) or not all(
                np.array_equal(v, feeds[k]) for k, v in built[1].items()):
            built = self._built = self._build(feeds)
        _, _, plan, data, outputs = built
        got = plan.forward({k: feeds[k] for k in data}, mode="eval", outputs=outputs)
        values = [got[n] for n in outputs]
        for name, v in zip(self.output_names, values):
            want = self.declared[name]
            if want is not None and tuple(v.shape) != want:
                raise OnnxError(f"output '{name}': dagnet computed shape {tuple(v.shape)}, the "
                                f"model declares {want}; the importer mapped an op wrongly "
                                f"(please report it with the model)")
        return namedtupledict("Outputs", self.output_names)(*values)

    # -- helpers -------------------------------------------------------------------------------
    def _feeds(self, inputs) -> dict:
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise OnnxError(f"run: inputs {missing} are missing; the model's inputs are "
                                f"{self.input_names}")
            feeds = {n: inputs[n] for n in self.input_names}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise OnnxError(f"run: got {len(inputs)} input(s), the model takes "
                                f"{len(self.input_names)}: {self.input_names}")
            feeds = dict(zip(self.input_names, inputs))
        return {k: _array(v) for k, v in feeds.items()}

    def _build(self, feeds: dict):
        """Import with each input frozen that the importer reads as a constant, then compile."""
        # inputs without a dimension to spare for the batch can only be constants to dagnet, and
        # matrix operands have no batch axis (the importer would read them as batched data)
        matrices = _matrix_inputs(self.model.graph)
        frozen = {k: v for k, v in feeds.items()
                  if v.ndim < 2 or (k in matrices and v.ndim == 2)}
        while True:
            try:
                # frozen inputs never fold: the nodes reading them are dagnet's to run
                m = load(_with_initializers(self.model, frozen),
                         input_shapes={k: v.shape[1:] for k, v in feeds.items() if k not in frozen},
                         unfolded=frozen)
                break
            except NotConstantError as e:
                if e.value not in feeds or e.value in frozen:
                    raise
                frozen[e.value] = feeds[e.value]
            except ConstantAsDataError as e:
                if e.value not in frozen:
                    raise
                v = feeds[e.value]
                raise NoBatchAxisError(
                    f"input '{e.value}' of shape {v.shape} is used as data, but the dagnet "
                    f"backend feeds each input's leading dimension as the batch, so data needs "
                    f"rank >= 2") from None
        data = [n.name for n in m.graph.inputs]
        _check_batch({k: feeds[k] for k in data})
        dtype = feeds[data[0]].dtype if data else np.dtype(np.float32)
        plan = compile_graph(m.graph, mode="eval", params=m.params, state=m.state, dtype=dtype)
        data = [k for k in data if k in plan.input_specs]
        frozen = {k: np.array(v) for k, v in frozen.items()}
        return _signature(feeds), frozen, plan, data, list(m.graph.outputs)


#: {op: input positions} where a 2-D graph input is a matrix, never a batch of rows: MatMul's B,
#: Gemm's B and C (ONNX's node tests feed weights as inputs)
MATRIX_INPUTS = {"MatMul": (1,), "Gemm": (1, 2)}


def _matrix_inputs(og) -> set:
    """Graph inputs read at a MATRIX_INPUTS position of some node."""
    return {n.input[i] for n in og.node if n.domain in ("", "ai.onnx")
            for i in MATRIX_INPUTS.get(n.op_type, ()) if i < len(n.input) and n.input[i]}


def _array(v) -> np.ndarray:
    """An input as an array: a TensorProto (how ONNX's tests give float16/float8 values) read."""
    return onnx.numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)


def _signature(feeds: dict) -> tuple:
    return tuple((k, v.shape, v.dtype.str) for k, v in feeds.items())


def _static_shape(value_info):
    """A value's declared shape when every dimension is a number, else None."""
    t = value_info.type.tensor_type
    if not t.HasField("shape") or not all(d.HasField("dim_value") for d in t.shape.dim):
        return None
    return tuple(d.dim_value for d in t.shape.dim)


def _with_initializers(model, values: dict):
    """A copy of `model` with the given graph inputs also stored as initializers."""
    if not values:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(v), k)
                                 for k, v in values.items())
    return out


def _check_batch(data: dict) -> None:
    """The data inputs share their leading dimension (the batch), or NoBatchAxisError."""
    if len({v.shape[0] for v in data.values()}) > 1:
        shapes = ", ".join(f"'{k}' {v.shape}" for k, v in data.items())
        raise NoBatchAxisError(f"inputs {shapes} differ in their leading dimension; the dagnet "
                               f"backend feeds it as the batch, so data inputs must share it "
                               f"(broadcasting across it is not supported)")


class DagnetBackend(Backend):
    """dagnet behind onnx's Backend interface (CPU only)."""

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        try:
            check_supported(model.graph)
        except OnnxError:
            return False
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> DagnetRep:
        """Check the model (onnx.checker, the ops dagnet imports); the import waits for run()."""
        if not cls.supports_device(device):
            raise OnnxError(f"device {device!r}: the dagnet backend runs on {', '.join(DEVICES)}")
        if isinstance(model, bytes):
            model = onnx.load_from_string(model)
        elif not isinstance(model, onnx.ModelProto):
            model = onnx.load(str(model))
        try:
            super().prepare(model, device, **kwargs)  # onnx.checker
        except onnx.checker.ValidationError as e:
            raise OnnxError(f"the model is not valid ONNX (onnx.checker): "
                            f"{str(e).strip().splitlines()[0]}") from None
        check_supported(model.graph)
        return DagnetRep(model)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        """Run one node on `inputs` (arrays for its non-empty inputs, in order)."""
        super().run_node(node, inputs, device, outputs_info, **kwargs)
        helper = onnx.helper
        inputs = [_array(v) for v in (inputs.values() if isinstance(inputs, dict) else inputs)]
        names = [n for n in node.input if n]
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
               for n, v in zip(names, inputs)]
        infos = list(outputs_info or [])
        outs = [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(np.dtype(infos[i][0]) if i < len(infos)
                                               else inputs[0].dtype),
            infos[i][1] if i < len(infos) else None) for i, n in enumerate(node.output) if n]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(helper.make_graph([node], f"{node.op_type}_node", ins, outs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        # the checker wants each output's shape: ONNX's shape inference gives those not given
        model = onnx.shape_inference.infer_shapes(model)
        return cls.run_model(model, dict(zip(names, inputs)), device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.split(":")[0].upper() in DEVICES


# the module-level face onnx's backend test runner and users call (as onnxruntime.backend has)
is_compatible = DagnetBackend.is_compatible
prepare = DagnetBackend.prepare
run_model = DagnetBackend.run_model
run_node = DagnetBackend.run_node
supports_device = DagnetBackend.supports_device
