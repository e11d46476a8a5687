"""EvalProgram: an eval-mode plan run as a flat list of prebound kernel calls over an arena.

    program = EvalProgram(plan, wanted)       # lowered once (lower.py): batchnorm folded,
    values = program.run(feeds, state, rng)   #   residual joins in the conv's output pass

Why: at batch 1 a step's kernels take tens of microseconds and the executor's bookkeeping
around them (dict look-ups, shape checks, weight packing, allocation) as long again. Here, per
batch size, every call is bound once to its arrays: the feed, the folded and packed weights,
its output in the arena, its scratch; a run is then `for call in calls: call()`.

The arena: each value gets a buffer when it is made and gives it back after its last read,
a buffer of the same or larger size being reused (the plan's memory pass does this for the
steps; the program's own instructions differ from them, so it does it again). One scratch
buffer, the largest any call needs (im2col columns, a direct conv's planes), is shared. The
arrays of the latest two batch sizes are kept.

Folded weights depend on params and batchnorm statistics the user may change in place
between runs: each run compares them with the snapshot they were folded from (a memcmp each,
_kernels/infer.pyx) and folds again if any changed.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.ops import direct
from dagnet.ops.base import as_pair
from dagnet.ops.conv import columns_size, conv_forward, takes_direct
from dagnet.ops.window import as_pads
from dagnet.runtime.lower import fold, instructions

#: False runs eval plans step by step on the executor (for A/B measurements and debugging)
ENABLED: bool = True

try:
    from dagnet._kernels.infer import same_bytes
except ImportError:  # a build without the kernels: compare with numpy
    def same_bytes(now, then):
        return len(now) == len(then) and all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(now, then))


class EvalProgram:
    """The instructions computing `wanted` (value names) from the plan's feeds, eval mode."""

    def __init__(self, plan, wanted: tuple):
        self.plan, self.wanted = plan, tuple(wanted)
        self.dtype = plan.dtype
        self.code = instructions(plan, plan.steps_for(self.wanted), set(self.wanted))
        self.convs = [i for i in self.code if i.kind == "conv"]
        made = {i.name for i in self.code}
        #: (value, instruction) for each value read that no instruction makes: feeds (and
        #: params, constants), with the first instruction that reads it
        self.needs = {}
        for i in self.code:
            for v in i.ins if i.kind != "conv" else i.reads:
                if v not in made:
                    self.needs.setdefault(v, i)
        self.weights: list = []  # per conv: [w, b] in the dtype, folded (bound into the calls)
        self.snapshot: list = []  # copies of the arrays they were folded from
        self.bound: dict = {}  # batch -> prebound calls (the latest two)
        self.env: dict = {}  # value -> array of the current run
        self.state, self.rng = {}, None

    # -- weights ---------------------------------------------------------------------------
    def _sources(self, state) -> list:
        params, out = self.plan.params, []
        for c in self.convs:
            out += [params[p] for p in c.params]
            if c.bn:
                gamma, beta, key, _ = c.bn
                st = state[key]
                out += [params[gamma], params[beta], st["running_mean"], st["running_var"]]
        return out

    def _fold(self, state) -> None:
        """Fold each conv's batchnorm into its weights, in place of the bound arrays."""
        params, dtype = self.plan.params, self.dtype
        fresh = []
        for c in self.convs:
            w, b = (params[p] for p in c.params)
            if c.bn:
                gamma, beta, key, eps = c.bn
                st = state[key]
                w, b = fold(w, b, params[gamma], params[beta], st["running_mean"],
                            st["running_var"], eps, dtype)
            fresh.append((np.ascontiguousarray(w, dtype), np.ascontiguousarray(b, dtype)))
        if self.weights and all(a[0].shape == f[0].shape for a, f in zip(self.weights, fresh)):
            for held, (w, b) in zip(self.weights, fresh):
                held[0][...], held[1][...] = w, b
                if len(held) == 4:  # the direct kernel's packed copies
                    held[2][...], held[3][...] = direct.packed(w, b, dtype)
        else:
            self.weights = [[w, b, *direct.packed(w, b, dtype)] if _direct(c, w.shape) else [w, b]
                            for c, (w, b) in zip(self.convs, fresh)]
            self.bound = {}
        self.snapshot = [np.array(a, copy=True) for a in self._sources(state)]

    # -- binding ---------------------------------------------------------------------------
    def _arena(self, batch: int) -> dict:
        """{value: array} for every value the calls write, each in a byte buffer taken when
        it is made and given back after its last read (a value that may be a view of its
        inputs holds their buffers too)."""
        last = {}
        for k, ins in enumerate(self.code):
            for v in ins.reads:
                last[v] = k
        roots: dict = {}  # value -> the values whose buffers it holds
        held: dict = {}  # value -> [its buffer, how many live values hold it]
        free: list = []
        arrays = {}
        for k, ins in enumerate(self.code):
            shape = (batch, *ins.shape) if ins.batched else tuple(ins.shape)
            buf = _take(free, int(np.prod(shape)) * self.dtype.itemsize)
            held[ins.name] = [buf, 1]
            roots[ins.name] = [ins.name]
            if ins.aliases:
                for r in {r for v in ins.reads for r in roots.get(v, ())}:
                    held[r][1] += 1
                    roots[ins.name].append(r)
            arrays[ins.name] = kernels.typed_view(buf, shape, self.dtype)
            for v in set(ins.reads):
                if last[v] == k and v not in self.wanted:
                    for r in roots.get(v, ()):
                        held[r][1] -= 1
                        if held[r][1] == 0:
                            free.append(held.pop(r)[0])
        return arrays

    def _bind(self, batch: int) -> list:
        arrays = self._arena(batch)
        scratch = np.empty(max([_scratch(i, batch, self) for i in self.code] + [1]), np.uint8)
        calls = []
        for ins in self.code:
            if ins.kind == "conv":
                w = self.weights[self.convs.index(ins)]
                calls.append(_conv_call(ins, w, arrays[ins.name], scratch, self.env, batch))
            else:
                calls.append(_op_call(ins, arrays[ins.name], scratch, self))
        if len(self.bound) >= 2:
            self.bound.pop(next(iter(self.bound)))
        self.bound[batch] = calls
        return calls

    # -- running ---------------------------------------------------------------------------
    def run(self, values: dict, state: dict, rng, batch: int) -> dict:
        """{wanted value: a fresh array}; values: the checked feeds (and params/constants)."""
        if not self.weights or not same_bytes(self._sources(state), self.snapshot):
            self._fold(state)
        self.state, self.rng = state, rng
        env = self.env
        env.clear()
        env.update(values)
        calls = self.bound.get(batch) or self._bind(batch)
        k = 0
        try:
            for k, call in enumerate(calls):
                call()
            return {v: np.array(env[v], copy=True) for v in self.wanted}
        except Exception as e:
            e.dagnet_step = self.code[k].step
            raise
        finally:
            env.clear()  # hold no arrays between runs


