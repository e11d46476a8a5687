"""Two strided convs of the same input in one pass: a ResNet's downsampling block's 3x3
stride-2 conv and its 1x1 stride-2 projection (direct.pyx forward_oc's second conv, out2).

    calls = pair_convs(program, calls, arrays, scratch, batch, threads)   # program.py _bind

Why: run as two calls, the projection read the block's input again after the first conv's
pass over the whole chunk had moved it out of L2 (resnet_small's projection: 0.1 ms a chunk
of 16 in the program, 0.05 ms alone). In one pass each sample's (padded) copy, made for the
first conv, serves the second while it is in cache, and one call's overhead goes.

Which: two consecutive conv instructions that both run on direct_oc.h's kernels (strided,
ops/direct_oc.py uses_oc), read the same value with the same stride and output extent, with
no skip, no pool, the second's pad no larger than the first's (its taps lie in the first's
padded sample) and its grid no wider (it reuses the first's). The first's call then writes
both values; the second's call only names its value. Its array is an arena buffer that no
value live during the first's call holds (nothing runs between them and the first frees no
buffer: its one input is read by the second), so writing it a call early is safe.

Bits: each conv's sums are its own kernel's, in the same order: the values are the two
calls' (tests/runtime/test_pairs.py).
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.ops import direct, direct_oc
from dagnet.ops.base import as_pair
from dagnet.ops.window import as_pads

#: False runs the two convs as two calls (A/B measurements); programs read it when they bind
ENABLED: bool = True


def pair_convs(program, calls, arrays, scratch, batch: int, threads: int) -> list:
    """calls (one per instruction of program.code) with each pair the module doc describes
    as one call and a call naming the second's value."""
    code, out, k = program.code, list(calls), 0
    if not ENABLED or batch < threads:  # a smaller batch splits filters (program.py)
        return out
    while k + 1 < len(code):
        a, b = code[k], code[k + 1]
        if _pairs(program, a, b):
            out[k], out[k + 1] = _pair_call(program, a, b, arrays, scratch, threads)
            k += 2
        else:
            k += 1
    return out


def _conv(program, ins):
    """(weights list, stride, pads) of a conv instruction on direct_oc.h's kernels, or None."""
    if ins.kind != "conv" or ins.residual or ins.pool is not None:
        return None
    w = program.weights[program.convs.index(ins)]
    stride, pads = as_pair(ins.conv["stride"]), as_pads(ins.conv["pad"])[:2]
    if len(w) != 6 or max(stride) < 2 or not direct_oc.uses_oc(ins.x_shape, w[0].shape, stride, pads):
        return None
    return w, stride, pads


def _geometry(program, ins, w, stride, pads):
    return direct_oc.oc_geometry_for(ins.x_shape, w[0].shape, stride, pads, program.dtype)


def _pairs(program, a, b) -> bool:
    one, two = _conv(program, a), _conv(program, b)
    if one is None or two is None or a.reads[0] != b.reads[0] or one[1] != two[1]:
        return False
    ga, gb = _geometry(program, a, *one), _geometry(program, b, *two)
    return (ga.ho, ga.wo) == (gb.ho, gb.wo) and gb.rows <= ga.rows and \
        all(q <= p for p, q in zip(one[2], two[2]))


def offsets_in(x_shape, w_shape, pads, frame) -> np.ndarray:
    """The taps (c, i, j) of a conv of pads (ph, pw), weights w_shape, at their offsets in the
    sample padded by frame (the first conv's pads): (c*Hp + i + dh)*Wp + j + dw."""
    (c, h, w), (_, _, kh, kw) = x_shape, w_shape
    hp, wp = h + 2 * frame[0], w + 2 * frame[1]
    ci, ii, jj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    return ((ci * hp + ii + frame[0] - pads[0]) * wp + jj + frame[1] - pads[1]).astype(
        np.int32).ravel()


def _pair_call(program, a, b, arrays, scratch, threads) -> tuple:
    (wa, stride, pa), (wb, _, pb) = _conv(program, a), _conv(program, b)
    geo, nb2 = _geometry(program, a, wa, stride, pa), _geometry(program, b, wb, stride, pb).nb
    off2 = offsets_in(tuple(a.x_shape), wb[0].shape, pb, pa)
    out_a, out_b, env, x = arrays[a.name], arrays[b.name], program.env, a.reads[0]
    rows = kernels.typed_view(scratch, (threads, geo.size), out_a.dtype)
    args = (rows, geo.off, wa[4], wa[5], out_a, geo.nb, *stride, *pa, direct.ISA, threads, None,
            a.relu, direct_oc.TAPS2_ENABLED, off2, wb[4], wb[5], out_b, nb2, b.relu)
    fn = direct._ext.forward_oc

    def both():  # a step's view is copied to the C order the kernel reads
        fn(np.ascontiguousarray(env[x]), *args)
        env[a.name], env[b.name] = out_a, out_b

    def named():  # made by both()
        env[b.name] = out_b
    return both, named
