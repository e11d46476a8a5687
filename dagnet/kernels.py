"""The heavy loops of conv and max-pool: compiled Cython kernels, with numpy fallbacks.

    cols = im2col(x, (kh, kw), stride, pad, (ho, wo), ones_row=True)   # (N, K + 1, ho*wo)
    dx = col2im(dcols, x.shape, (kh, kw), stride, pad, (ho, wo))       # (N, C, H, W)
    (layout="KNP" stores cols as (K, N, ho*wo), for one GEMM over the whole batch)
    out, argmax = maxpool_forward(x, (kh, kw), stride, pad, (ho, wo))  # (N, C, ho, wo) each
    dx = maxpool_backward(dout, argmax, x.shape, (kh, kw), stride, pad, dx=None)

The fused conv + relu + max-pool (ops/convpool.py) works on patches stored as rows:
    rows = im2row(x, (kh, kw), stride, pad, (ho, wo), ones_row=True)   # (N, ho*wo, R)
    out, argmax = maxpool_rows(y, (ho, wo), psize, pstride, ppad, (po, qo), relu=True)
        # y = the conv output channels-last (N, ho*wo, F); out, argmax (N, F, po, qo)
    dx, dwb = conv_pool_backward(g, argmax, rows, w2, x.shape, conv, pool)

`stride`, `pad` and sizes are (height, width) pairs. `HAVE_CYTHON` says whether the compiled
kernels in dagnet/_kernels are loaded; without them dagnet warns once and runs the numpy
versions (`*_numpy`, same results, several times slower). The compiled kernels split the
batch over `NUM_THREADS` OpenMP threads: the env var DAGNET_NUM_THREADS, default the cores
this process may use (dagnet/procenv.py tunes how the two thread pools, libgomp's and
OpenBLAS's, share the cores).
"""
from __future__ import annotations

import importlib
import math
import os
import warnings

import numpy as np

from dagnet.errors import DagnetError
# the numpy versions: the fallback below, and the tests' oracle as kernels.*_numpy
from dagnet.kernels_numpy import (argmax_dtype, col2im_numpy, im2col_numpy,  # noqa: F401
                                  maxpool_backward_numpy, maxpool_forward_numpy)


try:
    from dagnet._kernels import convpool as _convpool_ext
    from dagnet._kernels import im2col as _im2col_ext
    from dagnet._kernels import norm as _norm_ext
    from dagnet._kernels import pool as _pool_ext

    HAVE_CYTHON = True
except ImportError as exc:
    _convpool_ext = _im2col_ext = _norm_ext = _pool_ext = None
    HAVE_CYTHON = False
    warnings.warn(
        f"dagnet: the compiled Cython kernels are missing ({exc}); conv and pooling fall back to "
        f"numpy and run several times slower. Build them with `pip install -e .` in the dagnet "
        f"checkout (or `python setup.py build_ext --inplace`).",
        RuntimeWarning,
        stacklevel=2,
    )


def _threads_from_env() -> int:
    raw = os.environ.get("DAGNET_NUM_THREADS", "").strip()
    if not raw:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not raw.isdigit() or int(raw) < 1:
        raise DagnetError(f"DAGNET_NUM_THREADS must be a positive integer, got {raw!r}")
    return int(raw)


NUM_THREADS: int = _threads_from_env()

#: the vector instructions of the row kernel's sparse sums (conv_pool_backward): the best this
#: CPU runs, one of ROW_ISAS
ROW_ISAS = _convpool_ext.ISA_NAMES if HAVE_CYTHON else ("portable",)
ROW_ISA: int = _convpool_ext.best_isa() if HAVE_CYTHON else 0


def _norm_build(isa: str):
    """The batchnorm kernels built for `isa` (setup.py's ISA_FLAGS; none off x86), or None."""
    try:
        return importlib.import_module(f"dagnet._kernels.norm_{isa}")
    except ImportError:
        return None


