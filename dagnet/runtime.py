"""Runs an ExecutionPlan: the forward sweep over its steps and the planned backward sweep.

The runtime reads only the plan's data (steps, params, state, feeds spec) so that it does not
depend on the compiler. Each step is one kernel call (fused or single).
"""
from __future__ import annotations

import copy
import time

import numpy as np

from dagnet import kernels
from dagnet.errors import DagnetError, FeedError


def check_feeds(plan, feeds: dict) -> dict:
    """Feeds as arrays of the plan's dtype (float inputs) or int64 (integer inputs).

    Raises FeedError naming the input, the expected and the given shape/dtype."""
    if not isinstance(feeds, dict):
        raise FeedError(f"feeds must be a dict {{input name: array}}, got {type(feeds).__name__}")
    out = {}
    batch = None
    for name, spec in plan.input_specs.items():
        if name not in feeds:
            continue
        try:
            a = np.asarray(feeds[name])
        except (TypeError, ValueError) as e:
            raise FeedError(f"feed '{name}': cannot be made into an array ({e}); give a numpy "
                            f"array of shape (N, {', '.join(map(str, spec['shape']))})"
                            .replace(", )", ")")) from None
        want = tuple(spec["shape"])
        if a.ndim != len(want) + 1 or tuple(a.shape[1:]) != want:
            raise FeedError(f"feed '{name}': expected shape (N, {', '.join(map(str, want))})"
                            .replace(", )", ")") + f", got {a.shape}")
        kind = np.dtype(spec["dtype"]).kind
        if kind == "f":
            if a.dtype.kind != "f":
                raise FeedError(f"feed '{name}': expected floats ({plan.dtype}), got {a.dtype}; "
                                f"convert, e.g. x.astype(np.float32) / 255")
            a = a.astype(plan.dtype, copy=False)
        elif a.dtype.kind not in "iu":
            raise FeedError(f"feed '{name}': expected integers (e.g. class labels), got {a.dtype}; "
                            f"convert with y.astype(np.int64)")
        if a.shape[0] == 0:
            raise FeedError(f"feed '{name}' holds no examples (batch size 0); give at least one")
        if batch is not None and a.shape[0] != batch:
            raise FeedError(f"feeds disagree on the batch size: '{name}' has {a.shape[0]}, "
                            f"others {batch}")
        batch = a.shape[0]
        out[name] = a
    unknown = set(feeds) - set(plan.input_specs)
    if unknown:
        raise FeedError(f"unknown feed(s) {sorted(unknown)}; the plan's inputs are "
                        f"{sorted(plan.input_specs)}")
    return out


