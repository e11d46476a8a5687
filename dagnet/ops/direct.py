"""Direct convolution: conv2d's numbers without im2col, for convs with few channels.

    x: (N, C, H, W), w: (F, C, kh, kw), b: (F,) -> (N, F, Ho, Wo), any stride and padding

`direct_forward` / `direct_backward` compute what ops/conv.py's conv_forward / conv_backward
compute (the tests hold them together and against dagnet/reference.py). Each sample's input
is laid out once as padded planes, split into the stride's phases, and every kernel tap reads
them at its own offset (dagnet/_kernels/direct.h): the matrix product of im2col + GEMM, with
its second operand never built. The planes are the op's workspace, kept for backward's dw;
the input gradient is the same product run on the output gradient's planes with the kernel
flipped, one product per phase of the stride.

Why: with few channels the GEMM of im2col + BLAS is thin (F = 16 rows) and its columns are
kh*kw times the input; OpenBLAS ran resnet_small's 16-channel 3x3 convs at about half the
rate of PyTorch's (oneDNN) direct kernels. `uses_direct` says which convs take this path.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dagnet import kernels
from dagnet.ops import direct_oc1

try:
    from dagnet._kernels import direct as _ext
except ImportError:
    _ext = None

#: the kernels' variant: the widest this CPU runs (AVX-512 CPUs run direct.h's products, copies,
#: read-out and dw (DW_WIDE), Winograd's and direct_oc.h's kernels on 16-float vectors, the rest
#: as AVX2: 1 here is the A/B against AVX2)
ISA: int = _ext.best_isa() if _ext is not None else 0
#: ISA's value on AVX-512 CPUs (isa.h DN_AVX512)
AVX512 = 2
#: False sends every conv to im2col + GEMM, as torch.backends.mkldnn.enabled does for PyTorch's
#: own direct kernels: for A/B measurements and for debugging. Plans read it when they are
#: compiled (workspace sizes) and convs when they run, so set it before compiling.
ENABLED: bool = True
#: dw on AVX-512 CPUs takes the AVX-512 kernel (direct.h dc_dw: 16 float lanes, tiles of 6
#: channels) where the grid has at least DW_WIDE_MIN_GRID positions; False keeps it on AVX2's
#: (A/B measurements). Measured single-thread, CPU time, batch 64, medians of 3 rounds:
#: resnet20's 16-channel 32 x 32 conv 1.49x, 32-channel 16 x 16 1.20x, 16 -> 32 stride 2
#: 1.13x; resnet_small's 16-channel 28 x 28 1.60x, 32-channel 14 x 14 (224 positions) 1.23x;
#: resnet20's 32 -> 64 stride 2 (72: 4.5 vectors) 0.82x, left on AVX2.
DW_WIDE: bool = True
DW_WIDE_MIN_GRID = 128
#: dw of convs with more than DWT_MIN_FILTERS filters on AVX-512 (with DW_WIDE) takes
#: direct.h's dc_dwt (vectorised along the output channels, dout transposed: no lane sums,
#: no grid columns past Wo); False keeps them on dc_dw (A/B measurements). See uses_dwt.
DW_CHANNELS: bool = True
DWT_MIN_FILTERS = 16
#: ... and at least DWT_MIN_TAPS taps a filter (C * kh * kw): dc_dwt transposes each sample's
#: dout (F x Ho*Wo values) once for all the taps, which few taps do not pay back. dw at batch 64,
#: 2 threads, dc_dwt / the other path's time (dc_dw, or planes_dw for the planes convs), 7
#: alternating rounds: 1 -> 32 3 x 3 at 28 x 28 (9 taps) 2.4x, LeNet's 1 -> 20 5 x 5 (25) 1.9x,
#: 3 -> 64 3 x 3 (27) 2.9x, 4 -> 32 (36) 1.9x, 8 -> 32 and 8 -> 64 (72) 1.4x; 16 -> 32 (144)
#: 0.93x, 3 -> 32 7 x 7 (147) 0.85x
DWT_MIN_TAPS = 128
#: the least variant that runs dc_dwt (AVX2's 16 registers hold too few of its accumulators;
#: the tests lower it to run every variant against the reference)
DWT_MIN_ISA = AVX512
# dw is summed per chunk of samples, the chunks fixed by the batch size alone, so that the
# result is the same for any thread count
DW_CHUNKS = 16


class Geometry(NamedTuple):
    """Where each tap reads, for one conv shape (direct.h explains the planes)."""

    ho: int
    wo: int
    hq: int  # the planes' height and width: the padded input over the stride
    wq: int
    slot: np.ndarray  # (sh*sw,) int32: phase rh*sw + rw -> its plane among the used, or -1
    size: int  # values per sample of the planes, a zero tail included
    off: np.ndarray  # (K,) int32: the offset of tap (c, i, j) into the planes
    qr: int  # the output grid's positions (ho * wq), rounded up to whole vectors
    off_dw: np.ndarray  # off padded to whole dw tiles (the extra taps read tap 0, unused)
    off_dwt: np.ndarray  # off padded to whole tiles of dc_dwt's taps (likewise)
    rows_dw: int  # F rounded up to whole dw tiles
    ti: int  # dout's planes for dx: dout placed at row ti, column tj of planes wd wide
    tj: int
    wd: int
    qd: int  # a phase's dx grid positions (hq * wd), rounded up to whole tiles
    dsize: int  # values of dout's planes, a zero tail included
    taps: tuple  # per phase rh*sw + rw: the (i, j) taps of the kernel that fall in it
    ph_taps: np.ndarray  # (sh*sw + 1,) int32: per phase F*len(taps), then F
    ph_off: np.ndarray  # the offsets of every phase's (filter, tap) pairs, phase by phase


def _round(v: int, to: int) -> int:
    return -(-v // to) * to


@functools.lru_cache(maxsize=256)
def geometry(x_shape: tuple, w_shape: tuple, stride: tuple, pad: tuple, lanes: int) -> Geometry:
    """The planes and offsets of a conv of per-example input x_shape (C, H, W) and weights
    w_shape (F, C, kh, kw) at the given (height, width) stride and pad, for vectors of lanes."""
    (c, h, w), (f, _, kh, kw), (sh, sw), (ph, pw) = x_shape, w_shape, stride, pad
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    hq, wq = -(-hp // sh), -(-wp // sw)
    used = sorted({(i % sh) * sw + j % sw for i in range(kh) for j in range(kw)})
    slot = np.full(sh * sw, -1, np.int32)
    slot[used] = np.arange(len(used))
    plane = hq * wq
    ii, jj = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    tap = slot[(ii % sh) * sw + jj % sw] * plane + (ii // sh) * wq + jj // sw
    off = (np.arange(c)[:, None, None] * len(used) * plane + tap).astype(np.int32).ravel()
    qr = _round(ho * wq, lanes)  # the kernel's last tile may be narrower (direct.h)
    size = max(c * len(used) * plane, int(off.max()) + qr)
    kr = _round(off.size, _ext.DW_TAPS)
    off_dw = np.zeros(kr, np.int32)
    off_dw[:off.size] = off
    off_dwt = np.zeros(_round(off.size, _ext.DWT_TAPS), np.int32)
    off_dwt[:off.size] = off
    # the input gradient, per phase (rh, rw) of the padded input: pixel (a*sh + rh, b*sw + rw)
    # sums w[f, c, i, j] * dout[f, a - i//sh, b - j//sw] over the taps i = rh, j = rw (mod s)
    ti, tj = (kh - 1) // sh, (kw - 1) // sw
    wd = wq + tj
    dplane = (hq + ti) * wd
    qd = _round(hq * wd, _ext.TILE_VECTORS * lanes)
    taps, counts, offs = [], [], []
    for rh in range(sh):
        for rw in range(sw):
            t = [(i, j) for i in range(rh, kh, sh) for j in range(rw, kw, sw)]
            taps.append(tuple(t))
            counts.append(f * len(t))
            offs += [g * dplane + (ti - i // sh) * wd + tj - j // sw for g in range(f) for i, j in t]
    ph_off = np.array(offs, np.int32)
    dsize = max(f * dplane, int(ph_off.max()) + qd)
    return Geometry(ho, wo, hq, wq, slot, size, off, qr, off_dw, off_dwt,
                    _round(f, _ext.DW_ROWS), ti, tj, wd, qd, dsize, tuple(taps),
                    np.array(counts + [f], np.int32), ph_off)


def _pack(wk, dtype) -> np.ndarray:
    """Weights (K, M) as the kernel reads them: tiles of TILE_ROWS outputs, k-major (zeros
    past M)."""
    k, m = wk.shape
    r = _ext.TILE_ROWS
    tiles = -(-m // r)
    wp = np.zeros((tiles * r, k), dtype=dtype)
    wp[:m] = wk.T
    return wp.reshape(tiles, r, k).transpose(0, 2, 1).ravel()


def _padded_bias(b, dtype) -> np.ndarray:
    r = _ext.TILE_ROWS
    bp = np.zeros(_round(b.size, r), dtype=dtype)
    bp[:b.size] = b
    return bp


def packed(w, b, dtype) -> tuple:
    """(weights, bias) of a conv as the forward kernel reads them: w (F, C, kh, kw) packed in
    tiles of TILE_ROWS filters, b (F,) padded to whole tiles (an inference program packs them
    once, not per call)."""
    f = w.shape[0]
    return (_pack(w.reshape(f, -1).T.astype(dtype, copy=False), dtype),
            _padded_bias(b.astype(dtype, copy=False), dtype))


class DirectCache(NamedTuple):
    """What backward reads: the planes, the geometry, the weights, the input's shape."""

    planes: np.ndarray
    geo: Geometry
    w: np.ndarray
    x_shape: tuple
    stride: tuple
    pad: tuple


