"""ElementwiseChain: a chain of elementwise and broadcast ops, after an optional anchor whose
output may take them (fusion kind out_fusable: matmul, einsum, conv2d, affine, batchnorm), run
as one step. The fuse pass groups such chains by the ops' declared fusion kinds, as TVM's
FuseOps does, once the hand-written patterns (dagnet/ops/fused.py) have fired: those keep
priority (compiler/fuse.py).

    affine -> add(bias) -> tanh -> mul(0.5)        one step: fused_elementwise
    batchnorm -> add(skip) -> relu                  the residual join of a ResNet block

What one step buys with numpy alone (no code is generated): one dispatch instead of one per
op, and fewer temporaries. Forward, each member writes over the previous member's value when
no backward reads that value (the ops' declared `saves`; in eval mode always), and the last run
of such members writes into the step's planned buffer. Backward runs the members' own backward
passes in reverse.

Each member record in attrs["members"] holds, besides name, op and attrs: "port" (where the
previous member's value enters), "arity" (its input count), and its value's "shape" and
"batched" (as node.meta has them), from which the in-place plan and the scratch are read.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops.base import Op, get_op, register
from dagnet.ops.fusion import FusedOp
from dagnet.ops.workspace import Workspace

#: the registered name of the generic chain
GENERIC = "fused_elementwise"
#: the most members one chain takes (TVM's max_fuse_depth)
MAX_MEMBERS = 256


def chainable(op: Op) -> bool:
    """Whether op may join a chain after its first member: elementwise or broadcast, one float
    output, no randomness, state or views."""
    return (op.fusion_kind in ("elementwise", "broadcast") and op.kind != "loss"
            and not (op.random or op.stateful or op.may_alias or isinstance(op, FusedOp))
            and op.output_dtype == "float")


def anchors(op: Op) -> bool:
    """Whether a chain may start at op: a chainable op, or one whose output takes a chain
    (out_fusable), neither random nor a view."""
    if chainable(op):
        return True
    return (op.fusion_kind == "out_fusable" and op.kind != "loss" and op.output_dtype == "float"
            and not (op.random or op.may_alias or isinstance(op, FusedOp)))


def _size(record) -> int:
    return int(np.prod(record["shape"], dtype=np.int64))


def inplace_plan(records, train: bool) -> tuple[list[bool], int]:
    """(over, root): over[k] says member k writes over member k-1's value (no backward reads
    it, same shape, the op takes `out=`); root is the first member of the last such run, whose
    value is the step's output array."""
    ops = [get_op(r["op"]) for r in records]
    over = [False]
    for k in range(1, len(records)):
        prev, cur = records[k - 1], records[k]
        kept = train and ("input" in ops[k].saves or "output" in ops[k - 1].saves)
        same = list(prev["shape"]) == list(cur["shape"]) and prev["batched"] == cur["batched"]
        over.append(ops[k].supports_out and same and not kept)
    root = len(records) - 1
    while root > 0 and over[root]:
        root -= 1
    return over, root


@register
class ElementwiseChain(FusedOp):
    """A chain of elementwise/broadcast ops (after an optional out_fusable anchor) in one step."""

    name = GENERIC
    arity = (1, None)
    input_names = ("x", "...")
    full_shapes = True
    # conservatively both: the members' caches may hold the step's inputs (an anchor matmul
    # reads them in backward) and its output
    saves = frozenset({"input", "output"})

    def member_ops(self, attrs) -> tuple:
        return tuple(get_op(m["op"]) for m in attrs["members"])

    def infer_shape(self, in_shapes, attrs):
        last = attrs["members"][-1]
        return ((None,) if last["batched"] else ()) + tuple(last["shape"])

    def flops(self, in_shapes, out_shape, attrs):
        return sum(int(m.get("flops", 0)) for m in attrs["members"])

    def workspace(self, in_shapes, out_shape, attrs):
        """The anchor's scratch plus the member values a step keeps apart from its output (per
        example, batched ones; in a train plan), and how much of that backward keeps."""
        records = attrs["members"]
        first = get_op(records[0]["op"])
        w = Workspace(0, 0, 0)
        if not first.full_shapes:
            w = first.workspace(list(in_shapes[:records[0]["arity"]]), tuple(records[0]["shape"]),
                                records[0]["attrs"])
        elements, saved = w.elements, w.saved
        over, root = inplace_plan(records, train=True)
        ops = self.member_ops(attrs)
        k = 0
        while k < root:  # the arrays before the output's: each a run of in-place members
            j = k
            while j + 1 < root and over[j + 1]:
                j += 1
            if records[j]["batched"]:
                elements += _size(records[j])
                if "output" in ops[j].saves or "input" in ops[j + 1].saves:
                    saved += _size(records[j])
            k = j + 1
        return Workspace(elements, saved, w.planned)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        records = attrs["members"]
        over, root = inplace_plan(records, mode == "train")
        h, caches = None, []
        for k, m in enumerate(self.members(inputs, attrs)):
            dst = h if k > root or (k and over[k]) else None
            if k == root and out is not None and m.op.supports_out:
                dst = out
            extra = {"workspace": workspace} if k == 0 and workspace is not None else {}
            h, cache = m.op.forward(m.given(h), m.attrs, mode=mode, state=state if k == 0 else None,
                                    rng=None, out=dst, **extra)
            caches.append(cache)
        return h, caches

    def backward(self, dout, cache, attrs, needs=None):
        counts = self._counts(attrs)
        starts = np.cumsum([0] + counts).tolist()
        members = self.members([None] * starts[-1], attrs)
        grads = [None] * starts[-1]
        d = dout
        for k in range(len(members) - 1, -1, -1):
            m = members[k]
            own = range(starts[k], starts[k + 1])  # the step inputs this member reads
            member_needs = None
            if needs is not None:
                upstream = any(needs[:starts[k]])  # some input before it wants a gradient
                it = iter([needs[i] for i in own])
                member_needs = tuple(upstream if p == m.port else next(it)
                                     for p in range(len(m.inputs)))
            g = m.op.backward(d, cache[k], m.attrs, needs=member_needs)
            for i, p in zip(own, [p for p in range(len(m.inputs)) if p != m.port]):
                grads[i] = g[p]
            d = g[m.port] if m.port is not None else None
            if d is None:  # the start, or a link that passes no gradient (a comparison's)
                break
        return tuple(grads)

    @staticmethod
    def _counts(attrs) -> list[int]:
        """How many step inputs each member reads (its arity, less the link for all but the first)."""
        return [m["arity"] - (k > 0) for k, m in enumerate(attrs["members"])]