def run_forward(plan, feeds: dict, mode: str, steps, requested=()) -> dict:
    """Evaluate `steps` (a subset of plan.steps, in order); returns every value computed.

    Caches are kept on the plan for backward in train mode; in eval mode a value is dropped
    at its last use so its memory is freed for the next ones. Ops that can write into a given
    array get a view of their planned buffer (see `planned_buffers`), and ops that take one
    their planned workspace; the plan's outputs and the `requested` values are always fresh
    arrays the caller may keep."""
    values = dict(plan.params)
    values.update(check_feeds(plan, feeds))
    caches = {}
    keep = set(plan.output_values) | set(requested)
    batch = _batch_size(plan, values)
    # a train plan in eval mode (a solver's accuracy check, often at a larger batch) gives its
    # values fresh arrays, freed at their last use: its buffers, sized for train-mode liveness,
    # would otherwise grow to that batch and stay
    arena = planned_buffers(plan, batch) \
        if batch and plan.use_planned_buffers and mode == plan.mode else None
    in_arena: set[str] = set()  # values that live in a planned buffer
    for step in steps:
        missing = [s for s in step.inputs if s not in values]
        if missing:
            raise FeedError(f"step {step.index} '{step.name}' needs feed(s) {missing}, which were "
                            f"not given; the plan's inputs are {sorted(plan.input_specs)}")
        ins = [values[s] for s in step.inputs]
        out_buf = None
        if step.inplace and step.inputs[0] not in keep:  # never over a value asked for
            out_buf = ins[0]
        elif arena is not None and step.buffer in arena and step.op.supports_out \
                and step.name not in keep:
            out_buf = kernels.typed_view(arena[step.buffer], (batch, *step.shape), plan.dtype)
        extra = {}
        if arena is not None and step.workspace_buffer in arena and step.op.takes_workspace:
            extra["workspace"] = arena[step.workspace_buffer]
        try:
            y, cache = step.op.forward(ins, step.attrs, mode=mode,
                                       state=plan.state.get(step.state_key),
                                       rng=plan.rng, out=out_buf, **extra)
        except DagnetError as e:
            raise _in_step(e, step) from None
        except MemoryError:
            n = len(ins[0]) if ins and getattr(ins[0], "ndim", 0) else "?"
            raise FeedError(f"step {step.index} '{step.name}' ({step.op_name}): out of memory "
                            f"for a batch of {n} examples; use a smaller batch (plan.peak_bytes(1) "
                            f"says how many bytes one example needs)") from None
        # in a planned buffer: written there, or in place over / a view of a value that is
        over_arena = step.inputs[:1] and step.inputs[0] in in_arena and \
            (out_buf is not None or step.op.may_alias)
        if (out_buf is not None and not step.inplace) or over_arena:
            if step.name in keep:  # a value asked for, made in place or as a view: copy it now,
                y = y.copy()  # before a later step reuses the buffer
            else:
                in_arena.add(step.name)
        values[step.name] = y
        if mode == "train":
            caches[step.name] = cache
        else:
            for v in step.frees:
                if v not in keep:
                    values.pop(v, None)
    plan._caches = caches
    return values


def _batch_size(plan, values) -> int:
    for name in plan.input_specs:
        a = values.get(name)
        if a is not None and a.ndim:
            return len(a)
    return 0


def planned_buffers(plan, batch: int) -> dict:
    """The memory plan's buffers as byte arrays for `batch` examples: {buffer id: array}.

    Allocated once and grown when a larger batch comes (a smaller batch uses the front of
    each), so a training loop allocates no activations after its first step, and values the
    memory pass proved dead share memory, as the plan's peak_bytes says."""
    if batch > plan._arena_batch:
        plan._arena = {b: np.empty(size * batch, dtype=np.uint8)
                       for b, size in plan.buffer_bytes.items() if size}
        plan._arena_batch = batch
    return plan._arena


def _in_step(e: DagnetError, step) -> DagnetError:
    """The same error with the step (node name and op) in front, so a run-time message says where."""
    where = f"step {step.index} '{step.name}' ({step.op_name})"
    message = str(e)
    if message.startswith(step.op_name + ": "):  # ops name themselves; say it once
        message = message[len(step.op_name) + 2:]
    return type(e)(f"{where}: {message}")


def run_backward(plan, douts: dict, after_step=None) -> dict:
    """Sweep the planned backward order from the seed gradients `douts` {value: dout}.

    Gradients of a value that fans out are summed; returns {name: grad} for every param and for
    the inputs the plan was compiled to differentiate. after_step(step, grads), when given, is
    called after each step's backward with the gradients so far (data-parallel training starts
    the allreduce of the gradients a step finished there)."""
    if not plan._caches:
        raise FeedError("backward() needs a train-mode forward() first (eval mode keeps no caches)")
    grads: dict[str, np.ndarray] = dict(douts)
    owned: set[str] = set()  # grads we may add into in place (not shared with an op's result)
    for step in plan.backward_steps:
        dout = grads.pop(step.name, None)
        if dout is None:
            continue
        gin = step.op.backward(dout, plan._caches[step.name], step.attrs, needs=step.needs)
        for src, need, gr in zip(step.inputs, step.needs, gin):
            if not need or gr is None:
                continue
            if src not in grads:
                grads[src] = gr
            elif src in owned:
                grads[src] += gr
            else:
                grads[src] = grads[src] + gr
                owned.add(src)
        if after_step is not None:
            after_step(step, grads)
    result = {}
    for name, p in plan.params.items():
        g = grads.get(name)
        result[name] = np.zeros_like(p) if g is None else g
    for name in plan.wrt:
        result[name] = grads.get(name)
    return result


