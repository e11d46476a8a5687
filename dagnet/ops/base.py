"""The Op contract and the op registry.

An op is a small stateless class registered by name. It declares, once, as data:

    ports       its inputs (dagnet.ops.declare: data, labels, weight, param, variadic): which
                carry the batch dimension, which get a gradient, which params the builder makes;
    attributes  its attrs (declare.Attr: name, kind, default, bounds, doc, aliases), from which
                the builder's methods, both spec forms, the validate pass, the ONNX mappings and
                docs/spec.md derive their checks; None for an op that declares none (a fused op,
                or your own op written before declarations: its attrs are not checked);
    short, aliases  the prefix of names given to unnamed nodes (conv1) and other names of the
                op in specs (conv, convolution);

metadata the compiler reads (fusion_kind, which of its values its backward reads, ...) and
three methods:

    infer_shape(in_shapes, attrs) -> out_shape
    forward(inputs, attrs, mode="train", state=None, rng=None, out=None) -> (out, cache)
    backward(dout, cache, attrs, needs=None) -> tuple of input grads (None where not needed)

plus, for an op whose params the builder makes, param_shapes(x_shape, attrs). `read_attrs`
gives the checked attrs with defaults filled in, in the form ops compute with.

Shapes given to and returned by `infer_shape` are *per example* for batched values (no batch
dimension, e.g. (C, H, W)) and full shapes for params (e.g. (F, C, kh, kw)); `batched_inputs`
(derived from the ports) says which input ports carry a batch dimension. An op with
`full_shapes = True` (the tensor-math ops, whose ports take values with or without the batch
axis) sees FULL shapes instead, the batch axis as None ((None, 3, 4) for a batch of 3x4
examples, (3, 4) for an unbatched value), and returns its output's full shape, None leading
when the output is batched: its axes count over the full array, as numpy's and ONNX's do.
Arrays given to `forward` are always the full arrays. The numeric work lives in plain kernel
functions the class calls.

Rules every op follows:
  * forward never modifies its inputs (unless given `out=inputs[0]` and `supports_out`);
    with `supports_out`, `out` is an array of the output's shape and dtype to write the result
    into (the memory plan's buffer, or inputs[0] for an element-wise op run in place), and
    forward returns it;
    backward never modifies `dout` (it may be shared by several consumers), and the gradients
    it returns may be `dout` itself or views of it (add, flatten): callers must not add into
    them in place.
  * `needs` is a tuple of bools, one per input port: False means that gradient is not wanted
    (e.g. the first conv's input, which is data) and may be returned as None without computing it.
    None means every differentiable port.
  * `mode` is "train" or "eval"; `state` is the node's explicit state dict (batchnorm running
    statistics, updated in place in train mode); `rng` is a numpy Generator (dropout).
  * A loss op takes (scores, labels) and returns the mean over the batch as a 0-d array;
    its backward gets a scalar dout.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, DTypeError, GraphError, ShapeError, UnknownOpError
from dagnet.ops.declare import REQUIRED, Attr, Same, data, resolve_default
from dagnet.ops.workspace import NONE as NO_WORKSPACE, Workspace

#: TVM's pattern kinds: elementwise (same shape in and out), broadcast (elementwise with numpy
#: broadcasting), injective (moves data: reshape, concat), reduction, out_fusable (an op, such
#: as a matmul or a conv, whose output may take a fused chain of elementwise ops), opaque
FUSION_KINDS = ("elementwise", "broadcast", "injective", "reduction", "out_fusable", "opaque")

_REGISTRY: dict[str, "Op"] = {}
_MISSING = object()


class _EveryPort:
    """`port in EVERY_PORT` is True for any port: every input of a variadic op is batched.

    Not iterable on purpose: code that lists the batched ports of a variadic op must ask its
    arity first, and fails loudly here instead of seeing no ports.
    """

    def __contains__(self, port):
        return True

    def __repr__(self):
        return "EVERY_PORT"


EVERY_PORT = _EveryPort()


def _frozen(v):
    """v as a hashable key that tells 1, 1.0 and True apart (they hash alike)."""
    if isinstance(v, (list, tuple)):
        return type(v), tuple(_frozen(x) for x in v)
    return type(v), v


class Op:
    """Base class of every op; subclasses set the class attributes and the three methods."""

    #: registered name, e.g. "conv2d"
    name: str = ""
    #: prefix of the names given to unnamed nodes and layers (conv -> conv1, conv2); "" = name
    short: str = ""
    #: other names of the op in specs (layer types of the sequential form, ops of the general)
    aliases: tuple = ()
    #: the input ports, in order (dagnet.ops.declare)
    ports: tuple = (data("x"),)
    #: the attributes (declare.Attr), or None: not declared, attrs taken as they come
    attributes: tuple | None = None
    # Derived from the ports when the class declares them (see __init_subclass__); a class
    # may still set them itself (the fused ops do):
    #: number of inputs: an int, or (min, None) for variadic ops such as add
    arity: int | tuple = 1
    #: names of the input ports, for messages and specs, e.g. ("x", "w", "b")
    input_names: tuple = ("x",)
    #: ports whose values carry the batch dimension (EVERY_PORT for variadic ops); the others
    #: are params
    batched_inputs: tuple = (0,)
    #: ports that get a gradient (labels do not)
    differentiable_inputs: tuple | None = None  # None: all ports
    #: ports that take integer values (labels, indices); None: those batched ports that get no
    #: gradient (how an op that declares no ports says it takes labels)
    int_inputs: tuple | None = None
    #: data ports that also take unbatched values (EVERY_PORT for a variadic op whose ports do)
    either_inputs: tuple = ()
    #: "op" or "loss" (a loss returns a scalar: the mean over the batch)
    kind: str = "op"
    #: TVM-style pattern kind (FUSION_KINDS), drives fusion grouping and in-place planning
    fusion_kind: str = "opaque"
    #: infer_shape sees full shapes, the batch axis as None (see the module docstring)
    full_shapes: bool = False
    #: the element type of the output: "float" (the plan's) or "int64" (argmax's indices)
    output_dtype: str = "float"
    #: what backward reads from forward's arrays: subset of {"input", "output"}, where "input"
    #: means a batched (data) input array - params and labels are never overwritten, and copies
    #: the cache owns (im2col columns, normalised x) are workspace, not inputs. The memory pass
    #: never overwrites such an array in place; declare it truthfully or gradients break.
    saves: frozenset = frozenset({"input"})
    #: forward can write its result into `out` (an array of the output's shape and dtype): the
    #: runtime passes the memory plan's buffer, or inputs[0] for an in-place element-wise op
    supports_out: bool = False
    #: backward takes `grads={input port: array}` and writes those inputs' gradients there
    #: (a param's gradient straight into its allreduce bucket: dagnet/dist/buckets.py)
    writes_grads: bool = False
    #: backward returns its gradients in new arrays that nothing else holds (not the cache,
    #: not dout, not each other): the executor then sums a fanned-out value's later gradients
    #: into the first in place instead of into a new array (runtime/executor.py)
    fresh_grads: bool = False
    #: True for ops with explicit state (batchnorm running statistics)
    stateful: bool = False
    #: True for ops whose forward draws random numbers (dropout): they get an explicit rng
    random: bool = False
    #: True when forward may return a view of (or the very array of) an input, e.g. flatten
    #: or dropout in eval mode; the memory pass never runs an op in place over such a value.
    may_alias: bool = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "ports" not in cls.__dict__:
            return
        ports, own = cls.ports, cls.__dict__
        fixed = [p for p in ports if not p.variadic]
        many = [p for p in ports if p.variadic]
        derived = {
            "arity": (len(fixed) + many[0].least, None) if many else len(ports),
            "input_names": tuple(p.name for p in fixed) + (
                tuple(f"{many[0].name}{i}" for i in range(many[0].least)) + ("...",) if many else ()),
            "batched_inputs": EVERY_PORT if many and many[0].batched else
            tuple(i for i, p in enumerate(ports) if p.batched),
            "differentiable_inputs": None if all(p.grad for p in ports) else
            tuple(i for i, p in enumerate(ports) if p.grad),
            "int_inputs": EVERY_PORT if many and many[0].dtype == "int" else
            tuple(i for i, p in enumerate(ports) if p.dtype == "int"),
            "either_inputs": EVERY_PORT if many and many[0].either else
            tuple(i for i, p in enumerate(ports) if p.either),
        }
        for key, value in derived.items():
            if key not in own:
                setattr(cls, key, value)

    # -- declarations ------------------------------------------------------------------------
    @property
    def doc(self) -> str:
        """The first line of the op's docstring."""
        return (type(self).__doc__ or "").strip().splitlines()[0] if type(self).__doc__ else ""

    @property
    def prefix(self) -> str:
        """The prefix of names given to unnamed nodes of this op (conv -> conv1)."""
        return self.short or self.name

    def attr(self, key: str) -> Attr | None:
        """The declared attribute called `key` (or one of its aliases), else None."""
        for a in self.attributes or ():
            if key == a.name or key in a.aliases:
                return a
        return None

    def read_attrs(self, attrs: dict, builder: bool = False) -> dict:
        """The node's attrs checked against the declarations, defaults filled in, in the form
        ops compute with (pairs as tuples, numbers as floats); with builder=True also the
        builder hyperparameters (filters, size, init, ...). AttrError names the op and attr.
        An op without declarations gets `attrs` back as it is."""
        if self.attributes is None:
            return attrs
        # forward calls this every step with the same few attrs: remember each answer (the
        # check costs 10-30 us, the lookup well under 1)
        try:
            key = (builder, *((k, _frozen(v)) for k, v in attrs.items()))
            cache = self.__dict__.setdefault("_read_cache", {})
            hit = cache.get(key)
        except TypeError:  # an unhashable value: a bad one, which the check below reports
            key = hit = None
        if hit is not None:
            return dict(hit)
        out = self._read_attrs(attrs, builder)
        if key is not None:
            if len(cache) > 1024:
                cache.clear()
            cache[key] = dict(out)
        return out

    def _read_attrs(self, attrs: dict, builder: bool) -> dict:
        out = {}
        for a in self.attributes:
            if not (a.node or builder):
                continue
            v = attrs.get(a.name, _MISSING)
            if v is _MISSING or (v is None and a.default is None):
                d = resolve_default(a, out)
                if d is REQUIRED:
                    raise AttrError(f"{self.name}: attr '{a.name}' is required ({a.doc})")
                out[a.name] = d if d is None or isinstance(a.default, Same) else a.read(d)
                continue
            problem = a.problem(v)
            if problem:
                raise AttrError(f"{self.name}: {a.name} {problem}")
            out[a.name] = a.read(v)
        return out

    def param_shapes(self, x_shape: tuple, attrs: dict) -> dict:
        """{port: shape} of the params the builder makes for a data input of per-example shape
        x_shape; attrs are read_attrs(..., builder=True). Ops without such params: {}."""
        return {}

    # -- shape -----------------------------------------------------------------------------
    def infer_shape(self, in_shapes: list[tuple], attrs: dict) -> tuple:
        raise NotImplementedError

    def init_state(self, in_shapes: list[tuple], attrs: dict, dtype) -> dict:
        """Initial explicit state (e.g. running mean/var) for a stateful op."""
        return {}

    # -- numerics --------------------------------------------------------------------------
    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        raise NotImplementedError

    def backward(self, dout, cache, attrs, needs=None):
        raise NotImplementedError

    #: forward = jvp: the op is linear in its inputs jointly (add, sum, reshape), so the
    #: tangent of its output is the forward of its inputs' tangents
    linear: bool = False

    def jvp(self, tangents, inputs, out, cache, attrs):
        """Forward mode: the tangent of the output given one tangent per input (None: zero,
        the input does not depend on what is differentiated), the forward's inputs, output and
        cache. A one-input elementwise op has a diagonal Jacobian, so its jvp is its backward;
        a linear op's is its forward; any other op that supports forward mode overrides this."""
        if self.linear:
            zeros = [np.zeros_like(x) if t is None else np.asarray(t) for x, t in zip(inputs, tangents)]
            return self.forward(zeros, attrs, mode="eval")[0]
        if self._diagonal():
            return self.backward(tangents[0], cache, attrs)[0]
        raise NotImplementedError(f"{self.name} has no forward-mode rule")

    def _diagonal(self) -> bool:
        return self.fusion_kind == "elementwise" and len(self.ports) == 1

    @property
    def forward_mode(self) -> bool:
        """Whether jvp is defined for this op (dagnet.jvp and dagnet.jacobian check it)."""
        return self.linear or self._diagonal() or type(self).jvp is not Op.jvp

    def flops(self, in_shapes: list[tuple], out_shape: tuple, attrs: dict) -> int:
        """Forward multiply-adds*2 per example (rough; for plan.describe())."""
        return int(np.prod(out_shape, dtype=np.int64)) if out_shape else 1

    def workspace(self, in_shapes: list[tuple], out_shape: tuple, attrs: dict) -> Workspace:
        """The scratch the forward uses besides its output, per example: how much, how much
        of it the backward cache keeps, and how much it builds in a planned buffer given as
        `workspace=` (a byte array, reused across steps: a large scratch is then not a fresh
        allocation, and its page faults, every time). See dagnet/ops/workspace.py."""
        return NO_WORKSPACE

    def kernel_note(self, in_shapes: list[tuple], attrs: dict) -> str:
        """Which of its kernels the op runs for these shapes, for plan.describe(); "" for ops
        with one kernel."""
        return ""

    # -- helpers ---------------------------------------------------------------------------
    def check_arity(self, n: int, node: str = "?") -> None:
        lo, hi = (self.arity, self.arity) if isinstance(self.arity, int) else self.arity
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any number of'}"
            raise GraphError(
                f"{node}: op '{self.name}' takes {want} inputs ({', '.join(self.input_names)}) "
                f"but was given {n}"
            )

    def needs_grad(self, port: int) -> bool:
        return self.differentiable_inputs is None or port in self.differentiable_inputs

    def takes_ints(self, port: int) -> bool:
        """Whether input `port` takes integer values (labels, indices) rather than floats."""
        if self.int_inputs is None:
            return port in self.batched_inputs and not self.needs_grad(port)
        return port in self.int_inputs

    def takes_either(self, port: int) -> bool:
        """Whether input `port` takes a value with or without the batch dimension."""
        return port in self.either_inputs

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def register(cls):
    """Class decorator: register an Op subclass under its `name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.fusion_kind not in FUSION_KINDS:
        raise ValueError(f"{cls.__name__}.fusion_kind must be one of {FUSION_KINDS}")
    if cls.name in _REGISTRY:
        raise ValueError(f"op '{cls.name}' is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str, node: str | None = None) -> Op:
    """The registered op called `name`; an UnknownOpError lists what exists."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        where = f"{node}: " if node else ""
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownOpError(
            f"{where}unknown op '{name}'.{hint} Known ops: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered_ops() -> dict[str, Op]:
    """A copy of the registry: name -> op instance."""
    return dict(_REGISTRY)


# -- shared checks used by op implementations ----------------------------------------------
def check_float(op: str, port: str, x: np.ndarray) -> None:
    """Raise DTypeError unless x is float32/float64."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = getattr(x, "dtype", type(x).__name__)
        raise DTypeError(
            f"{op}: input '{port}' must be a float32 or float64 array, got {got}; "
            f"convert with x.astype(np.float32)"
        )


def check_floats(op: str, ports, arrays) -> None:
    """Raise DTypeError unless every array is float32/float64 and all share one dtype (ops never
    upcast silently)."""
    for port, a in zip(ports, arrays):
        check_float(op, port, a)
    dtypes = [a.dtype for a in arrays]
    if len(set(dtypes)) > 1:
        raise DTypeError(
            f"{op}: {', '.join(ports)} must share one dtype, got {', '.join(map(str, dtypes))}; "
            f"convert them with .astype({dtypes[0]})"
        )


def check_rank(op: str, port: str, shape: tuple, rank: int, layout: str) -> None:
    """Raise ShapeError unless len(shape) == rank (layout names the axes, e.g. 'C, H, W')."""
    if len(shape) != rank:
        raise ShapeError(
            f"{op}: input '{port}' must have {rank} dims ({layout}) per example, "
            f"got shape {tuple(shape)}"
        )


def as_pair(v, what: str = "value") -> tuple[int, int]:
    """2 -> (2, 2); (2, 3) -> (2, 3)."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ShapeError(f"{what} must be an int or a pair of ints, got {v}")
    return v