def uses_direct(x_shape, w_shape, stride, pad) -> bool:
    """Whether a conv of per-example input x_shape (C, H, W), weights w_shape, (height,
    width) stride and pad runs here rather than by im2col + GEMM.

    Not for 1x1 kernels (their im2col is a copy, the GEMM as good). The direct products also
    compute the grid's columns past Wo and, for dx, the taps that fall in dout's padding: the
    wider the kernel against the output, the more of that. Direct when the forward computes at
    most 1.25x the outputs and dx at most 1.6x the input's pixels (resnet_small's 28 x 28 at
    pad 1: 1.07 and 1.15; LeNet's conv2, 12 x 12 -> 8 x 8: 1.5 and 3, left to im2col)."""
    if _ext is None or not ENABLED or tuple(w_shape[2:]) == (1, 1):
        return False
    geo = geometry(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(pad), 1)
    (sh, sw), (h, w) = stride, x_shape[1:]
    return geo.wq <= 1.25 * geo.wo and geo.hq * geo.wd * sh * sw <= 1.6 * h * w


def planes_size(x_shape, w_shape, stride, pad) -> int:
    """Values per example of the planes (the workspace direct_forward builds and keeps), for
    the widest vectors of any dtype (their grid's rounding needs the longest zero tail)."""
    return geometry(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(pad), 8).size


