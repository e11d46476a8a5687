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

Threads: a conv of a batch smaller than the thread count splits its filters among the caller
and spinning helper threads (SPLIT_FILTERS; direct.pyx, helpers.h), not an OpenMP team whose
sleeping threads' wake-ups took longer than a batch-1 conv; runs of them, one call (chain_splits).

Folded weights depend on params and batchnorm statistics the user may change in place
between runs: each run compares them with the snapshot they were folded from (a memcmp each,
_kernels/infer.pyx) and folds again if any changed.
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.ops import direct, direct_oc, winograd
from dagnet.ops.base import as_pair
from dagnet.ops.conv import columns_size, conv_forward, conv_geometry
from dagnet.ops.pool import maxpool_forward
from dagnet.ops.window import as_pads, is_symmetric
from dagnet.runtime.calls import affine_call, chain_splits, gap_call, op_call
from dagnet.runtime.lower import fold, instructions
from dagnet.runtime.pairs import pair_convs

#: False runs eval plans step by step on the executor (for A/B measurements and debugging)
ENABLED: bool = True
#: a batch smaller than the thread count splits each sample's filters (and a small batch's
#: fully connected layers their columns) among the caller and spinning helper threads
#: (direct.pyx, helpers.h), which stand down on a loaded machine
SPLIT_FILTERS: bool = True
#: such a split conv is bound to its buffers once (direct_split.pxi SplitConv), not passed
#: them as forward's 20 typed arguments on every call (~2 us); False for A/B measurements
BIND_SPLIT: bool = True

try:
    from dagnet._kernels.infer import same_bytes, same_sources
except ImportError:  # a build without the kernels: numpy
    def same_bytes(now, then):
        return len(now) == len(then) and all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(now, then))

    def same_sources(params, state, keys, then):
        try:
            now = [params[k] if f is None else state[k][f] for k, f in keys]
        except (KeyError, TypeError):
            return False
        return same_bytes(now, then)


class EvalProgram:
    """The instructions computing `wanted` (value names) from the plan's feeds, eval mode."""

    def __init__(self, plan, wanted: tuple, threads: int | None = None):
        self.plan, self.wanted = plan, tuple(wanted)
        self.threads = threads  # its kernels' threads (None: kernels.NUM_THREADS when bound)
        self.dtype = plan.dtype
        self.code = [_as_step(i) if i.kind == "conv" and i.pool is not None and
                     not _direct(i, plan.params[i.params[0]].shape) else i
                     for i in instructions(plan, plan.steps_for(self.wanted), set(self.wanted))]
        self.convs = [i for i in self.code if i.kind == "conv"]
        made = {i.name for i in self.code}
        #: (value, instruction) for each value read that no instruction makes: feeds (and
        #: params, constants), with the first instruction that reads it
        self.needs = {}
        for i in self.code:
            for v in i.reads if i.kind in ("conv", "gap") else i.ins:
                if v not in made:
                    self.needs.setdefault(v, i)
        for v in self.wanted:  # a wanted feed, param or constant: passed through (None: no step)
            if v not in made:
                self.needs.setdefault(v, None)
        #: (param name, None) or (state key, statistic) of each array the weights come from
        self.source_keys = [(p, None) for c in self.convs for p in c.params]
        for c in self.convs:
            if c.bn:
                gamma, beta, key, _ = c.bn
                self.source_keys += [(gamma, None), (beta, None), (key, "running_mean"),
                                     (key, "running_var")]
        self.weights: list = []  # per conv: [w, b] in the dtype, folded (bound into the calls)
        self.snapshot: list = []  # copies of the arrays they were folded from
        self.bound: dict = {}  # batch -> prebound calls (the latest two)
        self.env: dict = {}  # value -> array of the current run
        self.state, self.rng = {}, None

    # -- weights ---------------------------------------------------------------------------
    def _sources(self, state) -> list:
        """The arrays the folded weights come from: each conv's params, and its batchnorm's
        params and running statistics."""
        params = self.plan.params
        return [params[k] if field is None else state[k][field] for k, field in self.source_keys]

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
            for c, held, (w, b) in zip(self.convs, self.weights, fresh):
                held[0][...], held[1][...] = w, b
                for dst, src in zip(held[2:], _packed(c, w, b, dtype, len(held) > 4)):
                    dst[...] = src
        else:
            self.weights = [[w, b, *_packed(c, w, b, dtype)] for c, (w, b) in zip(self.convs, fresh)]
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

    def _affine(self, ins, out, threads: int):  # ChunkedProgram's tail binds the same (same bits)
        return affine_call(ins, out, self, SMALL_AFFINE if SPLIT_FILTERS else 0, threads)

    def _bind(self, batch: int) -> list:
        arrays = self._arena(batch)
        threads = self.threads or max(1, kernels.NUM_THREADS)
        scratch = np.empty(max([_scratch(i, batch, self, threads) for i in self.code] + [1]), np.uint8)
        calls = []
        for ins in self.code:
            if ins.kind == "conv":
                w = self.weights[self.convs.index(ins)]
                calls.append(_conv_call(ins, w, arrays[ins.name], scratch, self.env, batch, threads))
            elif ins.kind == "affine":
                calls.append(self._affine(ins, arrays[ins.name], threads))
            elif ins.kind == "gap":
                calls.append(gap_call(ins, arrays[ins.name], self.env))
            else:
                calls.append(op_call(ins, arrays[ins.name], scratch, self))
        if len(self.bound) >= 2:
            self.bound.pop(next(iter(self.bound)))
        calls = pair_convs(self, calls, arrays, scratch, batch, threads)  # pairs.py
        self.bound[batch] = calls = chain_splits(self.code, calls, arrays, self.env, self.plan.params)
        return calls

    # -- running ---------------------------------------------------------------------------
    def run(self, values: dict, state: dict, rng, batch: int) -> dict:
        """{wanted value: a fresh array}; values: the checked feeds (and params/constants)."""
        if not self.weights or not same_sources(self.plan.params, state, self.source_keys,
                                                self.snapshot):
            self._fold(state)
        self.state, self.rng = state, rng
        env = self.env
        env.clear()
        env.update(values)
        calls = self.bound.get(batch) or self._bind(batch)
        k = 0
        try:
            for k, (call, _) in enumerate(calls):
                call()
            return {v: np.array(env[v], copy=True) for v in self.wanted}
        except Exception as e:
            e.dagnet_step = getattr(e, "dagnet_step", None) or calls[k][1].step  # a head's own
            raise
        finally:
            env.clear()  # hold no arrays between runs