#: {ISA: module}, the batchnorm kernels' builds this CPU runs; the widest serves: statistics,
#: normalise and backward 1.3-2x faster with AVX-512 than the baseline build (which sums in
#: double two a vector). Sums follow the vector width: bits differ between builds, never
#: between thread counts.
NORM_VARIANTS = {"portable": _norm_ext, **{i: m for i in ROW_ISAS[1:ROW_ISA + 1]
                                          if (m := _norm_build(i))}} if HAVE_CYTHON else {}
_norm_ext = list(NORM_VARIANTS.values())[-1] if HAVE_CYTHON else None
#: conv_pool_backward sums dw | db over this many chunks of samples (each on one thread, the
#: chunks then in order): enough for two threads to balance, few enough to sum cheaply
ROW_DW_CHUNKS = 16

# Waking a sleeping (passive) OpenMP thread costs tens of microseconds: below this many
# outputs a max-pool runs faster on one thread (measured: 51,200 outputs took 0.14 ms on one
# thread, 0.17 ms on two; 184,320 took 0.42 ms on one, 0.33 ms on two).
POOL_OUTPUTS_PER_THREAD = 65536


def _pool_threads(outputs: int) -> int:
    return max(1, min(NUM_THREADS, outputs // POOL_OUTPUTS_PER_THREAD))


# -- im2col / col2im -----------------------------------------------------------------------
def _as_samples(cols, layout):
    """The (N, rows, P) view of cols stored as layout "NKP" (N, rows, P) or "KNP" (rows, N, P)."""
    if layout not in ("NKP", "KNP"):
        raise ValueError(f"layout must be 'NKP' or 'KNP', got {layout!r}")
    return cols if layout == "NKP" else cols.transpose(1, 0, 2)


def im2col(x, ksize, stride, pad, out_size, ones_row=False, layout="NKP", buffer=None,
           dilation=(1, 1), threads=None, out=None):
    """Patches of x as columns.  x: (N, C, H, W) -> cols (N, K, ho*wo), K = C*kh*kw [+ 1].

    Row (c*kh + i)*kw + j of sample n holds x[n, c, oh*sh + i*dh - ph, ow*sw + j*dw - pw] (0
    in the padding); pad is the (top, left) offset of the windows, out_size how many there are
    (so any bottom/right pad). With ones_row a last row of ones lets the GEMM add the bias.
    layout "KNP" stores the same numbers as (K, N, ho*wo): one GEMM (F, K) @ (K, N*ho*wo) for
    the whole batch. buffer: a byte array to build cols in (at its front) instead of a fresh
    allocation; out: an array of that shape and layout to fill instead (a view: a block of
    samples of a larger one). threads: the OpenMP threads (default NUM_THREADS).
    """
    n, c = x.shape[:2]
    rows = c * ksize[0] * ksize[1] + int(ones_row)
    p = out_size[0] * out_size[1]
    shape = (n, rows, p) if layout == "NKP" else (rows, n, p)
    if out is not None:
        cols = out
    else:
        cols = np.empty(shape, dtype=x.dtype) if buffer is None else typed_view(buffer, shape, x.dtype)
    samples = _as_samples(cols, layout)
    if HAVE_CYTHON:
        _im2col_ext.im2col(np.ascontiguousarray(x), samples, *ksize, *stride, *pad, *dilation,
                           *out_size, ones_row, threads or NUM_THREADS)
    else:
        samples[...] = im2col_numpy(x, ksize, stride, pad, out_size, ones_row, dilation)
    return cols


def typed_view(buffer: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """The C-contiguous array of `shape` and `dtype` at the front of the byte array `buffer`."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # np.prod costs ~6 us; this runs ~15 times a step
    if buffer.dtype != np.uint8 or buffer.ndim != 1 or buffer.nbytes < nbytes:
        raise ValueError(f"a workspace of {nbytes} bytes is needed, got {buffer.dtype} "
                         f"{buffer.shape}")
    return buffer[:nbytes].view(dtype).reshape(shape)


def col2im(cols, x_shape, ksize, stride, pad, out_size, layout="NKP", dilation=(1, 1), dx=None,
           threads=None):
    """The adjoint of im2col: sum each column entry back into its pixel.  -> dx (N, C, H, W).

    cols: (N, K or more, ho*wo), or (K or more, N, ho*wo) for layout "KNP"; rows after
    K = C*kh*kw (a bias row) are ignored. dx: a C-contiguous array to write into; threads:
    the OpenMP threads (default NUM_THREADS).
    """
    samples = _as_samples(cols, layout)
    if not HAVE_CYTHON:
        r = col2im_numpy(samples, x_shape, ksize, stride, pad, out_size, dilation)
        if dx is None:
            return r
        dx[...] = r
        return dx
    if samples.strides[2] != samples.itemsize:
        samples = np.ascontiguousarray(samples)
    dx = np.empty(x_shape, dtype=cols.dtype) if dx is None else dx
    _im2col_ext.col2im(samples, dx, *ksize, *stride, *pad, *dilation, *out_size,
                       threads or NUM_THREADS)
    return dx


# -- max-pool ------------------------------------------------------------------------------
def _plane_view(a, writable=False):
    """a itself when each (H, W) plane of the (N, C, H, W) array is contiguous (any strides on
    N and C, e.g. a conv's GEMM layout), else a contiguous copy - or, for an array the kernel
    must write into (writable), a ValueError."""
    if (a.shape[3] < 2 or a.strides[3] == a.itemsize) and \
            (a.shape[2] < 2 or a.strides[2] == a.shape[3] * a.itemsize):
        return a
    if writable:
        raise ValueError(f"an output array of shape {a.shape} needs contiguous (H, W) planes, "
                         f"got strides {a.strides}")
    return np.ascontiguousarray(a)


def maxpool_forward(x, ksize, stride, pad, out_size, out=None, dilation=(1, 1)):
    """Window maxima and where they are.  x: (N, C, H, W) -> out, argmax: (N, C, ho, wo).

    argmax is the index i*kw + j of the max inside its window (the first max on ties; a NaN
    propagates, the last NaN in the window wins, as in PyTorch); padding counts as -inf. pad
    is the (top, left) offset of the windows, out_size how many there are; taps are dilation
    cells apart.
    x may be any view whose (H, W) planes are contiguous, e.g. the (N, C, H, W) view of a
    conv's GEMM output stored channel-major: it is read in place, not copied. out: a
    C-contiguous (N, C, ho, wo) array to write the maxima into.
    """
    n, c = x.shape[:2]
    if out is not None and (out.shape != (n, c, *out_size) or out.dtype != x.dtype
                            or not out.flags.c_contiguous):
        raise ValueError(f"maxpool_forward: out must be a C-contiguous {x.dtype} array of shape "
                         f"{(n, c, *out_size)}, got {out.dtype} {out.shape}")
    if not HAVE_CYTHON:
        y, argmax = maxpool_forward_numpy(x, ksize, stride, pad, out_size, dilation)
        if out is None:
            return y, argmax
        out[...] = y
        return out, argmax
    if out is None:
        out = np.empty((n, c, *out_size), dtype=x.dtype)
    argmax = np.empty((n, c, *out_size), dtype=argmax_dtype(ksize[0] * ksize[1]))
    _pool_ext.maxpool_forward(_plane_view(x), out, argmax, *ksize, *stride, *pad, *dilation,
                              _pool_threads(out.size))
    return out, argmax


def maxpool_backward(dout, argmax, x_shape, ksize, stride, pad, dx=None, dilation=(1, 1)):
    """Route each dout entry to its window's argmax.  dout: (N, C, ho, wo) -> dx (N, C, H, W).

    dx, if given, is overwritten and returned: any (N, C, H, W) view with contiguous planes
    (a fused conv passes the view of its GEMM-layout gradient buffer)."""
    if not HAVE_CYTHON:
        g = maxpool_backward_numpy(dout, argmax, x_shape, ksize, stride, pad, dilation)
        if dx is None:
            return g
        dx[...] = g
        return dx
    if dx is None:
        dx = np.empty(x_shape, dtype=dout.dtype)
    elif tuple(dx.shape) != tuple(x_shape):
        raise ValueError(f"maxpool_backward: dx must have shape {tuple(x_shape)}, got {dx.shape}")
    _pool_ext.maxpool_backward(np.ascontiguousarray(dout), argmax, _plane_view(dx, True),
                               *ksize, *stride, *pad, *dilation, _pool_threads(dout.size))
    return dx


# -- conv + relu + max-pool in row layout (the fused step) -------------------------------
def im2row(x, ksize, stride, pad, out_size, ones_row=False, buffer=None, threads=None,
           out=None):
    """Patches of x as rows.  x: (N, C, H, W) -> rows (N, ho*wo, K [+ 1]), K = C*kh*kw:
    im2col's numbers transposed, each output pixel's patch contiguous (then a 1 with
    ones_row). buffer: a byte array to build rows in (at its front) instead of a fresh
    allocation; out: an array of that shape to fill instead (a block of samples of a larger
    one). threads: the OpenMP threads (default NUM_THREADS)."""
    n, c = x.shape[:2]
    shape = (n, out_size[0] * out_size[1], c * ksize[0] * ksize[1] + int(ones_row))
    if out is not None:
        rows = out
    else:
        rows = np.empty(shape, dtype=x.dtype) if buffer is None else typed_view(buffer, shape, x.dtype)
    if HAVE_CYTHON:
        _convpool_ext.im2row(np.ascontiguousarray(x), rows, *ksize, *stride, *pad, *out_size,
                             ones_row, threads or NUM_THREADS)
    else:
        rows[...] = im2col_numpy(x, ksize, stride, pad, out_size, ones_row).transpose(0, 2, 1)
    return rows


def maxpool_rows(y, conv_size, ksize, stride, pad, out_size, relu=False, out=None,
                 argmax=None, threads=None):
    """Max-pool (then relu) of a conv output stored channels-last, y (N, ho*wo, F) with
    conv_size = (ho, wo) -> out, argmax (N, F, po, qo) as maxpool_forward gives them.
    out, argmax: arrays to write into; threads: the OpenMP threads (default: by size)."""
    n, _, f = y.shape
    if out is None:
        out = np.empty((n, f, *out_size), dtype=y.dtype)
    if not HAVE_CYTHON:
        planes = y.reshape(n, *conv_size, f).transpose(0, 3, 1, 2)
        m, am = maxpool_forward_numpy(planes, ksize, stride, pad, out_size)
        out[...] = np.maximum(m, 0) if relu else m  # maximum keeps a NaN
        if argmax is None:
            return out, am
        argmax[...] = am
        return out, argmax
    if argmax is None:
        argmax = np.empty(out.shape, dtype=argmax_dtype(ksize[0] * ksize[1]))
    threads = threads or _pool_threads(out.size)
    scratch = out[0].size
    _convpool_ext.maxpool_rows(y, out, argmax, np.empty((threads, scratch), dtype=y.dtype),
                               np.empty((threads, scratch), dtype=np.int32), *conv_size, *ksize,
                               *stride, *pad, relu, threads)
    return out, argmax


def conv_pool_backward(g, argmax, rows, w2, x_shape, conv, pool, need_dx=True, dwb=None,
                       dx=None, threads=None, mask=None):
    """Gradients of y = rows @ (w2 | b).T followed by a max-pool (and a relu), from the pooled
    gradient g (N, F, po, qo) and the pool's argmax: -> (dx or None, dwb), dwb (F, K + 1)
    being dw | db when rows carry the ones column. w2: (F, K). mask: the pooled output
    (N, F, po, qo) when a relu follows the pool (g passes where it is > 0), else None.

    conv = (ksize, stride, pad, (ho, wo)) and pool = (ksize, stride, pad) pairs. Only the
    conv outputs that won their window get a gradient, so the kernel visits those alone, their
    rows summed per filter and their filters per row; the numpy version is the dense
    computation it must match. dwb, dx: arrays to write into; threads: the OpenMP threads
    (default NUM_THREADS). dw | db is summed per chunk of samples (ROW_DW_CHUNKS of them,
    fixed by the batch size), then over the chunks in order: the same for any thread count."""
    n, f = g.shape[:2]
    (kh, kw), cstride, cpad, (ho, wo) = conv
    pksize, pstride, ppad = pool
    if dx is None and need_dx:
        dx = np.empty(x_shape, dtype=g.dtype)
    if not HAVE_CYTHON:
        if mask is not None:
            g = np.where(mask > 0, g, 0)  # relu_grad's select: +0.0 where dead
        dconv = maxpool_backward_numpy(g, argmax, (n, f, ho, wo), pksize, pstride, ppad)
        d2 = dconv.transpose(0, 2, 3, 1).reshape(n * ho * wo, f)
        dwb = np.matmul(d2.T, rows.reshape(n * ho * wo, -1), out=dwb)
        if not need_dx:
            return None, dwb
        dcols = (d2 @ w2).reshape(n, ho * wo, -1).transpose(0, 2, 1)
        dx[...] = col2im_numpy(dcols, x_shape, (kh, kw), cstride, cpad, (ho, wo))
        return dx, dwb
    threads = max(1, min(threads or NUM_THREADS, n))
    per = -(-n // ROW_DW_CHUNKS)
    dw_part = np.zeros((-(-n // per), f, rows.shape[2]), dtype=g.dtype)
    # the filters and their column gradients in rows of whole, aligned vectors (16 values
    # at 64-byte boundaries): the kernel's loads then never straddle a cache line and no row
    # ends in a partial vector
    kp = -(-w2.shape[1] // 16) * 16
    w2p = _aligned_zeros((f, kp), g.dtype)
    w2p[:, :w2.shape[1]] = w2
    dcols = _aligned_zeros((threads, ho * wo, kp), g.dtype) if need_dx else None
    fq = f * g.shape[2] * g.shape[3]
    iscratch = np.empty((threads, _convpool_ext.int_scratch(f, fq // f, ho * wo)),
                        dtype=np.int32)
    rscratch = np.empty((threads, 2 * fq), dtype=g.dtype)
    mask = None if mask is None else np.ascontiguousarray(mask, g.dtype)
    _convpool_ext.backward(rows, np.ascontiguousarray(g), mask, argmax, w2p, dw_part, dcols,
                           dx if need_dx else None, iscratch, rscratch, ho, wo, *pksize,
                           *pstride, *ppad, kh, kw, *cstride, *cpad, ROW_ISA, threads, per)
    return dx, np.sum(dw_part, axis=0, out=dwb)


def _aligned_zeros(shape, dtype, align=64):
    """np.zeros(shape, dtype) starting at a multiple of align bytes."""
    raw = np.zeros(math.prod(shape) * np.dtype(dtype).itemsize + align, np.uint8)
    return typed_view(raw[-raw.ctypes.data % align:], shape, dtype)


# -- spatial batchnorm ---------------------------------------------------------------------
def _planes(a, writable=False):
    """_plane_view(a) as (N, C, H*W): its contiguous planes merge into one axis, a view."""
    return _plane_view(a, writable).reshape(a.shape[0], a.shape[1], -1)


def bn_stats(x):
    """Per-channel mean and biased variance of x (N, C, H, W) over N, H, W, summed in float64:
    (mean, var), each (C,) float64. The bn_* functions need the compiled kernels:
    batchnorm_forward / batchnorm_backward (ops/norm.py) hold their formulas in numpy."""
    c = x.shape[1]
    mean, var = np.empty(c), np.empty(c)
    _norm_ext.channel_stats(_planes(x), mean, var, NUM_THREADS)
    return mean, var


def bn_normalize(x, mean, inv_std, gamma, beta, relu=False, out=None, skip=None):
    """out = gamma * (x - mean) * inv_std + beta per channel (+ skip, then max(out, 0) if
    relu) in one pass; the normalised x is not stored (bn_backward recomputes it from x).
    x: (N, C, H, W); mean, inv_std, gamma, beta: (C,) of x's dtype; skip: like x (a residual
    join). -> out, an array like x with contiguous (H, W) planes (given, or new)."""
    out = np.empty(x.shape, dtype=x.dtype) if out is None else out
    x3 = _planes(x)
    _norm_ext.normalize(x3, mean, inv_std, gamma, beta, _planes(out, True), relu, NUM_THREADS,
                        x3 if skip is None else _planes(skip), skip is not None)
    return out


def bn_stats_normalize(x, gamma, beta, eps, relu=False, out=None, skip=None):
    """bn_stats, then bn_normalize with the batch's statistics, one channel at a time (it is
    still in L2 when normalised): -> (out, mean, var, inv_std), each (C,) in x's dtype, and
    inv_std = 1 / sqrt(var + eps) as numpy computes it: the two calls' numbers."""
    c, dtype, x3 = x.shape[1], x.dtype, _planes(x)
    out = np.empty(x.shape, dtype=dtype) if out is None else out
    stats, mean_std = np.empty((2, c)), np.empty((2, c), dtype)  # (mean, var), (mean, inv_std)
    _norm_ext.stats_normalize(x3, stats[0], stats[1], dtype.type(eps), mean_std[0], mean_std[1],
                              gamma, beta, _planes(out, True), relu, NUM_THREADS,
                              x3 if skip is None else _planes(skip), skip is not None)
    return out, mean_std[0], stats[1].astype(dtype), mean_std[1]


def bn_backward(dout, x, mean, gamma, inv_std, relu_out=None, need_dx=True, dx=None,
                masked=None):
    """Train-mode gradients of bn_normalize (with statistics of the batch) from its input x,
    the relu's mask from its output relu_out when given: -> (dx or None, dgamma, dbeta).
    dx: an array like dout with contiguous (H, W) planes to write into (a conv's GEMM-layout
    gradient buffer); masked: one like dout that gets g (the skip's gradient at a residual join).
        g = dout (* (relu_out > 0));  xhat = (x - mean) * inv_std (as forward computed it);
        dbeta = sum g, dgamma = sum g * xhat per channel (then dx, a channel at a time: L2);
        dx = gamma * inv_std / m * (m * g - dbeta - xhat * dgamma),  m = N*H*W"""
    c, dtype, d3, x3 = dout.shape[1], dout.dtype, _planes(dout), _planes(x)
    m = dtype.type(dout.size // c)
    mask = x3 if relu_out is None else _planes(relu_out)  # not read without relu
    # a writable stand-in when g is not wanted (dout itself may be read-only)
    g3 = np.empty((1, 1, 1), dtype) if masked is None else _planes(masked, True)
    dbeta64, dgamma64 = np.empty(c), np.empty(c)
    dx = (np.empty(dout.shape, dtype=dtype) if dx is None else dx) if need_dx else None
    _norm_ext.backward(d3, x3, mean, inv_std, mask, (gamma * inv_std) / m, dbeta64, dgamma64, m,
                       g3 if dx is None else _planes(dx, True), need_dx, relu_out is not None,
                       NUM_THREADS, g3, masked is not None)
    return dx, dgamma64.astype(dtype), dbeta64.astype(dtype)
