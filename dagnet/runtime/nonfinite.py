"""Finding where a NaN or Inf starts.

The training loop only looks at the loss and at one sum per gradient (free, or nearly); when
they are not finite it calls locate_nonfinite, which re-runs that batch with every value checked
as it is made: the executor with a check after each step, forward and backward, and inside a
fused step a run of its members one by one. The normal path pays nothing for the diagnosis.
"""
from __future__ import annotations

import numpy as np

from dagnet.runtime.executor import Executor
from dagnet.runtime.feeds import check_feeds
from dagnet.runtime.members import member_backward, member_forward


def nonfinite_kind(a) -> str:
    """How many NaN and Inf values an array holds, e.g. '3 NaN of 640 values'."""
    a = np.asarray(a)
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} Inf"] if inf else [])
    return " and ".join(parts) + f" of {a.size} values"


def locate_nonfinite(plan, feeds: dict, rng_state=None) -> str | None:
    """Re-run one train-mode forward and backward of `plan` on `feeds`, checking every value
    as it is made; say where the first NaN/Inf appears (None if none does).

    rng_state: the plan's rng state before the failing step (so dropout draws the same
    masks). The plan itself is left untouched: its rng, state, params and caches.
    """
    with np.errstate(all="ignore"):  # the overflow is expected here; the result says where
        return NonfiniteLocator(plan, rng_state).locate(feeds)


class _Found(Exception):
    """Stops the sweep at the first non-finite value; args[0] says where."""


class NonfiniteLocator(Executor):
    """The executor on copies of the plan's state and rng, with every value checked."""

    def __init__(self, plan, rng_state=None):
        rng = np.random.Generator(type(plan.rng.bit_generator)())
        rng.bit_generator.state = plan.rng.bit_generator.state if rng_state is None else rng_state
        state = {k: {kk: np.array(vv) for kk, vv in st.items()} for k, st in plan.state.items()}
        super().__init__(plan, state=state, rng=rng, fresh=True)
        self.inputs: dict = {}  # {step: its inputs}, to re-run a fused step's members

    def locate(self, feeds: dict) -> str | None:
        plan = self.plan
        feeds = check_feeds(plan, feeds)
        for name, a in feeds.items():
            if a.dtype.kind == "f" and not _finite(a):
                bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
                return (f"the feed '{name}' itself holds {nonfinite_kind(a)} (first in example "
                        f"{int(bad[0])} of the batch); clean the data (e.g. np.nan_to_num) before "
                        f"training")
        for name, p in plan.params.items():
            if not _finite(p):
                return (f"param '{name}' already holds {nonfinite_kind(p)} before this step: an "
                        f"earlier update overflowed; lower the learning rate")
        try:
            self.forward(feeds, "train", wanted=plan.losses)
            self.backward({v: np.asarray(1.0, dtype=plan.dtype) for v in plan.losses})
        except _Found as found:
            return found.args[0]
        return None

    def step_forward(self, step, ins, mode, out=None, workspace=None):
        y, cache = super().step_forward(step, ins, mode)
        if not _finite(y):
            where = _step_label(step)
            if step.fused:
                inner = next(((m, h) for m, _, h, _ in member_forward(step, ins) if not _finite(h)), None)
                if inner:
                    where += f"; inside it, node '{inner[0].name}' ({inner[0].op.name})"
            raise _Found(f"forward of {where} produced {nonfinite_kind(y)} from finite inputs "
                         f"(largest |input| {_largest(ins)}); the values grew too large: lower "
                         f"the learning rate, normalise the inputs or clip the gradients")
        self.inputs[step.name] = ins
        return y, cache

    def step_backward(self, step, dout, cache):
        gin = super().step_backward(step, dout, cache)
        grads = self.grads
        for port, (src, need, g) in enumerate(zip(step.inputs, step.needs, gin)):
            if not need or g is None:
                continue
            total = g if src not in grads else grads[src] + g
            if _finite(total):
                continue
            where = _step_label(step)
            if step.fused:
                inner = _inside_backward(step, self.inputs[step.name], dout)
                if inner:
                    where += f"; inside it, node '{inner[0]}' ({inner[1]}), input '{inner[2]}'"
            what = (f"its gradient for input '{_port_name(step.op, port)}' ('{src}')" if not _finite(g)
                    else f"the summed gradient of '{src}' (several consumers)")
            raise _Found(f"backward of {where}: {what} holds {nonfinite_kind(total)} while the "
                         f"incoming gradient is finite (largest |dout| {_largest([dout])}); lower "
                         f"the learning rate or clip the gradients")
        return gin


def _inside_backward(step, ins, dout):
    """Inside a fused step: (member, op, port name) of the first non-finite gradient, running
    the members' own backward passes from the last member to the first."""
    for m, grads in member_backward(list(member_forward(step, ins)), dout):
        for port, g in enumerate(grads):
            if g is not None and m.op.needs_grad(port) and not _finite(g):
                return m.name, m.op.name, _port_name(m.op, port)
    return None


def _port_name(op, port: int) -> str:
    return op.input_names[min(port, len(op.input_names) - 1)]


def _finite(a) -> bool:
    return bool(np.isfinite(a).all())


def _largest(arrays) -> str:
    sizes = [float(np.max(np.abs(a))) for a in arrays
             if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size and _finite(a)]
    return f"{max(sizes):.3g}" if sizes else "n/a"


def _step_label(step) -> str:
    label = f"step {step.index} '{step.name}' ({step.op_name})"
    if step.fused:
        label += f", fused from {', '.join(step.members)}"
    return label