def _take(free: list, size: int) -> np.ndarray:
    """The smallest free buffer of at least size bytes (removed from free), or a new one."""
    fits = [k for k, b in enumerate(free) if b.nbytes >= size]
    if not fits:
        return np.empty(max(size, 1), np.uint8)
    return free.pop(min(fits, key=lambda k: free[k].nbytes))


#: the direct kernel computes Wq >= Wo columns of each output row (direct.h; or the rows alone); for inference
#: it runs convs whose grid is at most this much wider (no input gradient to weigh as
#: ops/direct.py's training rule does), 1x1 convs too (no im2col copy, no BLAS call)
DIRECT_WASTE = 1.5

#: batches below this run an affine instruction on direct.pyx's affine_small (its columns
#: split among the threads; a batch-1 GEMV streams its weights at the rate of the cores that
#: read them), larger ones on numpy's matmul (BLAS reuses each weight for several samples)
SMALL_AFFINE = 4


def _direct(ins, w_shape) -> bool:
    """Whether a conv instruction runs on the direct kernel (else conv_forward)."""
    c = ins.conv
    pads = as_pads(c["pad"])
    if direct._ext is None or not direct.ENABLED or c["groups"] != 1 or \
            as_pair(c["dilation"]) != (1, 1) or not is_symmetric(pads):
        return False
    geo = direct.geometry(tuple(ins.x_shape), tuple(w_shape), as_pair(c["stride"]), pads[:2], 1)
    return geo.wq <= DIRECT_WASTE * geo.wo and _pool_fits(ins.pool)


def _fast_kernel(ins, w_shape) -> str | None:
    """The kernel a direct conv runs on at batches of a sample a thread or more, if not the
    planes kernel (which alone pools): "oc" (direct_oc.h) for a conv ops/direct_oc.py's uses_oc
    takes, "wino" (winograd.h) for a stride-1 one that ops/winograd.py's uses_wino takes."""
    pair = as_pair(ins.conv["stride"]), as_pads(ins.conv["pad"])[:2]
    if ins.pool is not None:
        return None
    return "oc" if direct_oc.uses_oc(ins.x_shape, w_shape, *pair) else \
        "wino" if winograd.uses_wino(ins.x_shape, w_shape, *pair) else None