def direct_forward(x, w, b, stride, pad, out=None, workspace=None, keep=True, pool=False):
    """conv2d by shifted planes.  x: (N, C, H, W), w: (F, C, kh, kw), b: (F,), stride and pad
    (height, width) pairs -> (out (N, F, Ho, Wo), DirectCache, or None if not keep). out: an
    array to write into; workspace: a byte array to build the planes in (the memory plan's
    buffer); keep=False: no backward, each thread's planes reused in cache (an input gradient
    as a forward: ops/conv_planes.py). pool=True: out is the conv's 2 x 2 stride-2 max pool
    (floored), taken as each sample's grid is read out (ops/direct_pool.py), and its argmax
    (uint8, out's shape) comes third; not for direct_oc1.py's convs (they write no grid)."""
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    n, f = x.shape[0], w.shape[0]
    geo = geometry(x.shape[1:], w.shape, stride, pad, _ext.lanes(ISA, dtype == np.float64))
    threads = max(1, min(kernels.NUM_THREADS, n))
    shape = (n if keep else threads, geo.size)
    planes = np.empty(shape, dtype) if workspace is None else kernels.typed_view(workspace, shape, dtype)
    shape = (n, f, geo.ho // 2, geo.wo // 2) if pool else (n, f, geo.ho, geo.wo)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    cache = DirectCache(planes, geo, w, x.shape, stride, pad) if keep else None
    if not pool and direct_oc1.uses_oc1(x.shape[1:], w.shape, stride, pad, ISA):
        direct_oc1.forward(x, w, b, pad, planes, out, geo, ISA, threads)
        return out, cache
    grid = np.empty((threads, f * geo.qr), dtype=dtype)
    wp, bp = packed(w, b, dtype)
    argmax = np.empty(shape, np.uint8) if pool else None
    _ext.forward(x, planes, geo.slot, geo.off, wp, bp, grid, out, *stride, *pad, geo.hq, geo.wq,
                 geo.qr, ISA, threads, pool=(geo.ho, geo.wo, 2, 2, 2, 2) if pool else None,
                 argmax=argmax)
    return (out, cache, argmax) if pool else (out, cache)


def _phase_weights(w, geo, dtype) -> np.ndarray:
    """The flipped kernel of each phase's taps, packed for the input gradient's products."""
    parts = []
    for taps in geo.taps:
        if taps:
            i, j = np.array(taps).T
            sub = w[:, :, i, j].transpose(0, 2, 1).reshape(-1, w.shape[1])  # (F*taps, C)
            parts.append(_pack(sub.astype(dtype, copy=False), dtype))
    return np.concatenate(parts)


def uses_dwt(w_shape, isa: int) -> bool:
    """Whether dw of a conv of weights w_shape (F, C, kh, kw) runs on dc_dwt (direct.h) for
    kernel variant isa: on AVX-512 with more than DWT_MIN_FILTERS filters of at least
    DWT_MIN_TAPS taps (C * kh * kw) each. Measured single-thread, CPU time,
    batch 64, in process alternating with dc_dw (DW_WIDE's 16-lane kernel), medians of 9
    rounds: resnet20's 32-channel 16 x 16 conv 1.32x faster, 32 -> 64 stride 2 2.84x,
    16 -> 32 stride 2 1.43x; resnet_small's 32-channel 14 x 14 1.67x. 16 filters (one vector
    of channels: a broadcast per multiply-add) ran 0.6x dc_dw's speed (direct.h's kernels
    alone), left there."""
    return (DW_CHANNELS and DW_WIDE and isa >= DWT_MIN_ISA and w_shape[0] > DWT_MIN_FILTERS
            and int(np.prod(w_shape[1:])) >= DWT_MIN_TAPS)


def direct_backward(dout, cache, need_dx=True):
    """Gradients of direct_forward.  dout: (N, F, Ho, Wo) -> (dx (N, C, H, W) or None,
    dw (F, C, kh, kw), db (F,))."""
    planes, geo, w, x_shape, stride, pad = cache
    dout = np.ascontiguousarray(dout)
    dtype = dout.dtype
    n, f = dout.shape[:2]
    by_channels = uses_dwt(w.shape, ISA)
    wide = by_channels or (DW_WIDE and geo.qr >= DW_WIDE_MIN_GRID)
    isa = ISA if wide else min(ISA, 1)  # 1: AVX2
    lanes = _ext.dw_lanes(isa, dtype == np.float64)
    threads = max(1, min(kernels.NUM_THREADS, n))
    chunks = max(1, min(n, DW_CHUNKS))
    db_part = np.zeros((chunks, f))
    if by_channels:  # dw_part[chunk] (Kr, Mp): taps by channels
        off, mp = geo.off_dwt, _round(f, 2 * lanes)
        dw_part = np.empty((chunks, off.size, mp), dtype=dtype)
        lanes_part = np.zeros((threads, 0), dtype=dtype)
        dgrid = np.empty((threads, geo.ho * geo.wo * mp), dtype=dtype)
    else:
        off, kr, mr = geo.off_dw, geo.off_dw.size, geo.rows_dw
        dw_part = np.empty((chunks, mr, kr), dtype=dtype)
        lanes_part = np.empty((threads, mr * kr * lanes), dtype=dtype)
        dgrid = np.empty((threads, mr * geo.qr), dtype=dtype)
    dx = np.empty(x_shape, dtype=dtype) if need_dx else None
    if need_dx:
        c = x_shape[1]
        ph_w = _phase_weights(w, geo, dtype)
        doutp = np.empty((threads, geo.dsize), dtype=dtype)
        xgrid = np.empty((threads, c * geo.qd), dtype=dtype)
    else:
        ph_w = np.zeros(0, dtype)
        doutp = xgrid = np.zeros((1, 0), dtype)
    _ext.backward(dout, planes, off, dw_part, db_part, lanes_part, dgrid, geo.wq,
                  geo.qr, dx, geo.ph_taps, geo.ph_off, ph_w, doutp, xgrid, *stride, *pad,
                  geo.hq, geo.ti, geo.tj, geo.wd, geo.qd, isa, threads, by_channels)
    k = int(np.prod(w.shape[1:]))
    dw = dw_part.sum(axis=0)
    dw = (dw[:k, :f].T if by_channels else dw[:f, :k]).reshape(w.shape)
    db = db_part.sum(axis=0).astype(dtype)
    return dx, dw, db