# -- finding where a NaN or Inf starts -------------------------------------------------------
# The training loop only looks at the loss and at one sum per gradient (free, or nearly); when
# they are not finite it calls locate_nonfinite, which re-runs that batch step by step and
# checks every value. The normal path pays nothing for the diagnosis.

def nonfinite_kind(a) -> str:
    """How many NaN and Inf values an array holds, e.g. '3 NaN of 640 values'."""
    a = np.asarray(a)
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} Inf"] if inf else [])
    return " and ".join(parts) + f" of {a.size} values"


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


def _members(step, ins):
    """[(member name, op, attrs, member inputs)] of a fused step (port 0 of later members is
    the previous member's output, given as None)."""
    ops, parts = step.op._split(list(ins), step.attrs)
    return [(m["name"], op, m["attrs"], part if i == 0 else [None] + part)
            for i, (op, m, part) in enumerate(zip(ops, step.attrs["members"], parts))]


def _refine_forward(step, ins):
    """Inside a fused step: the first member whose forward output is not finite. (Fusion
    patterns hold no random ops; state=None leaves batchnorm statistics alone.)"""
    h = None
    for name, op, attrs, part in _members(step, ins):
        part = [h if a is None else a for a in part]
        h, _ = op.forward(part, attrs, mode="train", state=None, rng=None)
        if not _finite(h):
            return name, op.name, part, h
    return None


def _refine_backward(step, ins, dout):
    """Inside a fused step: (member, op, port name, grad) of the first non-finite gradient,
    running the members' own backward passes from the last member to the first."""
    members = _members(step, ins)
    h, caches = None, []
    for name, op, attrs, part in members:
        part = [h if a is None else a for a in part]
        h, cache = op.forward(part, attrs, mode="train", state=None, rng=None)
        caches.append(cache)
    d = dout
    for (name, op, attrs, part), cache in zip(reversed(members), reversed(caches)):
        grads = op.backward(d, cache, attrs)
        for port, g in enumerate(grads):
            if g is not None and op.needs_grad(port) and not _finite(g):
                return name, op.name, op.input_names[min(port, len(op.input_names) - 1)], g
        d = grads[0]
    return None


def locate_nonfinite(plan, feeds: dict, rng_state=None) -> str | None:
    """Re-run one train-mode forward and backward of `plan` on `feeds`, checking every value
    as it is made; say where the first NaN/Inf appears (None if none does).

    rng_state: the plan's rng state before the failing step (so dropout draws the same
    masks). The plan itself is left untouched: its rng, state, params and caches.
    """
    with np.errstate(all="ignore"):  # the overflow is expected here; the result says where
        return _locate_nonfinite(plan, feeds, rng_state)


