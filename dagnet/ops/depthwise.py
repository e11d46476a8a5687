"""Depthwise and grouped convolution by shifted planes: conv2d's numbers for groups > 1 with
few channels per group, without im2col.

    x: (N, C, H, W), w: (F, C/G, kh, kw), b: (F,) -> (N, F, Ho, Wo); any stride, dilation
    and (top, left, bottom, right) pad the op accepts; F/G filters per group (a channel
    multiplier)

`depthwise_forward` / `depthwise_backward` compute what ops/conv.py's grouped path computes
(the tests hold them together and against dagnet/reference.py). Each channel is laid out once
as padded planes split into the stride's phases (direct.h's layout), so a filter tap is an
offset, and an output plane is the sum of K = C/G*kh*kw shifted planes scaled by the tap's
weight (dagnet/_kernels/depthwise.*). The planes are the op's workspace, kept for dw. The
input gradient is the adjoint of the same sums: each phase plane of an input channel
gathers, with mirrored offsets, from its filters' output gradients on zero-bordered grids.

Why: im2col + a batched matmul ran MobileNet-v2's depthwise 3x3 convs as thousands of 1 x 9
@ 9 x P products, about 7x slower per multiply-add than its other convs. `uses_depthwise`
says which convs take this path.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dagnet import kernels

try:
    from dagnet._kernels import depthwise as _ext
except ImportError:
    _ext = None

#: the kernels' variant: the widest this CPU runs (AVX-512 CPUs run the AVX2 kernels)
ISA: int = _ext.best_isa() if _ext is not None else 0
#: False sends every grouped conv to im2col + a batched matmul: for A/B measurements and for
#: debugging. Plans read it when they are compiled (workspace sizes) and convs when they
#: run, so set it before compiling.
ENABLED: bool = True
# Channels per group up to which the planes beat im2col + a batched matmul: each filter's
# work grows with C/G in both, but the matmul's products get wider and BLAS catches up.
# Measured (benchmarks/bench_depthwise.py, a 3x3 conv's forward + backward at batch 64, old /
# new): 64 channels at 14 x 14: 7.4x at 1 per group, 2.3-2.5x at 8, 1.5x at 16; 128 at 7 x 7:
# 1.2x at 16, 0.83x at 32.
MAX_GROUP_CHANNELS = 16
# dw and db are summed per chunk of samples, the chunks fixed by the batch size alone, so that
# the result is the same for any thread count
DW_CHUNKS = 16
# Waking a second OpenMP thread costs tens of microseconds: below this many outputs per thread
# one thread runs faster (measured at batch 1, MobileNet-v2's depthwise shapes, 3,840 to
# 28,224 outputs: the forward took 0.45-0.84x the time on one thread as on two; the max-pool's
# rule, kernels.POOL_OUTPUTS_PER_THREAD, is the same)
OUTPUTS_PER_THREAD = 65536
# grids rounded to whole tiles of the widest vectors (8 floats): every variant's lanes divide it
ROUND = 8


class Geometry(NamedTuple):
    """Where each tap reads, for one grouped conv shape."""

    ho: int
    wo: int
    hq: int  # a phase plane's height and width: the padded extent over the stride
    wq: int
    phases: np.ndarray  # (nph,) int32: the used phases rh*sw + rw, in plane order
    cs: int  # values of one channel's planes (nph*hq*wq)
    size: int  # values per sample of the planes, a zero tail included
    off: np.ndarray  # (K,) int32: tap (c, i, j)'s offset from its group's planes
    qr: int  # the output grid's positions (ho*wq), rounded up to whole vectors
    pr: int  # a phase plane's positions (hq*wq), likewise
    lead: int  # dx: the output gradient's grid starts at lead of its E values
    ext: int  # E
    dx_off: np.ndarray  # (J,) int32: per (channel, phase) of a group, its taps' ext offsets
    dx_filter: np.ndarray  # (J,) filter within the group of each
    dx_tap: np.ndarray  # (J,) tap of each
    dx_counts: np.ndarray  # (C/G*nph,) int32: taps per (channel, phase)
    zero_dx: bool  # whether some input pixels meet no tap (their gradient is zero)


def _round(v: int, to: int = ROUND) -> int:
    return -(-v // to) * to


@functools.lru_cache(maxsize=256)
def geometry(x_shape: tuple, w_shape: tuple, groups: int, stride: tuple, pads: tuple,
             dilation: tuple, out_size: tuple) -> Geometry:
    """The planes and offsets of a grouped conv of per-example input x_shape (C, H, W),
    weights w_shape (F, C/G, kh, kw), (height, width) stride and dilation, pads (top, left,
    bottom, right) and output size (Ho, Wo)."""
    (c, h, w), (f, cg, kh, kw) = x_shape, w_shape
    (sh, sw), (dh, dw), (top, left) = stride, dilation, pads[:2]
    ho, wo = out_size
    # the padded extent the windows read (a floored stride or a bottom pad reads less)
    hn, wn = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    hq, wq = -(-hn // sh), -(-wn // sw)
    ii, jj = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
    tap_phase = ((ii % sh) * sw + jj % sw).ravel()
    phases = np.unique(tap_phase).astype(np.int32)
    slot = np.searchsorted(phases, tap_phase)
    plane, nph = hq * wq, phases.size
    cs = nph * plane
    tap = slot * plane + ((ii // sh) * wq + jj // sw).ravel()
    off = (np.arange(cg)[:, None] * cs + tap).astype(np.int32).ravel()
    qr, pr = _round(ho * wq), _round(plane)
    size = c * cs + max(0, int(off.max()) + qr - cg * cs)
    # dx: phase plane (ch, s) at p gathers w[m, k] * grid_m[p - off[k]] over its taps k
    lead = int(off.max())
    ext = lead + max(qr, pr)
    fg, kk = f // groups, kh * kw
    k_channel, k_slot = np.repeat(np.arange(cg), kk), np.tile(slot, cg)
    order = [(m, k) for ch in range(cg) for s in range(nph) for m in range(fg)
             for k in np.flatnonzero((k_channel == ch) & (k_slot == s))]
    m_idx = np.array([m for m, _ in order], np.int64)
    k_idx = np.array([k for _, k in order], np.int64)
    dx_off = (m_idx * ext + lead - off[k_idx]).astype(np.int32)
    counts = np.array([fg * int(np.sum(slot == s)) for _ in range(cg) for s in range(nph)],
                      np.int32)
    # pixels in no used phase, or past the planes' extent, meet no tap
    zero_dx = nph < sh * sw or hq * sh < top + h or wq * sw < left + w
    return Geometry(ho, wo, hq, wq, phases, cs, size, off, qr, pr, lead, ext, dx_off, m_idx,
                    k_idx, counts, bool(zero_dx))


class DepthwiseCache(NamedTuple):
    """What backward reads: the planes, the geometry, the weights, the input's shape."""

    planes: np.ndarray
    geo: Geometry
    w: np.ndarray
    x_shape: tuple
    groups: int
    stride: tuple
    pads: tuple


