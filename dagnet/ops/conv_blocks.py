"""The im2col convs by blocks of samples: conv2d's forward and backward products as one-thread
GEMMs per block of whole samples, each block on whichever thread is free (dagnet/blocks.py).

    x: (N, C, H, W) -> cols, K + 1 rows (the ones row adds the bias) per output position,
    stored as ops/conv.py lays them out: "KNP" (K + 1, N, P) for few output positions P, one
    GEMM (w | b) @ cols over the batch; "NKP" (N, K + 1, P), one GEMM per sample

Each block builds its columns (im2col), multiplies, and in backward scatters its column
gradient (col2im) on one thread while its data are in cache. dw | db is summed per block, then
over the blocks in block order; the blocks are fixed by the shapes (`parts`), so every number
is bitwise the same for any thread count and schedule (OpenBLAS's threaded GEMMs split their
sums by the thread count).

Why: OpenBLAS splits one GEMM over its threads in equal static shares and waits for the slower;
with another process on the second core resnet20's 64-channel 8 x 8 conv ran 2.2x slower on
two threads than on one. Per-sample GEMMs below OpenBLAS's threading threshold (a 1x1 skip
conv's) ran on one thread only.
"""
from __future__ import annotations

import numpy as np

from dagnet import blocks, kernels

#: output positions (columns) per block: enough for OpenBLAS's one-thread kernel to run at
#: its rate (64ch 8 x 8 conv fwd + bwd, batch 64: 128 columns 1.2x the time of 512-1024)
BLOCK_COLUMNS = 512
#: at most this many blocks: each costs some Python (a few tens of microseconds)
MAX_BLOCKS = 16