def _take(free: list, size: int) -> np.ndarray:
    """The smallest free buffer of at least size bytes (removed from free), or a new one."""
    fits = [k for k, b in enumerate(free) if b.nbytes >= size]
    if not fits:
        return np.empty(max(size, 1), np.uint8)
    return free.pop(min(fits, key=lambda k: free[k].nbytes))


def _direct(ins, w_shape) -> bool:
    c = ins.conv
    return takes_direct(ins.x_shape, w_shape, c["stride"], c["pad"], c["dilation"], c["groups"])


def _scratch(ins, batch: int, program) -> int:
    """Bytes of scratch one call needs."""
    item = program.dtype.itemsize
    if ins.kind == "conv":
        c = ins.conv
        w_shape = program.plan.params[ins.params[0]].shape
        if _direct(ins, w_shape):
            return direct.planes_size(ins.x_shape, w_shape, as_pair(c["stride"]),
                                      as_pads(c["pad"])[:2]) * batch * item
        return columns_size(w_shape, ins.shape, c["groups"]) * batch * item
    if ins.kind == "member":  # an anchor conv's columns or planes; a tail member needs none
        shapes = [ins.x_shape] + [program.plan.params[p].shape for p in ins.ins[1:]]
        return ins.op.workspace(shapes, ins.shape, ins.attrs).planned * batch * item if \
            ins.op.name == "conv2d" else 0
    wb = ins.step.workspace_buffer
    return program.plan.buffer_bytes.get(wb, 0) * batch if wb >= 0 else 0


def _conv_call(ins, weights, out, scratch, env, batch):
    """The call of a conv instruction: the direct kernel with the skip and relu in its output
    pass, or conv_forward (im2col + GEMM) and the epilogue after it."""
    c, name, x, res, relu = ins.conv, ins.name, ins.reads[0], ins.residual, ins.relu
    stride, pads, dilation = as_pair(c["stride"]), as_pads(c["pad"]), as_pair(c["dilation"])
    if len(weights) == 4:
        w, _, wp, bp = weights
        geo = direct.geometry(ins.x_shape, w.shape, stride, pads[:2],
                              direct._ext.lanes(direct.ISA, out.dtype == np.float64))
        planes = kernels.typed_view(scratch, (batch, geo.size), out.dtype)
        threads = max(1, min(kernels.NUM_THREADS, batch))
        grid = np.empty((threads, w.shape[0] * geo.qr), out.dtype)
        fn = direct._ext.forward
        args = (planes, geo.slot, geo.off, wp, bp, grid, out, *stride, *pads[:2], geo.hq, geo.wq,
                geo.qr, direct.ISA, threads)

        def call():
            fn(env[x], *args, env[res] if res else None, relu)
            env[name] = out
        return call
    w, b = weights

    def call():
        conv_forward(env[x], w, b, stride, pads, out=out, workspace=scratch, dilation=dilation,
                     groups=c["groups"])
        if res:
            np.add(out, env[res], out=out)
        if relu:
            np.maximum(out, 0, out=out)
        env[name] = out
    return call


def _op_call(ins, out, scratch, program):
    """The call of a step or member: its op's forward, with the arena's array as out= where
    the op takes one, and the scratch as workspace= where the step has planned one."""
    op, attrs, names, name, env = ins.op, ins.attrs, ins.ins, ins.name, program.env
    o = out if op.supports_out else None
    kw = {}
    if ins.kind == "member" and op.name == "conv2d" or \
            ins.kind == "step" and ins.step.workspace_buffer >= 0:
        kw["workspace"] = scratch
    key = ins.step.state_key if ins.kind == "step" else None

    def call():
        env[name] = op.forward([env[n] for n in names], attrs, mode="eval",
                               state=program.state.get(key), rng=program.rng, out=o, **kw)[0]
    return call
