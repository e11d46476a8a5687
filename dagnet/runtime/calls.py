"""The calls of an inference program's instructions other than convs (program.py binds them).

    affine_call(ins, out, program, small_below, threads)
                                                  a fully connected layer (affine_small below
                                                  small_below samples, else numpy's matmul)
    gap_call(ins, out, env)                        global average pools and their concat
    op_call(ins, out, scratch, program)            any other step: its op's forward
    chain_splits(code, calls, arrays, env)         runs of batch-1 split convs as one call each

Each returns a function of no arguments that reads its inputs from the program's env and
writes its value there.
"""
from __future__ import annotations

import numpy as np

from dagnet import blocks
from dagnet.ops import direct
from dagnet.ops.dense import eval_side

#: a batch of at least affine_call's small_below runs its product on dagnet/blocks.py's
#: one-thread GEMMs, as the affine op does (the same numbers as the executor's step, for any
#: thread count), not on OpenBLAS's own threads: with the other core busy those waited for
#: each other, LeNet's fc1 at batch 256 60-64 ms against 9 ms (medians, in-process A/B, load
#: 6.5); False for A/B measurements
BLOCKED: bool = True
#: runs of batch-1 split convs each of which reads conv outputs run as one call (chain_splits);
#: False for A/B measurements
CHAIN: bool = True
#: in such a run, a conv reading the output of the one before it gets its planes filled by
#: that one's items (SplitChain link): one hand-over to the helper threads a conv fewer; False
#: for A/B measurements
LINK: bool = True
#: such a run takes the head after it (a gap instruction of its convs' outputs and the affine
#: reading it: a ResNet's global average pool and classifier) into its call; False for A/B
#: measurements
HEAD: bool = True

try:
    from dagnet._kernels.infer import gap_concat
except ImportError:  # a build without the kernels: numpy
    def gap_concat(srcs, pooled, out):
        np.concatenate([a.mean(axis=(2, 3)) if p else a for a, p in zip(srcs, pooled)], axis=1,
                       out=out)


def affine_call(ins, out, program, small_below: int, threads: int):
    """The call of an affine instruction: x (flattened per example) @ w + b, max(., 0) if
    relu, into out (affine_small on `threads` below small_below samples, else blocks.matmul); the params
    are looked up on each call (the user may replace them), and the op's forward runs
    instead (its errors) if one no longer has the plan's dtype or shape."""
    x, name, relu, env, params = ins.reads[0], ins.name, ins.relu, program.env, program.plan.params
    wn, bn = ins.params
    dtype, w_shape, b_shape = program.dtype, params[wn].shape, params[bn].shape
    y = out.reshape(len(out), -1)
    matmul, add, maximum = blocks.matmul if BLOCKED else np.matmul, np.add, np.maximum
    side = {"min_side": eval_side("eval")} if BLOCKED else {}  # the eval op's blocks
    checked = op_call(ins, out, None, program)
    # a small batch: blocks of columns split among the caller and the helpers (affine.h)
    small = direct._ext.affine_small if direct._ext is not None and len(out) < small_below \
        else None

    def call():
        w, b, a = params[wn], params[bn], env[x]
        if w.dtype != dtype or b.dtype != dtype or w.shape != w_shape or b.shape != b_shape or \
                a.dtype != dtype:
            return checked()
        a = a.reshape(len(a), -1)
        if small is not None and w.flags.c_contiguous and a.flags.c_contiguous and \
                b.flags.c_contiguous:
            small(a, w, b, y, relu, threads)
            env[name] = out
            return
        matmul(a, w, out=y, **side)
        add(y, b, out=y)
        if relu:
            maximum(y, 0, out=y)
        env[name] = out
    if small is not None:  # for chain_splits: affine_small's numbers in a chain's head
        call.head = (x, (wn, bn), relu, y)
    return call


def gap_call(ins, out, env):
    """The call of a gap instruction: its parts' means (or vectors) side by side into out."""
    srcs, pooled, name, y = ins.reads, ins.pooled, ins.name, out.reshape(len(out), -1)

    def call():
        gap_concat([env[v] for v in srcs], pooled, y)
        env[name] = out
    call.head = (srcs, pooled, y)  # for chain_splits
    return call