def _packed(ins, w, b, dtype, extra=None) -> tuple:
    """A conv's weights packed for the direct kernels that may run it: the planes kernel's,
    then, if extra (None: if _fast_kernel names one), direct_oc.h's (direct_oc.packs_oc), else
    Winograd's transformed filters; none for conv_forward."""
    if not _direct(ins, w.shape):
        return ()
    if extra is None:
        extra = _fast_kernel(ins, w.shape) is not None
    pads = as_pads(ins.conv["pad"])[:2]
    extra = () if not extra else direct_oc.oc_packed(w, b, dtype) if direct_oc.packs_oc(
        ins.x_shape, w.shape, as_pair(ins.conv["stride"])) else \
        winograd.packed(w, b, dtype, winograd.tile(ins.x_shape, pads))
    return (*direct.packed(w, b, dtype), *extra)


def _as_step(ins):
    """A conv + pool instruction the direct kernel does not take, as its step (whose fused
    kernel pools without writing the conv's output out: ops/fused.py ConvReLUPool)."""
    step = ins.step
    return type(ins)("step", step.name, tuple(step.inputs), step.shape, step, op=step.op,
                     attrs=step.attrs, ins=tuple(step.inputs))


def _pool_fits(pool) -> bool:
    """Whether the direct kernel's epilogue takes the pool (plain windows that do not overlap:
    AlexNet's 3x3 stride-2 pools keep their fused step) or there is none."""
    if pool is None:
        return True
    size, stride = as_pair(pool["size"]), as_pair(pool["stride"])
    return (as_pads(pool["pad"]) == (0, 0, 0, 0) and as_pair(pool["dilation"]) == (1, 1)
            and not pool["ceil_mode"] and stride[0] >= size[0] and stride[1] >= size[1])


def _scratch(ins, batch: int, program, threads: int) -> int:
    """Bytes of scratch one call needs (its kernel on `threads` threads)."""
    item = program.dtype.itemsize
    if ins.kind == "conv":
        c = ins.conv
        w_shape = program.plan.params[ins.params[0]].shape
        if _direct(ins, w_shape):
            pair = as_pair(c["stride"]), as_pads(c["pad"])[:2]
            shapes, is_double = (tuple(ins.x_shape), tuple(w_shape)), program.dtype == np.float64
            fast = _fast_kernel(ins, w_shape)
            row = direct_oc.oc_geometry_for(*shapes, *pair, program.dtype).size \
                if fast == "oc" else winograd.geometry(*shapes, pair[1], direct.ISA, is_double).scratch \
                if fast == "wino" else 0
            return max(row * threads,
                       direct.planes_size(ins.x_shape, w_shape, *pair) * _planes_rows(batch, threads)) * item
        return columns_size(w_shape, (w_shape[0], *_conv_out(ins, w_shape)), c["groups"]) * \
            batch * item
    if ins.kind in ("member", "affine", "gap"):  # a join's tail, a GEMV, a head: no scratch
        return 0
    wb = ins.step.workspace_buffer
    return program.plan.buffer_bytes.get(wb, 0) * batch if wb >= 0 else 0


def _planes_rows(batch: int, threads: int) -> int:
    """Rows of a direct conv's planes: one per thread, or per sample in a smaller batch (split)."""
    return min(batch, threads)


