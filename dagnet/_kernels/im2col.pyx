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
the batch; each thread owns its samples' rows, which keeps results bitwise deterministic. A
stride-1 conv's KNP columns with the samples side by side (a block of them, ops/conv_blocks.py)
are written row by row across the samples instead, the channels split over the threads (each
value a copy: the same bits for any split).
"""
from cython.parallel import prange
from libc.stdlib cimport free, malloc
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


cdef void _im2col_clipped(const real* x, real* cols, Py_ssize_t row_stride, Py_ssize_t C,
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                      Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample, any stride: each row (a run of ho*wo values) is written in order, each
    output row clipped to the image."""
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


cdef void _col2im_clipped(const real* cols, Py_ssize_t row_stride, real* dx, Py_ssize_t C,
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                      Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample: the adjoint of _im2col_clipped; padding entries are dropped, overlaps summed."""
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


cdef inline void _copy_rows(real* dst, const real* src, Py_ssize_t ld, Py_ssize_t ho,
                            Py_ssize_t wo) noexcept nogil:
    """dst (ho, wo) contiguous = the rows of src ld apart; fixed widths unrolled (a runtime
    trip count costs a vector loop's set-up per row: 8 x 8 outputs have 8-value rows)."""
    cdef Py_ssize_t oh, ow
    if wo == 8:
        for oh in range(ho):
            for ow in range(8):
                dst[oh * 8 + ow] = src[oh * ld + ow]
    elif wo == 16:
        for oh in range(ho):
            for ow in range(16):
                dst[oh * 16 + ow] = src[oh * ld + ow]
    else:
        for oh in range(ho):
            for ow in range(wo):
                dst[oh * wo + ow] = src[oh * ld + ow]


cdef inline void _add_rows(real* dst, const real* src, Py_ssize_t ld, Py_ssize_t ho,
                           Py_ssize_t wo) noexcept nogil:
    """The rows of dst ld apart += src (ho, wo) contiguous (_copy_rows' adjoint)."""
    cdef Py_ssize_t oh, ow
    if wo == 8:
        for oh in range(ho):
            for ow in range(8):
                dst[oh * ld + ow] += src[oh * 8 + ow]
    elif wo == 16:
        for oh in range(ho):
            for ow in range(16):
                dst[oh * ld + ow] += src[oh * 16 + ow]
    else:
        for oh in range(ho):
            for ow in range(wo):
                dst[oh * ld + ow] += src[oh * wo + ow]


cdef inline void _pad_plane(const real* x, real* pp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph,
                            Py_ssize_t pw, Py_ssize_t Hp, Py_ssize_t Wp) noexcept nogil:
    """pp (Hp, Wp) = the plane x (H, W) at row ph, column pw of zeros, cut at Hp x Wp."""
    cdef Py_ssize_t r, ih, k, left = pw if pw < Wp else Wp
    cdef Py_ssize_t width = W if W < Wp - left else Wp - left
    cdef real* row
    for r in range(Hp):
        row = pp + r * Wp
        ih = r - ph
        if ih < 0 or ih >= H:
            memset(row, 0, Wp * sizeof(real))
            continue
        memset(row, 0, left * sizeof(real))
        for k in range(width):
            row[left + k] = x[ih * W + k]
        memset(row + left + width, 0, (Wp - left - width) * sizeof(real))


cdef void _im2col_plane(const real* x, real* cols, Py_ssize_t row_stride, Py_ssize_t C,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ph,
                        Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ho,
                        Py_ssize_t wo, real* pp) noexcept nogil:
    """One sample of a stride-1 conv: _im2col_clipped's rows, each channel first laid out as
    a padded plane (pp, Hp x Wp: what the windows reach), so that every row is plain copies
    without bounds tests or zero runs; unpadded, x is read in place."""
    cdef Py_ssize_t c, i, j
    cdef Py_ssize_t Hp = ho + (kh - 1) * dh, Wp = wo + (kw - 1) * dw
    # unpadded (and windows inside the image: a bottom/right pad needs the plane too)
    cdef bint padded = ph > 0 or pw > 0 or Hp > H or Wp > W
    cdef const real* plane
    if not padded:
        Wp = W
    for c in range(C):
        if padded:
            _pad_plane(x + c * H * W, pp, H, W, ph, pw, Hp, Wp)
            plane = pp
        else:
            plane = x + c * H * W
        for i in range(kh):
            for j in range(kw):
                _copy_rows(cols + ((c * kh + i) * kw + j) * row_stride,
                           plane + i * dh * Wp + j * dw, Wp, ho, wo)


#: False writes KNP columns sample by sample too (the A/B of _im2col_rows_across)
ROWS_ACROSS = True
#: ... and only for outputs of at most this many positions: where short rows land far apart.
#: Measured (batch 64, 2 threads, quiet): P = 16 / 64 1.11-1.35x faster across; P = 196-1024
#: 0.77-1.05x (the channel split is uneven with 3 channels: three_layer_convnet's step 0.90x)
ACROSS_MAX_P = 64


cdef void _im2col_rows_across(const real* x, real* cols, Py_ssize_t row_stride, Py_ssize_t N,
                              Py_ssize_t c, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ph, Py_ssize_t pw,
                              Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo,
                              real* pp) noexcept nogil:
    """Channel c of N samples of a stride-1 conv into KNP columns whose samples lie side by
    side in a row (sample n's P values at n*P): _im2col_plane's copies, each row written
    across the samples in order. Why: sample by sample, each sample's rows land row_stride
    apart, P values at a time; with 8 x 8 outputs (resnet20's 64-channel convs, P = 64)
    that ran 5-6x slower than the same copies into contiguous rows (store/load address
    aliasing at the large stride). pp: N padded planes (Hp x Wp each)."""
    cdef Py_ssize_t n, i, j, P = ho * wo
    cdef Py_ssize_t Hp = ho + (kh - 1) * dh, Wp = wo + (kw - 1) * dw, plane = Hp * Wp
    cdef bint padded = ph > 0 or pw > 0 or Hp > H or Wp > W
    cdef real* dst
    if not padded:
        Wp = W
        plane = H * W
    for n in range(N):
        if padded:
            _pad_plane(x + (n * C + c) * H * W, pp + n * plane, H, W, ph, pw, Hp, Wp)
    for i in range(kh):
        for j in range(kw):
            dst = cols + ((c * kh + i) * kw + j) * row_stride
            for n in range(N):
                if padded:
                    _copy_rows(dst + n * P, pp + n * plane + i * dh * Wp + j * dw, Wp, ho, wo)
                else:
                    _copy_rows(dst + n * P, x + (n * C + c) * H * W + i * dh * W + j * dw, W,
                               ho, wo)


cdef void _col2im_plane(const real* cols, Py_ssize_t row_stride, real* dx, Py_ssize_t C,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ph,
                        Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ho,
                        Py_ssize_t wo, real* pp) noexcept nogil:
    """One sample of a stride-1 conv: _col2im_clipped's sums, into a zeroed padded plane (pp)
    then cut out, or unpadded into dx itself: each pixel's terms are added from 0 in the
    same (c, i, j, oh) order as there (bitwise the same)."""
    cdef Py_ssize_t c, i, j, ih, iw
    cdef Py_ssize_t Hp = ho + (kh - 1) * dh, Wp = wo + (kw - 1) * dw
    cdef bint padded = ph > 0 or pw > 0 or Hp > H or Wp > W
    cdef real* plane
    cdef real* dst
    if not padded:
        Wp = W
        memset(dx, 0, C * H * W * sizeof(real))
    for c in range(C):
        if padded:
            memset(pp, 0, Hp * Wp * sizeof(real))
            plane = pp
        else:
            plane = dx + c * H * W
        for i in range(kh):
            for j in range(kw):
                _add_rows(plane + i * dh * Wp + j * dw, cols + ((c * kh + i) * kw + j) * row_stride,
                          Wp, ho, wo)
        if padded:  # the plane's inside is dx; pixels no window reaches get 0
            dst = dx + c * H * W
            for ih in range(H):
                if ih + ph >= Hp:
                    memset(dst + ih * W, 0, W * sizeof(real))
                    continue
                for iw in range(W):
                    dst[ih * W + iw] = 0
                for iw in range(Wp - pw if Wp - pw < W else W):
                    dst[ih * W + iw] = pp[(ih + ph) * Wp + iw + pw]


cdef Py_ssize_t _plane_values(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                              Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ho,
                              Py_ssize_t wo) noexcept nogil:
    """Values of a stride-1 conv's padded plane, what its windows reach (0 for a strided
    one: the clipped loops need none)."""
    if sh != 1 or sw != 1:
        return 0
    return (ho + (kh - 1) * dh) * (wo + (kw - 1) * dw)


def im2col(const real[:, :, :, ::1] x, real[:, :, :] cols, int kh, int kw, int sh, int sw,
           int ph, int pw, int dh, int dw, int ho, int wo, bint ones_row, int num_threads):
    """Fill cols (N, K or K+1, ho*wo), any strides but the last, from x (N, C, H, W); with
    ones_row the last row is all 1.

    The row of ones turns the bias add into one more column of the GEMM (w | b) @ cols, and in
    backward dout @ cols.T then yields db as its last column: no separate bias/reduction pass.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = C * kh * kw, P = ho * wo, n, p
    cdef real* pp
    # stride 1 by padded planes (_im2col_plane); a strided conv reads each pixel about
    # kh*kw/(sh*sw) times, too few to pay for building the plane (2 x 2: 0.7x the speed)
    cdef bint strided = sh != 1 or sw != 1
    cdef Py_ssize_t plane = _plane_values(kh, kw, sh, sw, dh, dw, ho, wo)
    cdef Py_ssize_t rows = cols.shape[1], row_stride = cols.strides[1] // sizeof(real)
    # one output position: numpy exports a size-1 axis of a non-contiguous view with any stride
    if cols.shape[2] > 1 and cols.strides[2] != sizeof(real):
        raise ValueError("im2col: the last axis of cols must be contiguous")
    if cols.shape[0] != N or cols.shape[2] != P or rows != K + (1 if ones_row else 0):
        raise ValueError(f"im2col: cols has shape {(cols.shape[0], cols.shape[1], cols.shape[2])}, "
                         f"expected ({N}, {K + (1 if ones_row else 0)}, {P})")
    if N == 0:
        return
    cdef Py_ssize_t c
    if ROWS_ACROSS and not strided and N > 1 and P <= ACROSS_MAX_P and cols.strides[0] == P * sizeof(real):
        # KNP with the samples side by side: row by row across them (_im2col_rows_across),
        # the channels split over the threads
        with nogil:
            for c in prange(C, schedule="static", num_threads=num_threads):
                pp = <real*>malloc(N * plane * sizeof(real) + 1)
                _im2col_rows_across(&x[0, 0, 0, 0], &cols[0, 0, 0], row_stride, N, c, C, H, W,
                                    kh, kw, ph, pw, dh, dw, ho, wo, pp)
                free(pp)
            if ones_row:
                for n in range(N):
                    for p in range(P):
                        cols[n, K, p] = 1
        return
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            if strided:
                _im2col_clipped(&x[n, 0, 0, 0], &cols[n, 0, 0], row_stride, C, H, W, kh, kw, sh,
                                sw, ph, pw, dh, dw, ho, wo)
            else:
                pp = <real*>malloc(plane * sizeof(real) + 1)
                _im2col_plane(&x[n, 0, 0, 0], &cols[n, 0, 0], row_stride, C, H, W, kh, kw, ph,
                              pw, dh, dw, ho, wo, pp)
                free(pp)
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
    cdef real* pp
    # stride 1 by padded planes (_im2col_plane); a strided conv reads each pixel about
    # kh*kw/(sh*sw) times, too few to pay for building the plane (2 x 2: 0.7x the speed)
    cdef bint strided = sh != 1 or sw != 1
    cdef Py_ssize_t plane = _plane_values(kh, kw, sh, sw, dh, dw, ho, wo)
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
            if strided:
                _col2im_clipped(&cols[n, 0, 0], row_stride, &dx[n, 0, 0, 0], C, H, W, kh, kw, sh,
                                sw, ph, pw, dh, dw, ho, wo)
            else:
                pp = <real*>malloc(plane * sizeof(real) + 1)
                _col2im_plane(&cols[n, 0, 0], row_stride, &dx[n, 0, 0, 0], C, H, W, kh, kw, ph,
                              pw, dh, dw, ho, wo, pp)
                free(pp)
