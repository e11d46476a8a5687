"""ElementwiseChain: a chain of elementwise, broadcast and injective ops, after an optional
anchor whose output may take them (fusion kind out_fusable: matmul, einsum, conv2d, affine,
batchnorm) and up to a reduction that may end it, run as one step. The fuse pass groups such
chains by the ops' declared fusion kinds, as TVM's FuseOps does, once the hand-written patterns
(dagnet/ops/fused.py) have fired: those keep priority (compiler/fuse.py).

    affine -> add(bias) -> gelu                     one step: fused_elementwise
    batchnorm -> add(skip) -> relu                  the residual join of a ResNet block
    relu -> concat(other) -> global_avg_pool        injective inside, a reduction at the end

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

import itertools
import math
from typing import NamedTuple

from dagnet.ops.base import Op, get_op, register
from dagnet.ops.fusion import FusedOp
from dagnet.ops.workspace import Workspace

#: the registered name of the generic chain
GENERIC = "fused_elementwise"
#: the most members one chain takes (TVM's max_fuse_depth)
MAX_MEMBERS = 256


def _plain(op: Op, state_ok: bool = False) -> bool:
    """One float output, no randomness, views or state (unless state_ok: the anchor's state is
    the step's), not a loss or a fused op itself."""
    return (op.kind != "loss" and op.output_dtype == "float" and (state_ok or not op.stateful)
            and not (op.random or op.may_alias or isinstance(op, FusedOp)))


def chainable(op: Op) -> bool:
    """Whether op may join a chain after its first member: elementwise, broadcast or injective
    (a copying one: concat, resize; views such as reshape cost nothing to leave out)."""
    return op.fusion_kind in ("elementwise", "broadcast", "injective") and _plain(op)


def closes(op: Op) -> bool:
    """Whether op may end a chain: a reduction takes the values that feed it, as TVM fuses an
    elementwise producer into the reduction that reads it (relu -> global_avg_pool)."""
    return op.fusion_kind == "reduction" and _plain(op)


def anchors(op: Op) -> bool:
    """Whether a chain may start at op: a chainable op, or one whose output takes a chain
    (out_fusable: matmul, conv2d, affine, batchnorm)."""
    return chainable(op) or (op.fusion_kind == "out_fusable" and _plain(op, state_ok=True))


def writes_over(op: Op) -> bool:
    """Whether op may write its value over its port-0 input (`out=inputs[0]`, the op contract):
    an elementwise or broadcast op, each element read before it is written; an injective one
    moves elements (a transpose in place would read what it wrote)."""
    return op.supports_out and op.fusion_kind in ("elementwise", "broadcast")


def _size(record) -> int:
    return math.prod(record["shape"])


def inplace_plan(records, train: bool) -> tuple[list[bool], int]:
    """(over, root): over[k] says member k writes over member k-1's value (no backward reads
    it, same shape, the op takes `out=`, the value enters on port 0); root is the first member
    of the last such run, whose value is the step's output array.

    Port 0 only, as the op contract has it (dagnet/ops/base.py): `out` may alias inputs[0] and
    no other input - add(b, b, h) with out=h writes b + b over h before it adds h."""
    ops = [get_op(r["op"]) for r in records]
    over = [False]
    for k in range(1, len(records)):
        prev, cur = records[k - 1], records[k]
        kept = train and ("input" in ops[k].saves or "output" in ops[k - 1].saves)
        same = list(prev["shape"]) == list(cur["shape"]) and prev["batched"] == cur["batched"]
        over.append(writes_over(ops[k]) and cur.get("port", 0) == 0 and same and not kept)
    root = len(records) - 1
    while root > 0 and over[root]:
        root -= 1
    return over, root


class Layout(NamedTuple):
    """What forward and backward read off a chain's member records, worked out once per step."""

    ops: tuple          # each member's registered op
    attrs: tuple        # each member's attrs
    ports: tuple        # where the previous member's value enters (None for the first)
    starts: tuple       # member k reads step inputs starts[k]:starts[k + 1]
    others: tuple       # member k's ports other than its link, in order
    plans: dict         # {train: inplace_plan(records, train)}


_LAYOUTS: dict = {}  # id(records) -> (records, Layout): the records kept so the id stays theirs


def layout(records) -> Layout:
    """The chain's Layout, memoised by the records' identity (a plan's step keeps its attrs)."""
    hit = _LAYOUTS.get(id(records))
    if hit is not None and hit[0] is records:
        return hit[1]
    arities = [r["arity"] - (k > 0) for k, r in enumerate(records)]
    ports = tuple(None if k == 0 else r.get("port", 0) for k, r in enumerate(records))
    found = Layout(tuple(get_op(r["op"]) for r in records), tuple(r["attrs"] for r in records),
                   ports, tuple(itertools.accumulate(arities, initial=0)),
                   tuple(tuple(p for p in range(r["arity"]) if p != port)
                         for r, port in zip(records, ports)),
                   {train: inplace_plan(records, train) for train in (True, False)})
    if len(_LAYOUTS) > 4096:  # plans come and go; a few thousand chains is plenty
        _LAYOUTS.clear()
    _LAYOUTS[id(records)] = (records, found)
    return found


@register
class ElementwiseChain(FusedOp):
    """A chain of elementwise/broadcast/injective ops (after an optional out_fusable anchor,
    up to an optional reduction) in one step."""

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
        lay = layout(attrs["members"])
        over, root = lay.plans[mode == "train"]
        h, caches = None, []
        for k, op in enumerate(lay.ops):
            ins = list(inputs[lay.starts[k]:lay.starts[k + 1]])
            if k:
                ins.insert(lay.ports[k], h)
            dst = h if k > root or (k and over[k]) else None
            if k == root and out is not None and op.supports_out:
                dst = out
            extra = {"workspace": workspace} if k == 0 and workspace is not None else {}
            h, cache = op.forward(ins, lay.attrs[k], mode=mode, state=state if k == 0 else None,
                                  rng=None, out=dst, **extra)
            caches.append(cache)
        return h, caches

    def backward(self, dout, cache, attrs, needs=None):
        lay = layout(attrs["members"])
        starts = lay.starts
        grads = [None] * starts[-1]
        d = dout
        for k in range(len(lay.ops) - 1, -1, -1):
            port, others = lay.ports[k], lay.others[k]
            member_needs = None
            if needs is not None:
                upstream = any(needs[:starts[k]])  # some input before it wants a gradient
                it = iter(needs[starts[k]:starts[k + 1]])
                member_needs = tuple(upstream if p == port else next(it)
                                     for p in range(len(others) + (port is not None)))
            g = lay.ops[k].backward(d, cache[k], lay.attrs[k], needs=member_needs)
            for i, p in zip(range(starts[k], starts[k + 1]), others):
                grads[i] = g[p]
            d = g[port] if port is not None else None
            if d is None:  # the start, or a link that passes no gradient (a comparison's)
                break
        return tuple(grads)
