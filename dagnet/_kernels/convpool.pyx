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

Samples are independent, so OpenMP splits the batch. In backward the batch is cut into chunks
of samples fixed by the caller (never by the thread count); each chunk runs on one thread,
which adds its samples' dw in order into the chunk's own slice of dw_part, and the caller sums
the slices in chunk order: the same numbers for any thread count and schedule.
"""
from cython.parallel import prange, threadid
from libc.stdint cimport int32_t
from libc.string cimport memset

import numpy as np

from dagnet._kernels.types cimport index_t, real

cdef extern from "rowops.h" nogil:
    void dn_pool_rows_f(const float* y, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t F,
                        Py_ssize_t po, Py_ssize_t qo, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, float* m, int32_t* k)
    void dn_pool_rows_d(const double* y, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t F,
                        Py_ssize_t po, Py_ssize_t qo, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, double* m, int32_t* k)
    int dn_best_isa()
    void dn_im2row_f(const float* x, float* rows, Py_ssize_t R, Py_ssize_t C, Py_ssize_t H,
                     Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo)
    void dn_im2row_d(const double* x, double* rows, Py_ssize_t R, Py_ssize_t C, Py_ssize_t H,
                     Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo)
    void dn_row2im_f(const float* dcols, Py_ssize_t ld, float* dx, Py_ssize_t C, Py_ssize_t H,
                     Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo)
    void dn_row2im_d(const double* dcols, Py_ssize_t ld, double* dx, Py_ssize_t C,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo)
    void dn_spmm_f(int isa, Py_ssize_t n, Py_ssize_t m, const int32_t* start,
                   const int32_t* idx, const float* coef, const float* X, Py_ssize_t ldx,
                   float* Y, Py_ssize_t ldy, int accumulate)
    void dn_spmm_d(int isa, Py_ssize_t n, Py_ssize_t m, const int32_t* start,
                   const int32_t* idx, const double* coef, const double* X, Py_ssize_t ldx,
                   double* Y, Py_ssize_t ldy, int accumulate)


cdef enum:
    ROW_CHUNK = 64  # conv outputs per chunk of dw's product (see _backward_one)


cdef inline void _spmm(int isa, Py_ssize_t n, Py_ssize_t m, const int32_t* start,
                       const int32_t* idx, const real* coef, const real* X, Py_ssize_t ldx,
                       real* Y, Py_ssize_t ldy, bint accumulate) noexcept nogil:
    """Y[j, :n] (+)= sum over c in [start[j], start[j + 1]) of coef[c] * X[idx[c], :n], j < m
    (rowops.h), in the variant isa."""
    if real is float:
        dn_spmm_f(isa, n, m, start, idx, coef, X, ldx, Y, ldy, accumulate)
    else:
        dn_spmm_d(isa, n, m, start, idx, coef, X, ldx, Y, ldy, accumulate)


ISA_NAMES = ("portable", "avx2", "avx512")


def best_isa():
    """The fastest variant of the backward's sparse sums this CPU runs: an index into ISA_NAMES
    (the vector width of its registers: 4 floats, 8 with AVX2 and FMA, 16 with AVX-512)."""
    return dn_best_isa()


def sparse_rows_sum(const real[:, ::1] X, real[:, ::1] Y, const int32_t[::1] start,
                    const int32_t[::1] idx, const real[::1] coef, bint accumulate, int isa):
    """Y[j] = (Y[j] if accumulate, else 0) + sum over c in [start[j], start[j + 1]) of
    coef[c] * X[idx[c]], for every row j of Y: the backward's sparse products, exposed for
    the tests. X: (rows, n), Y: (m, n), start: (m + 1,), idx and coef: (start[m],)."""
    cdef Py_ssize_t m = Y.shape[0], n = Y.shape[1], c
    if (X.shape[1] != n or start.shape[0] != m + 1 or start[0] != 0
            or idx.shape[0] < start[m] or coef.shape[0] < start[m]):
        raise ValueError("sparse_rows_sum: X, Y, start, idx and coef disagree in shape")
    for c in range(m):
        if start[c + 1] < start[c]:
            raise ValueError("sparse_rows_sum: start must not decrease")
    for c in range(start[m]):
        if not 0 <= idx[c] < X.shape[0]:
            raise ValueError(f"sparse_rows_sum: idx[{c}] = {idx[c]} is not a row of X")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"sparse_rows_sum: isa {isa} is not one this CPU runs (0 to {dn_best_isa()})")
    if m == 0 or n == 0:
        return
    _spmm(isa, n, m, &start[0], &idx[0] if idx.shape[0] else NULL,
          &coef[0] if coef.shape[0] else NULL, &X[0, 0], X.shape[1], &Y[0, 0], Y.shape[1],
          accumulate)


cdef inline bint _same4(Py_ssize_t* a, Py_ssize_t* b) noexcept:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


cdef void _im2row_one(const real* x, real* rows, Py_ssize_t R, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo,
                      bint ones_row) noexcept nogil:
    """One sample: row oh*wo + ow (R values apart) gets x[c, oh*sh + i - ph, ow*sw + j - pw]
    at column (c*kh + i)*kw + j, 0 in the padding (rowops.h), then a 1 if ones_row."""
    cdef Py_ssize_t p, K = C * kh * kw
    if real is float:
        dn_im2row_f(x, rows, R, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)
    else:
        dn_im2row_d(x, rows, R, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)
    if ones_row:
        for p in range(ho * wo):
            rows[p * R + K] = 1


cdef inline void _row2im_one(const real* dcols, Py_ssize_t ld, real* dx, Py_ssize_t C,
                             Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """One sample, the adjoint of _im2row_one (rows ld apart), into dx (rowops.h)."""
    if real is float:
        dn_row2im_f(dcols, ld, dx, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)
    else:
        dn_row2im_d(dcols, ld, dx, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)


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


cdef void _backward_one(const real* rows, const real* g, const real* mask, const index_t* arg,
                        const real* w2, real* dw, real* dcols, int32_t* iscratch, real* rscratch,
                        Py_ssize_t F, Py_ssize_t Kw, Py_ssize_t R, Py_ssize_t P,
                        Py_ssize_t Q, const Py_ssize_t* corner, const Py_ssize_t* cell,
                        int isa) noexcept nogil:
    """One sample. Each pooled gradient g[f, q] that is not 0, and whose mask[f, q] > 0 if a
    mask is given (relu's: the pooled output), belongs to one conv output: row
    r of rows (R values each), the window's argmax. dw[f] (| db) adds g * rows[r] over filter
    f's windows; then, if dcols is given, dcols[r] = the sum of g * w2[f] (Kw values each) over
    the gradients landing on r = corner[q] + cell[argmax] (where window q starts, and where
    its cell lies from there: tables, not the four integer divisions per gradient that cost
    a fifth of this function on the three-layer convnet). Both are sparse products (rowops.h's dn_spmm): the first with
    the gradients listed by filter, the second with the same list regrouped by row with a
    counting sort. iscratch holds 2*F*Q + F + P + 3 + F*ceil(P / ROW_CHUNK) + 2 ints, rscratch
    2*F*Q values.

    Past ROW_CHUNK conv outputs, dw's product runs chunk by chunk of rows: the rows of a
    large output (the three-layer convnet's 1,024 x 148 values, 606 KB) do not stay in L2
    while every filter reads its own of them, column block by column block; one chunk's
    column block does, in L1 (64 rows x 8 vectors of 8 floats: 16 KB)."""
    cdef Py_ssize_t f, q, a, c, i, nnz, nb
    cdef real gv
    # by filter: entries fstart[f] .. fstart[f + 1] - 1 of (frow, fcoef)
    cdef int32_t* frow = iscratch
    cdef int32_t* rfilter = iscratch + F * Q
    cdef int32_t* fstart = iscratch + 2 * F * Q
    cdef int32_t* rstart = fstart + F + 1
    cdef int32_t* cstart = rstart + P + 2
    cdef real* fcoef = rscratch
    cdef real* rcoef = rscratch + F * Q
    c = 0
    for f in range(F):
        fstart[f] = <int32_t>c
        for q in range(Q):
            gv = g[f * Q + q]
            if mask != NULL and not mask[f * Q + q] > 0:  # a NaN output is not > 0 either
                continue  # relu's backward gives +0.0 there, whatever dout (dagnet/relu_grad.py)
            if gv == 0:  # relu's zeros, and gradients that are 0 anyway: no work
                continue
            frow[c] = <int32_t>(corner[q] + cell[arg[f * Q + q]])
            fcoef[c] = gv
            c += 1
    fstart[F] = <int32_t>c
    nnz = c
    if P <= ROW_CHUNK:
        _spmm(isa, R, F, fstart, frow, fcoef, rows, R, dw, R, True)
    else:
        # by chunk of ROW_CHUNK rows, then filter: bucket b = (r // ROW_CHUNK) * F + f spans
        # cstart[b] .. cstart[b + 1] - 1 of (rfilter, rcoef), here holding rows
        nb = (P + ROW_CHUNK - 1) // ROW_CHUNK * F
        memset(cstart, 0, (nb + 2) * sizeof(int32_t))
        for f in range(F):
            for c in range(fstart[f], fstart[f + 1]):
                cstart[frow[c] // ROW_CHUNK * F + f + 2] += 1
        for i in range(2, nb + 2):
            cstart[i] += cstart[i - 1]
        for f in range(F):
            for c in range(fstart[f], fstart[f + 1]):
                i = frow[c] // ROW_CHUNK * F + f + 1
                rfilter[cstart[i]] = frow[c]
                rcoef[cstart[i]] = fcoef[c]
                cstart[i] += 1
        for a in range(nb // F):
            _spmm(isa, R, F, cstart + a * F, rfilter, rcoef, rows, R, dw, R, True)
    if dcols == NULL:
        return
    # by row: rstart[r + 1] counts row r's entries, then (prefix sums) is where they begin
    memset(rstart, 0, (P + 2) * sizeof(int32_t))
    for c in range(nnz):
        rstart[frow[c] + 2] += 1
    for i in range(2, P + 2):
        rstart[i] += rstart[i - 1]
    # filled in filter order, so the filters landing on a row stay in ascending order; each
    # fill moves rstart[r + 1] on, to the end of row r's run: the start of row r + 1's
    for f in range(F):
        for c in range(fstart[f], fstart[f + 1]):
            i = rstart[frow[c] + 1]
            rstart[frow[c] + 1] += 1
            rfilter[i] = <int32_t>f
            rcoef[i] = fcoef[c]
    _spmm(isa, Kw, P, rstart, rfilter, rcoef, w2, Kw, dcols, Kw, False)


def int_scratch(Py_ssize_t F, Py_ssize_t Q, Py_ssize_t P):
    """The int32 scratch backward needs per thread, for F filters, Q pooled and P conv outputs."""
    return 2 * F * Q + F + P + 3 + F * ((P + ROW_CHUNK - 1) // ROW_CHUNK) + 2


def backward(const real[:, :, ::1] rows, const real[:, :, :, ::1] g,
             const real[:, :, :, ::1] mask, const index_t[:, :, :, ::1] argmax,
             const real[:, ::1] w2,
             real[:, :, ::1] dw_part, real[:, :, ::1] dcols, real[:, :, :, ::1] dx,
             int32_t[:, ::1] iscratch, real[:, ::1] rscratch,
             int ho, int wo, int pkh, int pkw, int psh, int psw, int pph, int ppw,
             int kh, int kw, int sh, int sw, int ph, int pw, int isa, int num_threads,
             int per):
    """Gradients of rows @ (w | b).T -> max-pool (-> relu), given the pooled gradient g
    (N, F, po, qo), the pool's argmax and, for relu, mask: the pooled output (N, F, po, qo),
    g passing where it is > 0 (None: g has relu's mask applied, or there is no relu).

    rows: (N, ho*wo, R), R = K + 1 with the ones column (or K), K = C*kh*kw. w2: (F, Kw),
    Kw >= K: the filters, each row padded at will (the columns after K only reach dcols'
    padding; rows of a multiple of 16 values at 64-byte boundaries are fastest: whole,
    aligned vectors). dcols (num_threads, ho*wo, Kw) is scratch and dx
    (N, C, H, W) is overwritten with the input's gradient; pass both as None to skip it (the
    plan needs no gradient for x). iscratch (num_threads, int_scratch(F, Q, P)) and rscratch
    (num_threads, 2*F*Q) are scratch, Q = po*qo, P = ho*wo. isa: the variant of the sparse
    sums (an index into ISA_NAMES, at most best_isa()). per: samples per chunk; dw_part
    (ceil(N / per), F, R), zeroed by the caller: one thread adds the dw | db of chunk c's
    samples, c*per onwards, in order, into dw_part[c]."""
    cdef Py_ssize_t N = g.shape[0], F = g.shape[1], qo = g.shape[3], Q = g.shape[2] * g.shape[3]
    cdef Py_ssize_t P = rows.shape[1], R = rows.shape[2], Kw = w2.shape[1], n, t, ch
    cdef Py_ssize_t C = 0, H = 0, W = 0, chunks = (N + per - 1) // per if per > 0 else 0
    cdef real* dcp = NULL
    cdef real* dxp = NULL
    cdef const real* mp = NULL
    cdef bint need_dx = dx is not None, has_mask = mask is not None
    if (rows.shape[0] != N or P != ho * wo or w2.shape[0] != F
            or not _same4(argmax.shape, g.shape) or (mask is not None and not _same4(mask.shape, g.shape))
            or per < 1 or dw_part.shape[0] < chunks
            or num_threads < 1
            or dw_part.shape[1] != F or dw_part.shape[2] != R
            or iscratch.shape[0] < num_threads or iscratch.shape[1] < int_scratch(F, Q, P)
            or rscratch.shape[0] < num_threads or rscratch.shape[1] < 2 * F * Q):
        raise ValueError("convpool.backward: rows, g, argmax, w2, dw_part or the scratch "
                         "disagree in shape")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"convpool.backward: isa {isa} is not one this CPU runs "
                         f"(0 to {dn_best_isa()})")
    if need_dx:
        C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
        if (dcols is None or dcols.shape[0] < num_threads or dcols.shape[1] != P
                or dcols.shape[2] != Kw or dx.shape[0] != N or C * kh * kw > Kw):
            raise ValueError("convpool.backward: dcols or dx disagree in shape")
    if N == 0 or F == 0 or Q == 0:
        return
    # r = corner[q] + cell[a]: pooled output q's window starts at conv output corner[q] (in
    # the padding, maybe), and its cell a = i*pkw + j lies i*wo + j further on
    cdef Py_ssize_t[::1] corner = np.empty(Q, dtype=np.intp)
    cdef Py_ssize_t[::1] cell = np.empty(pkh * pkw, dtype=np.intp)
    cdef Py_ssize_t a
    for a in range(Q):
        corner[a] = ((a // qo) * psh - pph) * wo + (a % qo) * psw - ppw
    for a in range(pkh * pkw):
        cell[a] = (a // pkw) * wo + a % pkw
    with nogil:
        for ch in prange(chunks, schedule="dynamic", num_threads=min(num_threads, chunks)):
            t = threadid()
            for n in range(ch * per, min(N, ch * per + per)):
                if need_dx:
                    dcp = &dcols[t, 0, 0]
                    dxp = &dx[n, 0, 0, 0]
                if has_mask:
                    mp = &mask[n, 0, 0, 0]
                _backward_one(&rows[n, 0, 0], &g[n, 0, 0, 0], mp, &argmax[n, 0, 0, 0],
                              &w2[0, 0], &dw_part[ch, 0, 0], dcp, &iscratch[t, 0],
                              &rscratch[t, 0], F, Kw, R, P, Q, &corner[0], &cell[0], isa)
                if need_dx:
                    _row2im_one(dcp, Kw, dxp, C, H, W, kh, kw, sh, sw, ph, pw, ho, wo)
