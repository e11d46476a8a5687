# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The fused conv + relu + max-pool step around one GEMM in row layout.

    rows (N, P, K + 1): row p of sample n is the patch under output pixel p (K = C*kh*kw
        values), then a 1 for the bias
    y = rows @ (w | b).T: (N, P, F), the conv output channels-last
    out, argmax (N, F, Po, Qo) = relu(max-pool(y)) and the window index of each max

Why rows: the backward only needs the conv outputs that won their pool window (a quarter of
them or fewer for 2x2 pools), and in this layout each one's patch is a contiguous row. So
dw | db and the input's column gradient are sums of chosen rows, blocked in registers
(rowops.h), instead of dense GEMMs over a gradient that is three-quarters zeros. An unfused
conv cannot do this: nothing tells it that the gradient reaching it is that sparse.

Samples are independent, so OpenMP splits the batch. In backward each thread adds dw over its
own samples into its own slice of dw_part and the caller sums the slices: the result is
deterministic for a given thread count (static schedule: the same samples in the same order),
and differs in rounding between thread counts.
"""
from cython.parallel import prange, threadid
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset

from dagnet._kernels.types cimport index_t, real
from dagnet._kernels.window cimport end_tap, first_tap

cdef extern from "rowops.h" nogil:
    void dn_pool_rows_f(const float* y, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t F,
                        Py_ssize_t po, Py_ssize_t qo, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, float* m, int32_t* k)
    void dn_pool_rows_d(const double* y, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t F,
                        Py_ssize_t po, Py_ssize_t qo, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, double* m, int32_t* k)
    void dn_rows_sum_f(Py_ssize_t n, Py_ssize_t count, const float* coef, const float* base,
                       Py_ssize_t stride, const int32_t* idx, float* y)
    void dn_rows_sum_d(Py_ssize_t n, Py_ssize_t count, const double* coef, const double* base,
                       Py_ssize_t stride, const int32_t* idx, double* y)


cdef inline void _rows_sum(Py_ssize_t n, Py_ssize_t count, const real* coef, const real* base,
                           Py_ssize_t stride, const int32_t* idx, real* y) noexcept nogil:
    """y[:n] += sum_c coef[c] * base[idx[c]*stride:][:n] (rowops.h)."""
    if real is float:
        dn_rows_sum_f(n, count, coef, base, stride, idx, y)
    else:
        dn_rows_sum_d(n, count, coef, base, stride, idx, y)


cdef inline bint _same4(Py_ssize_t* a, Py_ssize_t* b) noexcept:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


cdef inline void _copy(real* d, const real* s, Py_ssize_t n) noexcept nogil:
    """d[:n] = s[:n]; the common kernel widths as fixed-size copies (a few moves), not a loop."""
    cdef Py_ssize_t j
    if n == 5:
        memcpy(d, s, 5 * sizeof(real))
    elif n == 3:
        memcpy(d, s, 3 * sizeof(real))
    elif n == 7:
        memcpy(d, s, 7 * sizeof(real))
    else:
        for j in range(n):
            d[j] = s[j]


cdef void _im2row_one(const real* x, real* rows, Py_ssize_t R, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                      bint ones_row) noexcept nogil:
    """One sample: row oh*wo + ow (R values apart) gets x[c, oh*sh + i - ph, ow*sw + j - pw]
    at column (c*kh + i)*kw + j, 0 in the padding, then a 1 if ones_row."""
    cdef Py_ssize_t oh, ow, c, i, j, top, left, j0, j1, K = C * kh * kw
    cdef real* dst
    cdef real* d
    cdef const real* src
    for oh in range(ho):
        top = oh * sh - ph
        for ow in range(wo):
            left = ow * sw - pw
            j0 = first_tap(left)
            j1 = end_tap(left, kw, W)
            dst = rows + (oh * wo + ow) * R
            for c in range(C):
                for i in range(kh):
                    d = dst + (c * kh + i) * kw
                    if top + i < 0 or top + i >= H or j1 <= j0:
                        memset(d, 0, kw * sizeof(real))
                        continue
                    src = x + (c * H + top + i) * W + left
                    if j0 == 0 and j1 == kw:
                        _copy(d, src, kw)
                        continue
                    for j in range(j0):
                        d[j] = 0
                    for j in range(j0, j1):
                        d[j] = src[j]
                    for j in range(j1, kw):
                        d[j] = 0
            if ones_row:
                dst[K] = 1


cdef void _row2im_one(const real* dcols, Py_ssize_t ld, real* dx, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample, the adjoint of _im2row_one (rows ld apart): each row's entries summed back
    into their pixels; entries in the padding are dropped. Neighbouring output pixels' windows
    overlap, and adding them one after the other made every add wait for the previous one's
    store (about 2x slower on LeNet's conv2): the pixels go in `step` interleaved passes, and
    the windows within one pass do not overlap."""
    cdef Py_ssize_t oh, ow, c, i, j, top, left, j0, j1, phase, step = (kw + sw - 1) // sw
    cdef const real* src
    cdef const real* s
    cdef real* d
    memset(dx, 0, C * H * W * sizeof(real))
    for oh in range(ho):
        top = oh * sh - ph
        for phase in range(step):
            ow = phase
            while ow < wo:  # phase, phase + step, ...: range() with a variable step needs the GIL
                left = ow * sw - pw
                j0 = first_tap(left)
                j1 = end_tap(left, kw, W)
                src = dcols + (oh * wo + ow) * ld
                for c in range(C):
                    for i in range(kh):
                        if top + i < 0 or top + i >= H:
                            continue
                        d = dx + (c * H + top + i) * W + left
                        s = src + (c * kh + i) * kw
                        for j in range(j0, j1):
                            d[j] += s[j]
                ow += step


