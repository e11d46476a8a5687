# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col / col2im for convolution: x (N, C, H, W) <-> cols (N, K, Ho*Wo), K = C*kh*kw.

Row k = (c*kh + i)*kw + j of cols[n] holds x[n, c, oh*sh + i*dh - ph, ow*sw + j*dw - pw]
over the output positions (oh, ow), zero where that falls in the padding (ph, pw are the
top/left pads: the output size given says how far the windows reach, so a bottom/right pad
of another size needs nothing more). A dilation only moves each tap's offset: the loops over
output pixels, where the time goes, are the same. cols is a view whose rows
may lie anywhere (any stride on its first two axes, the last contiguous): an (N, K, P) array
for one GEMM per sample, w @ cols[n] = out[n] already NCHW, or the transposed view of a
(K, N, P) array for one big GEMM over the batch. Samples are independent, so OpenMP splits
the batch; each thread owns its samples' rows, which keeps results bitwise deterministic.
"""
from cython.parallel import prange
from libc.string cimport memset

from dagnet._kernels.types cimport real


cdef inline Py_ssize_t _first_inside(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    """Smallest o >= 0 with o*stride + offset >= 0 (offset = tap - pad)."""
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t _end_inside(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                   Py_ssize_t n_out) noexcept nogil:
    """One past the largest o < n_out with o*stride + offset < size."""
    cdef Py_ssize_t last = size - 1 - offset
    if last < 0:
        return 0
    last = last // stride + 1
    return last if last < n_out else n_out


cdef void _im2col_one(const real* x, real* cols, Py_ssize_t row_stride, Py_ssize_t C,
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                      Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample: each row (a run of ho*wo values) is written in order, sequentially."""
    cdef Py_ssize_t c, i, j, oh, ow, ih, lo, hi, jw
    cdef const real* src
    cdef real* dst
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                dst = cols + ((c * kh + i) * kw + j) * row_stride
                jw = j * dw - pw
                # the columns of this tap that land inside the image, the same for every row
                lo = _first_inside(jw, sw)
                if lo > wo:
                    lo = wo
                hi = _end_inside(jw, sw, W, wo)
                if hi < lo:
                    hi = lo
                for oh in range(ho):
                    ih = oh * sh + i * dh - ph
                    if ih < 0 or ih >= H:
                        memset(dst, 0, wo * sizeof(real))
                    else:
                        src = x + (c * H + ih) * W + jw
                        if lo > 0:
                            memset(dst, 0, lo * sizeof(real))
                        if sw == 1:
                            for ow in range(lo, hi):
                                dst[ow] = src[ow]
                        else:
                            for ow in range(lo, hi):
                                dst[ow] = src[ow * sw]
                        if hi < wo:
                            memset(dst + hi, 0, (wo - hi) * sizeof(real))
                    dst += wo


cdef void _col2im_one(const real* cols, Py_ssize_t row_stride, real* dx, Py_ssize_t C,
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                      Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample: the adjoint of _im2col_one; padding entries are dropped, overlaps summed."""
    cdef Py_ssize_t c, i, j, oh, ow, ih, lo, hi, jw
    cdef real* dst
    cdef const real* src
    memset(dx, 0, C * H * W * sizeof(real))
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                src = cols + ((c * kh + i) * kw + j) * row_stride
                jw = j * dw - pw
                lo = _first_inside(jw, sw)
                hi = _end_inside(jw, sw, W, wo)
                for oh in range(ho):
                    ih = oh * sh + i * dh - ph
                    if ih >= 0 and ih < H:
                        dst = dx + (c * H + ih) * W + jw
                        if sw == 1:
                            for ow in range(lo, hi):
                                dst[ow] += src[ow]
                        else:
                            for ow in range(lo, hi):
                                dst[ow * sw] += src[ow]
                    src += wo


def im2col(const real[:, :, :, ::1] x, real[:, :, :] cols, int kh, int kw, int sh, int sw,
           int ph, int pw, int dh, int dw, int ho, int wo, bint ones_row, int num_threads):
    """Fill cols (N, K or K+1, ho*wo), any strides but the last, from x (N, C, H, W); with
    ones_row the last row is all 1.

    The row of ones turns the bias add into one more column of the GEMM (w | b) @ cols, and in
    backward dout @ cols.T then yields db as its last column: no separate bias/reduction pass.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = C * kh * kw, P = ho * wo, n, p
    cdef Py_ssize_t rows = cols.shape[1], row_stride = cols.strides[1] // sizeof(real)
    # one output position: numpy exports a size-1 axis of a non-contiguous view with any stride
    if cols.shape[2] > 1 and cols.strides[2] != sizeof(real):
        raise ValueError("im2col: the last axis of cols must be contiguous")
    if cols.shape[0] != N or cols.shape[2] != P or rows != K + (1 if ones_row else 0):
        raise ValueError(f"im2col: cols has shape {(cols.shape[0], cols.shape[1], cols.shape[2])}, "
                         f"expected ({N}, {K + (1 if ones_row else 0)}, {P})")
    if N == 0:
        return
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            _im2col_one(&x[n, 0, 0, 0], &cols[n, 0, 0], row_stride, C, H, W, kh, kw, sh, sw,
                        ph, pw, dh, dw, ho, wo)
            if ones_row:
                for p in range(P):
                    cols[n, K, p] = 1


def col2im(const real[:, :, :] cols, real[:, :, :, ::1] dx, int kh, int kw, int sh, int sw,
           int ph, int pw, int dh, int dw, int ho, int wo, int num_threads):
    """Overwrite dx (N, C, H, W) with the sum of cols (N, K, ho*wo), any strides but the last,
    scattered back to the image.

    cols may carry extra rows after the first K (e.g. the bias row); they are ignored.
    """
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t K = C * kh * kw, n, row_stride = cols.strides[1] // sizeof(real)
    # one output position: numpy exports a size-1 axis of a non-contiguous view with any stride
    if cols.shape[2] > 1 and cols.strides[2] != sizeof(real):
        raise ValueError("col2im: the last axis of cols must be contiguous")
    if cols.shape[0] != N or cols.shape[1] < K or cols.shape[2] != ho * wo:
        raise ValueError(f"col2im: cols has shape {(cols.shape[0], cols.shape[1], cols.shape[2])}, "
                         f"expected ({N}, {K}, {ho * wo})")
    if N == 0:
        return
    with nogil:
        for n in prange(N, schedule="dynamic", num_threads=num_threads):  # late threads take less
            _col2im_one(&cols[n, 0, 0], row_stride, &dx[n, 0, 0, 0], C, H, W, kh, kw, sh, sw,
                        ph, pw, dh, dw, ho, wo)