def _locate_nonfinite(plan, feeds: dict, rng_state) -> str | None:
    feeds = check_feeds(plan, feeds)
    for name, a in feeds.items():
        if a.dtype.kind == "f" and not _finite(a):
            bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
            return (f"the feed '{name}' itself holds {nonfinite_kind(a)} (first in example {int(bad[0])} "
                    f"of the batch); clean the data (e.g. np.nan_to_num) before training")
    for name, p in plan.params.items():
        if not _finite(p):
            return (f"param '{name}' already holds {nonfinite_kind(p)} before this step: an earlier "
                    f"update overflowed; lower the learning rate")
    rng = np.random.Generator(type(plan.rng.bit_generator)())
    rng.bit_generator.state = plan.rng.bit_generator.state if rng_state is None else rng_state
    state = {k: {kk: np.array(vv) for kk, vv in st.items()} for k, st in plan.state.items()}
    values = dict(plan.params)
    values.update(feeds)
    caches = {}
    steps = plan._steps_for(tuple(plan.losses))
    for step in steps:
        ins = [values[s] for s in step.inputs]
        y, cache = step.op.forward(ins, step.attrs, mode="train",
                                   state=state.get(step.state_key), rng=rng)
        if not _finite(y):
            where = _step_label(step)
            if step.fused:
                inner = _refine_forward(step, ins)
                if inner:
                    where += f"; inside it, node '{inner[0]}' ({inner[1]})"
            return (f"forward of {where} produced {nonfinite_kind(y)} from finite inputs (largest "
                    f"|input| {_largest(ins)}); the values grew too large: lower the learning "
                    f"rate, normalise the inputs or clip the gradients")
        values[step.name] = y
        caches[step.name] = (cache, ins)
    grads = {v: np.asarray(1.0, dtype=plan.dtype) for v in plan.losses}
    for step in plan.backward_steps:
        dout = grads.pop(step.name, None)
        if dout is None or step.name not in caches:
            continue
        cache, ins = caches[step.name]
        gin = step.op.backward(dout, cache, step.attrs, needs=step.needs)
        for port, (src, need, g) in enumerate(zip(step.inputs, step.needs, gin)):
            if not need or g is None:
                continue
            total = g if src not in grads else grads[src] + g
            if not _finite(total):
                where = _step_label(step)
                pname = step.op.input_names[min(port, len(step.op.input_names) - 1)]
                if step.fused:
                    inner = _refine_backward(step, ins, dout)
                    if inner:
                        where += f"; inside it, node '{inner[0]}' ({inner[1]}), input '{inner[2]}'"
                what = (f"its gradient for input '{pname}' ('{src}')" if not _finite(g)
                        else f"the summed gradient of '{src}' (several consumers)")
                return (f"backward of {where}: {what} holds {nonfinite_kind(total)} while the incoming "
                        f"gradient is finite (largest |dout| {_largest([dout])}); lower the "
                        f"learning rate or clip the gradients")
            grads[src] = total
    return None


def profile(plan, feeds: dict, repeats: int = 5, mode: str | None = None) -> dict:
    """Seconds per step, best of `repeats`: {step name: {"forward": s, "backward": s}}.

    Each step runs on the values of the steps before it, as the runtime does, but on copies
    of the plan's state and rng, so profiling changes neither batchnorm statistics nor the
    training run. backward is 0.0 for steps that need no gradient and in eval mode. In-place
    steps are timed writing a fresh output (the inputs must stay intact across repeats)."""
    values = dict(plan.params)
    values.update(check_feeds(plan, feeds))
    mode = mode or plan.mode
    state, rng = copy.deepcopy(plan.state), copy.deepcopy(plan.rng)
    backward = {s.name for s in plan.backward_steps} if mode == "train" else set()
    timings = {}
    for step in plan.steps:
        missing = [s for s in step.inputs if s not in values]
        if missing:
            raise FeedError(f"step {step.index} '{step.name}' needs feed(s) {missing}; the plan's "
                            f"inputs are {sorted(plan.input_specs)}")
        ins = [values[s] for s in step.inputs]
        fwd, bwd = [], []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out, cache = step.op.forward(ins, step.attrs, mode=mode, state=state.get(step.state_key),
                                         rng=rng)
            fwd.append(time.perf_counter() - t0)
            if step.name in backward:
                dout = np.ones_like(out)
                t0 = time.perf_counter()
                step.op.backward(dout, cache, step.attrs, needs=step.needs)
                bwd.append(time.perf_counter() - t0)
        values[step.name] = out
        timings[step.name] = {"forward": min(fwd), "backward": min(bwd) if bwd else 0.0}
    return timings
