"""A fused step run member by member: the unfused chain on the step's own inputs.

The NaN/Inf locator runs it to say which node inside a fused step went wrong, and the compiler's
fusion check to compare the fused kernel with the chain it replaces. It talks to the fused op
only through its public `members()` (dagnet/ops/fusion.py).
"""
from __future__ import annotations


def member_forward(step, ins, mode: str = "train"):
    """Yield (member, its inputs, its output, its cache) for each member of fused `step`, in
    chain order, each on the previous one's output (in the member's link port). state=None
    leaves batchnorm statistics alone; fusion patterns hold no random ops."""
    h = None
    for m in step.op.members(ins, step.attrs):
        part = m.given(h)
        h, cache = m.op.forward(part, m.attrs, mode=mode, state=None, rng=None)
        yield m, part, h, cache


def member_backward(runs, dout):
    """Yield (member, its input gradients) from the last member to the first, each member's
    own backward fed the gradient of the next one's link port. runs: member_forward's items.
    A link that passes no gradient (a comparison's) ends the sweep."""
    d = dout
    for m, _, _, cache in reversed(runs):
        if d is None:
            return
        grads = m.op.backward(d, cache, m.attrs)
        yield m, grads
        d = grads[m.port] if m.port is not None else None


def unfused_grads(runs, dout) -> list:
    """The fused step's input gradients computed member by member (one per step input; None
    where no gradient reaches)."""
    per_member = {m.name: grads for m, grads in member_backward(runs, dout)}
    out = []
    for m, part, _, _ in runs:
        grads = per_member.get(m.name, [None] * len(part))
        out += [g for i, g in enumerate(grads) if i != m.port]
    return out