def op_call(ins, out, scratch, program):
    """The call of a step or member: its op's forward, with the arena's array as out= where
    the op takes one, and the scratch as workspace= where the step has planned one."""
    op, attrs, names, name, env = ins.op, ins.attrs, ins.ins, ins.name, program.env
    o = out if op.supports_out else None
    kw = {"workspace": scratch} if ins.kind == "step" and ins.step.workspace_buffer >= 0 else {}
    key = ins.step.state_key if ins.kind == "step" else None

    def call():
        env[name] = op.forward([env[n] for n in names], attrs, mode="eval",
                               state=program.state.get(key), rng=program.rng, out=o, **kw)[0]
    return call


def chain_splits(code, calls, arrays, env, params=None) -> list:
    """[(call, its first instruction)]: the calls, with each run of consecutive split convs
    (program.py's batch-1 SplitConv calls, marked .split = (SplitConv, x, residual, out)) in
    which every conv after the first reads outputs of conv instructions (arena arrays, fixed
    while the calls are bound; env may hold others, a step's view) merged into one call
    (direct_split.pxi SplitChain: no Python between them), with the head after it (HEAD): a
    gap instruction averaging convs of the run alone, and an affine instruction reading it on
    affine_small (its params looked up in `params` on each call). Errors name the run's first
    step, or the head's affine when its params changed dtype or shape."""
    out, run, convs = [], [], set()  # run: [(instruction, call)]; convs: conv values so far
    steps = list(zip(code, calls))

    def close(k):  # the run ends before steps[k]: it takes the head there; k: the next step
        if not run:
            return k
        gap = affine = None
        if HEAD and params is not None and k < len(steps) and _takes_gap(steps[k], run):
            gap, k = steps[k], k + 1
            if k < len(steps) and _takes_affine(steps[k], gap):
                affine, k = steps[k], k + 1
        one = len(run) == 1 and gap is None
        out.append((run[0][1] if one else _chain(run, arrays, env, gap, affine, params), run[0][0]))
        run.clear()
        return k
    k = 0
    while k < len(steps):
        ins, call = steps[k]
        split = getattr(call, "split", None) if CHAIN else None
        if split is None or split[1] not in convs or (split[2] and split[2] not in convs):
            k0 = k
            k = close(k)
            if k != k0:  # the head was taken: look at what follows it
                continue
        if split is None:
            out.append((call, ins))
        else:
            run.append((ins, call))
        if ins.kind == "conv":
            convs.add(ins.name)
        k += 1
    close(k)
    return out


def _takes_gap(step, run) -> bool:
    """Whether a chain of the split convs in run takes step as its head's means: a gap
    instruction whose every part is the pooled output of one of them."""
    ins, call = step
    names = {i.name for i, _ in run}
    return ins.kind == "gap" and hasattr(call, "head") and all(ins.pooled) and \
        all(v in names for v in ins.reads) and len(set(ins.reads)) == len(ins.reads)


def _takes_affine(step, gap) -> bool:
    """Whether a chain's head takes step after its gap: an affine instruction on affine_small
    reading the gap's value."""
    ins, call = step
    return ins.kind == "affine" and hasattr(call, "head") and ins.reads == (gap[0].name,)


def _chain(run, arrays, env, gap, affine, params):
    """One call running the split convs of run (chain_splits) in turn, then the head."""
    splits = [call.split for _, call in run]
    x, res = splits[0][1:3]
    outs = [(ins.name, s[3]) for (ins, _), s in zip(run, splits)]
    means, fc, keys = None, None, ()
    if gap is not None:
        srcs, _, y = gap[1].head
        index = {ins.name: i for i, (ins, _) in enumerate(run)}
        cols = [0]
        for v in srcs:
            cols.append(cols[-1] + splits[index[v]][3].shape[1])
        means = (y, [(index[v], col) for v, col in zip(srcs, cols)])
        outs.append((gap[0].name, arrays[gap[0].name]))
    if affine is not None:
        _, keys, relu, y = affine[1].head
        fc = (gap[1].head[2], y, relu)
        outs.append((affine[0].name, arrays[affine[0].name]))
    chain = direct._ext.SplitChain([s[0] for s in splits],
                                   [(arrays[s[1]], arrays[s[2]] if s[2] else None) for s in splits[1:]],
                                   LINK, means, fc)
    get = params.get if params is not None else None

    def call():
        done = chain(np.ascontiguousarray(env[x]), np.ascontiguousarray(env[res]) if res else None,
                     *[get(k) for k in keys])
        env.update(outs)
        if not done:  # the affine's params changed dtype or shape: its own call, its errors
            try:
                affine[1]()
            except Exception as e:
                e.dagnet_step = affine[0].step
                raise
    return call
