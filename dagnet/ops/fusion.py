"""FusedOp: the contract of an op that runs a chain of ops as one step (dagnet/ops/fused.py).

A fused op declares its chain and the modes it may fire in, once: the compiler's pattern table
(compiler/patterns.py) is read off the registered fused ops. It is registered under its chain's
name joined by '+', takes the first member's inputs followed by the other members' params, and
gets attrs = {"members": [{"name", "op", "attrs"}, ...]} from the fuse pass. `members()` splits a
step's inputs back into the chain's nodes: the runtime uses it to run a fused step member by
member (to find a NaN inside it, or to check it against the unfused chain).

A member record may also say on which of its ports the previous member's value enters
("port", default 0) and how many inputs it takes ("arity", for a variadic op): the generic
elementwise chains (dagnet/ops/fused_elementwise.py) link on any port (x + relu(h) reads the
relu on port 1).

    class ConvReLU(FusedOp):
        chain = ("conv2d", "relu")
        modes = ("train", "eval")     # the default; list fewer with a mode_reason
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dagnet.errors import DagnetError
from dagnet.ops.base import Op, get_op
from dagnet.ops.workspace import Workspace

MODES = ("train", "eval")


class Member(NamedTuple):
    """One node of a fused chain. inputs: its own inputs (arrays or shapes), where the link port
    of every member after the first is None: the previous member's output goes there."""

    name: str
    op: Op
    attrs: dict
    inputs: list
    #: the port the previous member's value enters (None for the first member)
    port: int | None = None

    def given(self, previous) -> list:
        """Its inputs with the previous member's value (or shape) in the link port."""
        if self.port is None:
            return list(self.inputs)
        return [previous if i == self.port else x for i, x in enumerate(self.inputs)]


class FusedOp(Op):
    """Shared metadata and shape logic: members' shapes are inferred in chain order."""

    #: the op names of the chain, each member's output feeding the next one's port 0
    chain: tuple = ()
    #: the registered ops of the chain (set from `chain`)
    chain_ops: tuple = ()
    #: the modes the fuse pass may fire it in
    modes: tuple = MODES
    #: why the other modes forbid it (shown in near-miss reports)
    mode_reason: str = ""
    #: members whose output the step materialises besides its own (the others run in place
    #: or on the pooled output), counted as transient scratch by the memory pass
    inner_values: tuple = ()
    fusion_kind = "opaque"
    batched_inputs = (0,)
    # the last member writes the step's result into the planned buffer
    supports_out = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.chain:
            return
        if not set(cls.modes) <= set(MODES) or (set(cls.modes) != set(MODES) and not cls.mode_reason):
            raise ValueError(f"{cls.__name__}: modes must be a subset of {MODES}, and a fused op "
                             f"that leaves one out must give its mode_reason")
        cls.name = "+".join(cls.chain)
        ops = tuple(get_op(o) for o in cls.chain)
        names = list(ops[0].input_names) + [f"{o.name}.{p}" for o in ops[1:] for p in o.input_names[1:]]
        cls.input_names = tuple(names)
        cls.arity = len(names)
        cls.stateful = any(o.stateful for o in ops)
        cls.chain_ops = ops

    def member_ops(self, attrs) -> tuple:
        """The registered op of each member."""
        return self.chain_ops

    def members(self, inputs, attrs) -> list[Member]:
        """The chain's members with their own inputs, split from the step's `inputs` (arrays or
        shapes): the first member takes its arity, the others one less (the link port None)."""
        out, i = [], 0
        for k, (op, m) in enumerate(zip(self.member_ops(attrs), attrs["members"])):
            arity = m.get("arity", op.arity if isinstance(op.arity, int) else op.arity[0])
            n = arity - (k > 0)
            own = list(inputs[i:i + n])
            port = None if k == 0 else m.get("port", 0)
            if port is not None:
                own.insert(port, None)
            out.append(Member(m["name"], op, m["attrs"], own, port))
            i += n
        return out

    def member_attrs(self, attrs, op_name):
        for m in attrs["members"]:
            if m["op"] == op_name:
                return m["attrs"]
        raise DagnetError(f"{self.name}: attrs have no member '{op_name}'")

    def _walk(self, in_shapes, attrs):
        """(index, op, member attrs, its input shapes, its output shape) per member, in chain
        order: each member's port 0 is the previous member's output."""
        shape = None
        for i, m in enumerate(self.members(in_shapes, attrs)):
            shapes = m.given(shape)
            shape = tuple(m.op.infer_shape(shapes, m.attrs))
            yield i, m.op, m.attrs, shapes, shape

    def infer_shape(self, in_shapes, attrs):
        return [out for *_, out in self._walk(in_shapes, attrs)][-1]

    def flops(self, in_shapes, out_shape, attrs):
        return sum(op.flops(ins, out, a) for _, op, a, ins, out in self._walk(in_shapes, attrs))

    def workspace(self, in_shapes, out_shape, attrs):
        """The members' scratch plus the inner values the step materialises; kept for backward:
        the members' kept scratch (columns, pooling indices) and the inner values whose next
        member's backward reads its input (batchnorm's x); in the planned buffer: the first
        member's (a conv's columns), which its kernel builds there."""
        elements = saved = planned = 0
        walk = list(self._walk(in_shapes, attrs))
        for (i, op, a, ins, out), after in zip(walk, walk[1:] + [None]):
            w = op.workspace(ins, out, a)
            inner = int(np.prod(out, dtype=np.int64)) if i in self.inner_values else 0
            elements += w.elements + inner
            saved += w.saved + (inner if after is not None and "input" in after[1].saves else 0)
            planned = w.planned if i == 0 else planned
        return Workspace(elements, saved, planned)

    def init_state(self, in_shapes, attrs, dtype):
        for _, op, a, ins, _ in self._walk(in_shapes, attrs):
            if op.stateful:
                return op.init_state(ins, a, dtype)
        return {}