def im2row(const real[:, :, :, ::1] x, real[:, :, ::1] rows, int kh, int kw, int sh, int sw,
           int ph, int pw, int ho, int wo, bint ones_row, int num_threads):
    """Fill rows (N, ho*wo, K or K + 1) with the patches of x (N, C, H, W), K = C*kh*kw, and a
    1 if ones_row."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t R = rows.shape[2], n
    if (rows.shape[0] != N or rows.shape[1] != ho * wo
            or R != C * kh * kw + (1 if ones_row else 0)):
        raise ValueError(f"im2row: rows has shape {(rows.shape[0], rows.shape[1], R)}, expected "
                         f"({N}, {ho * wo}, {C * kh * kw + (1 if ones_row else 0)})")
    if N == 0 or ho * wo == 0:
        return
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            _im2row_one(&x[n, 0, 0, 0], &rows[n, 0, 0], R, C, H, W, kh, kw, sh, sw, ph, pw,
                        ho, wo, ones_row)


cdef void _pool_one(const real* y, real* out, index_t* arg, real* m, int32_t* k, Py_ssize_t F,
                    Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t po, Py_ssize_t qo, Py_ssize_t kh,
                    Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                    bint relu) noexcept nogil:
    """One sample: y (ho*wo, F) channels-last -> out, arg (F, po, qo). The pool runs
    channels-last into m, k (po*qo, F) (rowops.h); this pass lays them out as planes, relu
    keeping the max where it is > 0 or NaN and writing 0 elsewhere."""
    cdef Py_ssize_t f, q, Q = po * qo
    cdef real v
    if real is float:
        dn_pool_rows_f(y, ho, wo, F, po, qo, kh, kw, sh, sw, ph, pw, m, k)
    else:
        dn_pool_rows_d(y, ho, wo, F, po, qo, kh, kw, sh, sw, ph, pw, m, k)
    for f in range(F):
        for q in range(Q):
            v = m[q * F + f]
            if relu:
                v = v if (v > 0) | (v != v) else 0
            out[f * Q + q] = v
            arg[f * Q + q] = <index_t>k[q * F + f]


def maxpool_rows(const real[:, :, ::1] y, real[:, :, :, ::1] out, index_t[:, :, :, ::1] argmax,
                 real[:, ::1] mscratch, int32_t[:, ::1] kscratch,
                 int ho, int wo, int kh, int kw, int sh, int sw, int ph, int pw, bint relu,
                 int num_threads):
    """Max-pool (then relu if asked) of y (N, ho*wo, F), a conv output stored channels-last,
    into out and argmax (N, F, po, qo), NCHW. mscratch, kscratch (num_threads, po*qo*F):
    scratch."""
    cdef Py_ssize_t N = y.shape[0], F = y.shape[2], po = out.shape[2], qo = out.shape[3], n, t
    if (y.shape[1] != ho * wo or out.shape[0] != N or out.shape[1] != F
            or not _same4(argmax.shape, out.shape) or mscratch.shape[0] < num_threads
            or kscratch.shape[0] < num_threads or mscratch.shape[1] < po * qo * F
            or kscratch.shape[1] < po * qo * F):
        raise ValueError("maxpool_rows: y must be (N, ho*wo, F), out and argmax (N, F, po, qo), "
                         "the scratch (num_threads, po*qo*F)")
    if N == 0 or F == 0 or po * qo == 0:
        return
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            _pool_one(&y[n, 0, 0], &out[n, 0, 0, 0], &argmax[n, 0, 0, 0], &mscratch[t, 0],
                      &kscratch[t, 0], F, ho, wo, po, qo, kh, kw, sh, sw, ph, pw, relu)


cdef void _backward_one(const real* rows, const real* g, const index_t* arg, const real* w2,
                        real* dw, real* dcols, int32_t* idx, real* coef, int32_t* start,
                        Py_ssize_t F, Py_ssize_t Kw, Py_ssize_t R, Py_ssize_t wo, Py_ssize_t P,
                        Py_ssize_t qo, Py_ssize_t Q, Py_ssize_t pkw, Py_ssize_t psh,
                        Py_ssize_t psw, Py_ssize_t pph, Py_ssize_t ppw) noexcept nogil:
    """One sample. Each pooled gradient g[f, q] that is not 0 belongs to one conv output: row
    r of rows (R values each), the window's argmax. dw[f] (| db) adds g * rows[r] over filter
    f's windows; then, if dcols is given, dcols[r] = the sum of g * w2[f] (Kw values each) over
    the gradients landing on r, grouped by r with a counting sort (idx, coef and start are
    scratch)."""
    cdef Py_ssize_t f, q, r, a, c, i
    cdef real gv
    # r for every (f, q) with a gradient, -1 for the others, kept in idx[F*Q:] for the dx pass
    cdef int32_t* where = idx + F * Q
    for f in range(F):
        c = 0
        for q in range(Q):
            gv = g[f * Q + q]
            if gv == 0:  # relu's zeros, and gradients that are 0 anyway: no work
                where[f * Q + q] = -1
                continue
            a = arg[f * Q + q]
            r = ((q // qo) * psh - pph + a // pkw) * wo + (q % qo) * psw - ppw + a % pkw
            where[f * Q + q] = <int32_t>r
            idx[c] = <int32_t>r
            coef[c] = gv
            c += 1
        _rows_sum(R, c, coef, rows, R, idx, dw + f * R)
    if dcols == NULL:
        return
    memset(start, 0, (P + 1) * sizeof(int32_t))
    for i in range(F * Q):
        if where[i] >= 0:
            start[where[i] + 1] += 1
    for r in range(P):
        start[r + 1] += start[r]
    # fill in (f, q) order: the filters landing on a row stay in ascending order
    for f in range(F):
        for q in range(Q):
            r = where[f * Q + q]
            if r >= 0:
                idx[start[r]] = <int32_t>f
                coef[start[r]] = g[f * Q + q]
                start[r] += 1
    # start[r] now ends row r's run, which began at start[r - 1] (0 for r == 0)
    c = 0
    for r in range(P):
        memset(dcols + r * Kw, 0, Kw * sizeof(real))
        _rows_sum(Kw, start[r] - c, coef + c, w2, Kw, idx + c, dcols + r * Kw)
        c = start[r]


def backward(const real[:, :, ::1] rows, const real[:, :, :, ::1] g,
             const index_t[:, :, :, ::1] argmax, const real[:, ::1] w2,
             real[:, :, ::1] dw_part, real[:, :, ::1] dcols, real[:, :, :, ::1] dx,
             int32_t[:, ::1] iscratch, real[:, ::1] rscratch,
             int ho, int wo, int pkw, int psh, int psw, int pph, int ppw,
             int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Gradients of rows @ (w | b).T -> max-pool, given the pooled gradient g (N, F, po, qo)
    with relu's mask already applied, and the pool's argmax.

    rows: (N, ho*wo, R), R = K + 1 with the ones column (or K), K = C*kh*kw; w2: (F, Kw),
    Kw = K. dw_part (num_threads, F, R), zeroed by the caller: thread t adds its samples'
    dw | db into dw_part[t]. dcols
    (num_threads, ho*wo, Kw) is scratch and dx (N, C, H, W) is overwritten with the input's
    gradient; pass both as None to skip it (the plan needs no gradient for x). iscratch
    (num_threads, 2*F*Q + P + 1) and rscratch (num_threads, F*Q) are scratch, Q = po*qo."""
    cdef Py_ssize_t N = g.shape[0], F = g.shape[1], qo = g.shape[3], Q = g.shape[2] * g.shape[3]
    cdef Py_ssize_t P = rows.shape[1], R = rows.shape[2], Kw = w2.shape[1], n, t
    cdef Py_ssize_t C = 0, H = 0, W = 0
    cdef real* dcp = NULL
    cdef real* dxp = NULL
    cdef bint need_dx = dx is not None
    if (rows.shape[0] != N or P != ho * wo or w2.shape[0] != F
            or not _same4(argmax.shape, g.shape) or dw_part.shape[0] < num_threads
            or dw_part.shape[1] != F or dw_part.shape[2] != R
            or iscratch.shape[0] < num_threads or iscratch.shape[1] < 2 * F * Q + P + 1
            or rscratch.shape[0] < num_threads or rscratch.shape[1] < F * Q):
        raise ValueError("convpool.backward: rows, g, argmax, w2 or dw_part disagree in shape")
    if need_dx:
        C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
        if (dcols is None or dcols.shape[0] < num_threads or dcols.shape[1] != P
                or dcols.shape[2] != Kw or dx.shape[0] != N or C * kh * kw != Kw):
            raise ValueError("convpool.backward: dcols or dx disagree in shape")
    if N == 0:
        return
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            if need_dx:
                dcp = &dcols[t, 0, 0]
                dxp = &dx[n, 0, 0, 0]
            _backward_one(&rows[n, 0, 0], &g[n, 0, 0, 0], &argmax[n, 0, 0, 0], &w2[0, 0],
                          &dw_part[t, 0, 0], dcp, &iscratch[t, 0], &rscratch[t, 0],
                          &iscratch[t, 2 * F * Q], F, Kw, R, wo, P, qo, Q, pkw, psh, psw, pph,
                          ppw)
            if need_dx:
                _row2im_one(dcp, Kw, dxp, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)