def parts(n: int, p: int) -> list:
    """The blocks [(first, stop)] of a batch of n samples of p output positions."""
    per = max(BLOCK_COLUMNS // max(p, 1), -(-n // MAX_BLOCKS), 1)
    return blocks.spans(n, per)


def blocked_forward(x, wb, w, ksize, stride, pad, dilation, out_size, layout, contiguous, out,
                    workspace):
    """ops/conv.py conv_forward's im2col + GEMM, by blocks: -> (out, cache). wb: (w | b)
    (F, K + 1). KNP: the (F, N, P) GEMM output, returned as its (N, F, Ho, Wo) view unless
    contiguous (then written NCHW into out, per block); NKP: NCHW into out."""
    n, f = x.shape[0], w.shape[0]
    p = out_size[0] * out_size[1]
    shape = (wb.shape[1], n, p) if layout == "KNP" else (n, wb.shape[1], p)
    cols = np.empty(shape, x.dtype) if workspace is None else kernels.typed_view(workspace, shape,
                                                                                 x.dtype)
    fnp = np.empty((f, n, p), x.dtype) if layout == "KNP" else None
    nchw = None
    if contiguous or layout == "NKP":
        nchw = np.empty((n, f, *out_size), x.dtype) if out is None else out
    x = np.ascontiguousarray(x)
    span = parts(n, p)

    def block(i):
        a, z = span[i]
        mine = cols[:, a:z] if layout == "KNP" else cols[a:z]
        kernels.im2col(x[a:z], ksize, stride, pad, out_size, ones_row=True, layout=layout,
                       dilation=dilation, threads=1, out=mine)
        if layout == "NKP":
            np.matmul(wb, mine, out=nchw[a:z].reshape(z - a, f, p))
            return
        o = fnp[:, a:z]
        np.matmul(wb, mine.reshape(-1, (z - a) * p), out=o.reshape(f, -1))
        if nchw is not None:
            nchw[a:z] = o.reshape(f, z - a, *out_size).transpose(1, 0, 2, 3)

    blocks.run(block, len(span))
    cache = (cols, layout, w, x.shape, stride, pad, dilation)
    if nchw is not None:
        return nchw, cache
    return fnp.reshape(f, n, *out_size).transpose(1, 0, 2, 3), cache


def blocked_backward(dout, cache, need_dx):
    """ops/conv.py conv_backward for the im2col columns, by blocks: dout (N, F, Ho, Wo), NCHW
    or (KNP) grad_buffer's (F, N, P) layout read in place -> (dx or None, dw, db)."""
    cols, layout, w, x_shape, stride, pad, dilation = cache
    n, f = dout.shape[:2]
    p = dout.shape[2] * dout.shape[3]
    fmajor = dout.transpose(1, 0, 2, 3)
    d2 = fmajor.reshape(f, n * p) if layout == "KNP" and fmajor.flags.c_contiguous else None
    wt = np.ascontiguousarray(w.reshape(f, -1).T) if need_dx else None
    dx = np.empty(x_shape, dout.dtype) if need_dx else None
    span = parts(n, p)
    rows = cols.shape[0] if layout == "KNP" else cols.shape[1]
    dwb_parts = np.empty((len(span), rows, f), dout.dtype)

    def block(i):
        a, z = span[i]
        if layout == "NKP":
            d = np.ascontiguousarray(dout[a:z]).reshape(z - a, f, p)
            # per sample cols @ dout.T (K + 1, F): 1.1-1.8x faster in OpenBLAS than dout @ cols.T
            np.sum(np.matmul(cols[a:z], d.transpose(0, 2, 1)), axis=0, out=dwb_parts[i])
            if dx is not None:
                kernels.col2im(np.matmul(wt, d), (z - a, *x_shape[1:]), w.shape[2:], stride,
                               pad, dout.shape[2:], dilation=dilation, dx=dx[a:z], threads=1)
            return
        if d2 is not None:
            d = d2[:, a * p:z * p]
        else:  # NCHW: this block's samples as (F, samples * P)
            d = np.ascontiguousarray(fmajor[:, a:z]).reshape(f, -1)
        np.matmul(cols.reshape(rows, -1)[:, a * p:z * p], d.T, out=dwb_parts[i])
        if dx is not None:
            kernels.col2im((wt @ d).reshape(-1, z - a, p), (z - a, *x_shape[1:]), w.shape[2:],
                           stride, pad, dout.shape[2:], layout="KNP", dilation=dilation,
                           dx=dx[a:z], threads=1)

    blocks.run(block, len(span))
    dwb = dwb_parts.sum(axis=0).T
    return dx, dwb[:, :-1].reshape(w.shape), np.ascontiguousarray(dwb[:, -1])


def planes_dw(dout, cache):
    """dw and db of a stride-1 conv whose forward ran on the direct kernels (ops/conv_planes.py
    fwd_by_direct), by blocks: each block's columns built from its samples' planes (the
    zero-padded input, channel by channel) and multiplied at once, in cache; the same blocks,
    columns and products as blocked_backward's KNP dw, so bitwise its numbers. dout: (N, F,
    Ho, Wo) -> (dw, db)."""
    planes, geo, w, x_shape, _, _ = cache
    n, f = dout.shape[:2]
    c, (kh, kw) = x_shape[1], w.shape[2:]
    p = geo.ho * geo.wo
    padded = planes[:, :c * geo.hq * geo.wq].reshape(n, c, geo.hq, geo.wq)
    fmajor = dout.transpose(1, 0, 2, 3)
    span = parts(n, p)
    rows = c * kh * kw + 1
    dwb_parts = np.empty((len(span), rows, f), dout.dtype)

    def block(i):
        a, z = span[i]
        cols = kernels.im2col(padded[a:z], (kh, kw), (1, 1), (0, 0), (geo.ho, geo.wo),
                              ones_row=True, layout="KNP", threads=1)
        d = np.ascontiguousarray(fmajor[:, a:z]).reshape(f, -1)
        np.matmul(cols.reshape(rows, -1), d.T, out=dwb_parts[i])

    blocks.run(block, len(span))
    dwb = dwb_parts.sum(axis=0).T
    return dwb[:, :-1].reshape(w.shape), np.ascontiguousarray(dwb[:, -1])