def _thread_rows(threads: int, length: int, dtype, zeros: bool = False) -> np.ndarray:
    """One scratch row per thread of at least `length` values, rows 64 bytes or more apart:
    threads writing rows that share a cache line stall each other (false sharing)."""
    make = np.zeros if zeros else np.empty
    return make((threads, _round(length, 16) + 16), dtype=dtype)


def _threads(outputs: int, items: int) -> int:
    return max(1, min(kernels.NUM_THREADS, items, outputs // OUTPUTS_PER_THREAD))


def uses_depthwise(x_shape, w_shape, groups) -> bool:
    """Whether a grouped conv of per-example input x_shape (C, H, W) and weights w_shape (F,
    C/G, kh, kw) runs here rather than by im2col + a batched matmul: groups > 1 with at most
    MAX_GROUP_CHANNELS channels per group."""
    return (_ext is not None and ENABLED and groups > 1
            and w_shape[1] <= MAX_GROUP_CHANNELS)


def planes_size(x_shape, w_shape, groups, stride, pads, dilation, out_size) -> int:
    """Values per example of the planes (the workspace depthwise_forward builds and keeps)."""
    return geometry(tuple(x_shape), tuple(w_shape), groups, tuple(stride), tuple(pads),
                    tuple(dilation), tuple(out_size)).size


def depthwise_forward(x, w, b, groups, stride, pads, dilation, out_size, out=None,
                      workspace=None):
    """The grouped conv by shifted planes.  x: (N, C, H, W), w: (F, C/G, kh, kw), b: (F,);
    stride, dilation (height, width) pairs, pads (top, left, bottom, right), out_size (Ho,
    Wo) -> (out (N, F, Ho, Wo), DepthwiseCache). out: an array to write into; workspace: a
    byte array to build the planes in (the memory plan's buffer)."""
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    n, f = x.shape[0], w.shape[0]
    geo = geometry(x.shape[1:], w.shape, groups, tuple(stride), tuple(pads), tuple(dilation),
                   tuple(out_size))
    shape = (n, geo.size)
    planes = np.empty(shape, dtype) if workspace is None else kernels.typed_view(workspace, shape, dtype)
    if out is None:
        out = np.empty((n, f, geo.ho, geo.wo), dtype=dtype)
    threads = _threads(out.size, n * groups)
    grid = _thread_rows(threads, geo.qr, dtype)
    _ext.forward(x, planes, geo.phases, geo.off,
                 np.ascontiguousarray(w.reshape(f, -1), dtype=dtype),
                 np.ascontiguousarray(b, dtype=dtype), grid, out, groups, *stride, *pads[:2],
                 geo.hq, geo.wq, geo.qr, ISA, threads)
    return out, DepthwiseCache(planes, geo, w, x.shape, groups, tuple(stride), tuple(pads))


def depthwise_backward(dout, cache, need_dx=True):
    """Gradients of depthwise_forward.  dout: (N, F, Ho, Wo) -> (dx (N, C, H, W) or None,
    dw (F, C/G, kh, kw), db (F,))."""
    planes, geo, w, x_shape, groups, stride, pads = cache
    dout = np.ascontiguousarray(dout)
    dtype = dout.dtype
    f = dout.shape[1]
    chunks = max(1, min(dout.shape[0], DW_CHUNKS))
    threads = _threads(dout.size, chunks)
    dw = np.zeros((chunks, f, geo.off.size))
    db = np.zeros((chunks, f))
    ext = _thread_rows(threads, f // groups * geo.ext, dtype, zeros=True)
    if need_dx:
        dx = np.empty(x_shape, dtype=dtype)
        w3 = w.reshape(groups, f // groups, -1).astype(dtype, copy=False)
        dx_w = np.ascontiguousarray(w3[:, geo.dx_filter, geo.dx_tap])
        scratch = _thread_rows(threads, geo.pr, dtype)
    else:
        dx, dx_w, scratch = None, np.zeros((groups, geo.dx_off.size), dtype), np.zeros((1, 0), dtype)
    _ext.backward(dout, planes, geo.phases, geo.off, dw, db, ext, dx, geo.dx_off, dx_w,
                  geo.dx_counts, scratch, groups, x_shape[1], *stride, *pads[:2], geo.hq,
                  geo.wq, geo.qr, geo.pr, geo.lead, geo.ext, geo.zero_dx, ISA, threads)
    return dx, dw.sum(axis=0).astype(dtype).reshape(w.shape), db.sum(axis=0).astype(dtype)
