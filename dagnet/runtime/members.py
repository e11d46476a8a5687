"""A fused step run member by member: the unfused chain on the step's own inputs.

The NaN/Inf locator runs it to say which node inside a fused step went wrong, and the compiler's
fusion check to compare the fused kernel with the chain it replaces. It talks to the fused op
only through its public `members()` (dagnet/ops/fusion.py).
"""
from __future__ import annotations


def member_forward(step, ins, mode: str = "train"):
    """Yield (member, its inputs, its output, its cache) for each member of fused `step`, in
    chain order, each on the previous one's output. state=None leaves batchnorm statistics
    alone; fusion patterns hold no random ops."""
    h = None
    for i, m in enumerate(step.op.members(ins, step.attrs)):
        part = m.inputs if i == 0 else [h] + m.inputs[1:]
        h, cache = m.op.forward(part, m.attrs, mode=mode, state=None, rng=None)
        yield m, part, h, cache


def member_backward(runs, dout):
    """Yield (member, its input gradients) from the last member to the first, each member's
    own backward fed the gradient of the next one's port 0. runs: member_forward's items."""
    d = dout
    for m, _, _, cache in reversed(runs):
        grads = m.op.backward(d, cache, m.attrs)
        yield m, grads
        d = grads[0]


def unfused_grads(runs, dout) -> list:
    """The fused step's input gradients computed member by member (one per step input)."""
    per_member = [grads for _, grads in member_backward(runs, dout)][::-1]
    out = list(per_member[0])
    for grads in per_member[1:]:
        out += list(grads[1:])
    return out