def _conv_call(ins, weights, out, scratch, env, batch, threads):
    """The call of a conv instruction: the direct kernel with the skip, relu and pool in its
    output pass, or conv_forward (im2col + GEMM) and the epilogue after it."""
    c, name, x, res, relu = ins.conv, ins.name, ins.reads[0], ins.residual, ins.relu
    stride, pads, dilation = as_pair(c["stride"]), as_pads(c["pad"]), as_pair(c["dilation"])
    fast = _fast_kernel(ins, weights[0].shape) if len(weights) == 6 and batch >= threads else None
    if fast == "wino":
        return _wino_call(ins, weights, out, scratch, env, threads)
    if fast == "oc":
        return _oc_call(ins, weights, out, scratch, env, threads)
    if len(weights) >= 4:
        w, _, wp, bp = weights[:4]
        geo = direct.geometry(tuple(ins.x_shape), w.shape, stride, pads[:2],
                              direct._ext.lanes(direct.ISA, out.dtype == np.float64))
        planes = kernels.typed_view(scratch, (_planes_rows(batch, threads), geo.size), out.dtype)
        # a batch smaller than the threads: each sample's filters split among them
        parts = threads if batch < threads and SPLIT_FILTERS else 1
        threads = min(threads, batch * parts)  # the kernel runs no more (direct.pyx)
        grid = np.empty((threads, w.shape[0] * geo.qr), out.dtype)
        pool = None
        if ins.pool is not None:
            p = ins.pool
            pool = (geo.ho, geo.wo, *as_pair(p["size"]), *as_pair(p["stride"]))
        fn = direct._ext.forward
        args = (planes, geo.slot, geo.off, wp, bp, grid, out, *stride, *pads[:2], geo.hq, geo.wq,
                geo.qr, direct.ISA, threads)
        if parts > 1 and BIND_SPLIT:  # bound once: a call checks its input and skip alone,
            # and copies it into the interiors of planes of its own (their borders stay zero)
            own = np.zeros((batch, geo.size), out.dtype)
            bound = direct._ext.SplitConv((batch, *ins.x_shape), own, *args[1:], bool(res), relu,
                                          pool, parts)

            def split():
                bound(np.ascontiguousarray(env[x]), np.ascontiguousarray(env[res]) if res else None)
                env[name] = out
            split.split = (bound, x, res, out)  # for chain_splits (calls.py)
            return split
        return _kernel_call(ins, out, env, fn, args, (pool, parts))
    w, b = weights
    y = out if ins.pool is None else np.empty((batch, w.shape[0], *_conv_out(ins, w.shape)), out.dtype)
    pool = {k: ins.pool[k] for k in ("size", "stride", "pad", "dilation", "ceil_mode")} \
        if ins.pool is not None else None

    def call():
        conv_forward(env[x], w, b, stride, pads, out=y, workspace=scratch, dilation=dilation,
                     groups=c["groups"])
        if res:
            np.add(y, env[res], out=y)
        if relu:
            np.maximum(y, 0, out=y)
        if pool is not None:
            maxpool_forward(y, **pool, out=out)
        env[name] = out
    return call


def _oc_call(ins, weights, out, scratch, env, threads):
    """A direct conv on direct_oc.h's kernels (batches of at least one sample a thread)."""
    c, w = ins.conv, weights[0]
    stride, pads = as_pair(c["stride"]), as_pads(c["pad"])[:2]
    geo = direct_oc.oc_geometry_for(ins.x_shape, w.shape, stride, pads, out.dtype)
    rows = kernels.typed_view(scratch, (threads, geo.size), out.dtype)
    args = (rows, geo.off, *weights[4:], out, geo.nb, *stride, *pads, direct.ISA, threads)
    return _kernel_call(ins, out, env, direct._ext.forward_oc, args, (direct_oc.TAPS2_ENABLED,))


def _wino_call(ins, weights, out, scratch, env, threads):
    """A 3x3 stride-1 conv by Winograd (ops/winograd.py; batches of a sample a thread or more)."""
    pads = as_pads(ins.conv["pad"])[:2]
    geo = winograd.geometry(tuple(ins.x_shape), weights[0].shape, pads, direct.ISA,
                            out.dtype == np.float64)
    rows = kernels.typed_view(scratch, (threads, geo.scratch), out.dtype)
    return _kernel_call(ins, out, env, winograd.kernel(geo),
                        (rows, *weights[4:], out, *pads, geo.hq, geo.wq, geo.qr, geo.size, direct.ISA,
                         threads))


def _kernel_call(ins, out, env, fn, args, tail=()):
    """The call of a direct conv kernel taking (x, *args, skip or None, relu, *tail): it writes out."""
    name, x, res, relu = ins.name, ins.reads[0], ins.residual, ins.relu

    def call():  # a step's view (a split, a transpose) is copied to the C order it reads
        fn(np.ascontiguousarray(env[x]), *args,
           np.ascontiguousarray(env[res]) if res else None, relu, *tail)
        env[name] = out
    return call


def _conv_out(ins, w_shape) -> tuple:
    """(Ho, Wo) of a conv instruction's conv (before its pool)."""
    c = ins.conv
    return conv_geometry((1, *ins.x_shape), w_shape, c["stride"], c["pad"], c["dilation"])[3]
