"""Conv, relu and max-pool as one step around one GEMM: the numbers of the fused op
conv2d+relu+max_pool2d (ops/fused.py).

Forward: the input's patches as rows (kernels.im2row), one GEMM rows @ (w | b).T gives the
conv output channels-last, and one pass pools it, applies relu to the pooled maxima (relu and
max commute) and writes them NCHW with each window's argmax. The three run block by block of
samples (ops/conv_blocks.py's `parts`), each block on one thread (dagnet/blocks.py) while its
rows are in cache: im2row's 49 copies of the three-layer convnet's input (39 MB) are then
read back by the GEMM from cache, not memory, and im2row and the pool share both threads.

Backward: the gradient reaching the conv is zero except at each window's argmax, and there
only where relu passed the max: a quarter or less of the conv's outputs for 2x2 pools. The
kernel visits those alone: each adds its patch row, scaled, to dw | db and (when the plan
needs dx) the filter to the patch's column gradient, then col2im. The dense GEMMs that an
unfused conv must run do four times the work, three-quarters of it on zeros. relu's mask is
applied in the kernel too (no serial pass over the gradient), and dw | db is summed per chunk
of samples fixed by the batch size: the same numbers for any thread count. The numpy version
of kernels.conv_pool_backward is that dense computation; the tests hold the two together.
"""
from __future__ import annotations

import numpy as np

from dagnet import blocks, kernels
from dagnet.ops.base import as_pair
from dagnet.ops.conv import conv_geometry, weights_with_bias, window_out_size
from dagnet.ops.conv_blocks import parts

# Where the fused conv + relu + max-pool's row kernel pays (ops/fused.py ConvReLUPool.uses_rows:
# from K*F/(K + F) = rows_from() on, K = C*kh*kw, F = filters), per variant of its sums, as
# benchmarks/bench_rows.py measures it (columns/rows, fused forward + backward, 1 thread):
# avx2 (AMD EPYC): 1.09 LeNet conv2 (45), 1.22 / 1.15 / 0.88 convnet_deep 64 / 32 / 16
# filters (58 / 29 / 14), 1.01 three-layer convnet (26); avx512 (EPYC, earlier): rows paid
# from 29 on, lost at 14 and 11; portable vs OpenBLAS's AVX kernel: 0.82-1.03, never clearly.
ROWS_FROM_BY_ISA = {"portable": float("inf"), "avx2": 20.0, "avx512": 20.0}


def rows_from(isa: int | None = None) -> float:
    """The K*F/(K + F) from which the row kernel pays with the sums in variant isa (default:
    the one this CPU runs); inf where it never does (kernels missing included)."""
    if not kernels.HAVE_CYTHON:
        return float("inf")
    return ROWS_FROM_BY_ISA[kernels.ROW_ISAS[kernels.ROW_ISA if isa is None else isa]]


#: the forward by blocks of samples, each block's im2row, GEMM and pool on one thread while
#: its rows are in cache (ops/conv_blocks.py's blocks); False: each stage over the whole
#: batch, threaded by itself, for A/B measurements
BLOCKED: bool = True


def conv_relu_pool_forward(x, w, b, stride, pad, pool_size, pool_stride, pool_pad, out=None,
                           workspace=None):
    """relu(max_pool(conv(x))).  x: (N, C, H, W), w: (F, C, kh, kw), b: (F,) -> (out
    (N, F, Po, Qo), cache). out: an array to write into (the memory plan's buffer);
    workspace: a byte array to build the patch rows in."""
    n, f = x.shape[0], w.shape[0]
    ksize, stride, pad, conv_size = conv_geometry(x.shape, w.shape, stride, pad)
    pool = (as_pair(pool_size), as_pair(pool_stride), as_pair(pool_pad))
    pooled_size = window_out_size(conv_size, *pool)
    p = conv_size[0] * conv_size[1]
    # (w | b) transposed into a contiguous (K + 1, F): OpenBLAS then packs the patch rows
    # faster than through the transposed view (LeNet's conv2 GEMM 12.0 vs 15.5 ms, 1 thread)
    wbt = np.ascontiguousarray(weights_with_bias(w, b, x.dtype).T)
    if not BLOCKED or not kernels.HAVE_CYTHON:
        rows = kernels.im2row(x, ksize, stride, pad, conv_size, ones_row=True, buffer=workspace)
        # (N*P, F): the conv output channels-last; by blocks of rows on one-thread GEMMs
        y = blocks.matmul(rows.reshape(n * p, -1), wbt)
        pooled, argmax = kernels.maxpool_rows(y.reshape(n, p, f), conv_size, *pool, pooled_size,
                                              relu=True, out=out)
        return pooled, (rows, argmax, pooled, w, x.shape, (ksize, stride, pad, conv_size), pool)
    x = np.ascontiguousarray(x)
    shape = (n, p, wbt.shape[0])
    rows = np.empty(shape, x.dtype) if workspace is None else kernels.typed_view(workspace, shape,
                                                                                 x.dtype)
    pooled = np.empty((n, f, *pooled_size), x.dtype) if out is None else out
    argmax = np.empty(pooled.shape, kernels.argmax_dtype(pool[0][0] * pool[0][1]))
    span = parts(n, p)

    def block(i):
        a, z = span[i]
        mine = kernels.im2row(x[a:z], ksize, stride, pad, conv_size, ones_row=True, threads=1,
                              out=rows[a:z])
        y = np.matmul(mine.reshape((z - a) * p, -1), wbt)
        kernels.maxpool_rows(y.reshape(z - a, p, f), conv_size, *pool, pooled_size, relu=True,
                             out=pooled[a:z], argmax=argmax[a:z], threads=1)

    blocks.run(block, len(span))
    return pooled, (rows, argmax, pooled, w, x.shape, (ksize, stride, pad, conv_size), pool)


def conv_relu_pool_backward(dout, cache, need_dx=True):
    """Gradients of conv_relu_pool_forward.  dout: (N, F, Po, Qo) -> (dx (N, C, H, W) or None,
    dw (F, C, kh, kw), db (F,))."""
    rows, argmax, pooled, w, x_shape, conv, pool = cache
    # relu's mask applied in the kernel, per sample on its threads (no serial pass over dout)
    dx, dwb = kernels.conv_pool_backward(dout, argmax, rows, w.reshape(w.shape[0], -1),
                                         x_shape, conv, pool, need_dx, mask=pooled)
    return dx, dwb[:, :-1].reshape(w.shape), np.ascontiguousarray(dwb[:, -1])
