"""The Op contract and the op registry.

An op is a small stateless class registered by name. It declares metadata the compiler reads
(arity, fusion_kind, which of its values its backward reads) and three methods:

    infer_shape(in_shapes, attrs) -> out_shape
    forward(inputs, attrs, mode="train", state=None, rng=None, out=None) -> (out, cache)
    backward(dout, cache, attrs, needs=None) -> tuple of input grads (None where not needed)

Shapes given to and returned by `infer_shape` are *per example* for batched values (no batch
dimension, e.g. (C, H, W)) and full shapes for params (e.g. (F, C, kh, kw)); `batched_inputs`
says which input ports carry a batch dimension. Arrays given to `forward` always carry it.
The numeric work lives in plain kernel functions that the class calls.

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
from dagnet.ops.workspace import NONE as NO_WORKSPACE, Workspace

FUSION_KINDS = ("elementwise", "injective", "reduction", "opaque")

_REGISTRY: dict[str, "Op"] = {}


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


class Op:
    """Base class of every op; subclasses set the class attributes and the three methods."""

    #: registered name, e.g. "conv2d"
    name: str = ""
    #: number of inputs: an int, or (min, max) with max None for variadic ops such as add
    arity: int | tuple = 1
    #: names of the input ports, for messages and specs, e.g. ("x", "w", "b")
    input_names: tuple = ("x",)
    #: ports whose values carry the batch dimension (EVERY_PORT for variadic ops); the others
    #: are params
    batched_inputs: tuple = (0,)
    #: ports that get a gradient (labels do not)
    differentiable_inputs: tuple | None = None  # None: all ports
    #: "op" or "loss" (a loss returns a scalar: the mean over the batch)
    kind: str = "op"
    #: TVM-style pattern kind, drives fusion grouping and in-place planning
    fusion_kind: str = "opaque"
    #: what backward reads from forward's arrays: subset of {"input", "output"}, where "input"
    #: means a batched (data) input array - params and labels are never overwritten, and copies
    #: the cache owns (im2col columns, normalised x) are workspace, not inputs. The memory pass
    #: never overwrites such an array in place; declare it truthfully or gradients break.
    saves: frozenset = frozenset({"input"})
    #: forward can write its result into `out` (an array of the output's shape and dtype): the
    #: runtime passes the memory plan's buffer, or inputs[0] for an in-place element-wise op
    supports_out: bool = False
    #: True for ops with explicit state (batchnorm running statistics)
    stateful: bool = False
    #: True for ops whose forward draws random numbers (dropout): they get an explicit rng
    random: bool = False
    #: True when forward may return a view of (or the very array of) an input, e.g. flatten
    #: or dropout in eval mode; the memory pass never runs an op in place over such a value.
    may_alias: bool = False

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


def attr_number(op: str, attrs: dict, key: str, default) -> float:
    """attrs[key] (default if absent) as a finite float; AttrError if it is not a number."""
    v = attrs.get(key, default)
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    try:
        x = float(v) if ok else None
    except OverflowError:
        x = None
    if x is None or not np.isfinite(x):
        raise AttrError(f"{op}: attr '{key}' must be a finite number, got {v!r}")
    return x


def attr_int(op: str, attrs: dict, key: str, default) -> int:
    """attrs[key] (default if absent) as an int; AttrError if it is not an integer."""
    v = attrs.get(key, default)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise AttrError(f"{op}: attr '{key}' must be an integer, got {v!r}")
    return int(v)


def as_pair(v, what: str = "value") -> tuple[int, int]:
    """2 -> (2, 2); (2, 3) -> (2, 3)."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ShapeError(f"{what} must be an int or a pair of ints, got {v}")
    return v
