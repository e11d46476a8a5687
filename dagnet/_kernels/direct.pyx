# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Direct convolution (no im2col): forward and backward of conv2d over shifted planes.

    planes (N, S): each sample's input padded and split into its stride's phases, every
        kernel tap k reading its values at one offset off[k] (direct.h explains the layout)
    out[n, m, oh, ow] = bias[m] + sum_k w[k][m] * planes[n][off[k] + oh*Wq + ow]
    dw[m][k] = sum over n and the grid of dout[n, m] * planes[n][off[k] + q]
    dx: per phase of the padded input, the same product as the forward on the output
        gradient padded into planes (doutp), with the phase's taps, scattered into dx

Why: im2col writes every input value kh*kw times (a 3x3 conv's columns of 16 channels at
28 x 28 are 145 x 784 floats per sample, which then stream through the GEMM); here the tap's
shift is an offset, so the matrix product reads each sample's planes (C*Hp*Wp values, in L2)
straight from where they lie. The kernels (direct.h) are blocked like a GEMM's micro-kernel.

Samples are independent: the forward and the input gradient split them over OpenMP threads.
dw is summed per chunk of samples into its own slice of dw_part (the chunks fixed by the
batch size, not the thread count), and the caller sums the slices in order: bitwise the same
result for any thread count.
"""
from cython.parallel import prange, threadid
from libc.stdint cimport int32_t, uint8_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from dagnet._kernels.types cimport real

cdef extern from "pool2x2.h" nogil:
    int DN_POOL2X2
    void dn_pool2x2_f(const float* x, float* out, uint8_t* arg, Py_ssize_t W, Py_ssize_t ho,
                      Py_ssize_t wo)


def pools_argmax():
    """Whether forward can pool 2 x 2 windows with their argmax in its read-out (argmax=)."""
    return DN_POOL2X2 != 0


cdef extern from "direct.h" nogil:
    int dn_best_isa()
    void dc_copy_f(int isa, const float* src, Py_ssize_t lds, Py_ssize_t rows, Py_ssize_t n,
                   float* dst, Py_ssize_t ldd)
    void dc_copy_d(int isa, const double* src, Py_ssize_t lds, Py_ssize_t rows, Py_ssize_t n,
                   double* dst, Py_ssize_t ldd)
    Py_ssize_t dc_lanes(int isa, int is_double)
    Py_ssize_t dc_wide_lanes(int isa, int is_double)
    void dc_gemm_f(int isa, Py_ssize_t M, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off,
                   const float* wp, const float* bias, const float* src, float* out,
                   Py_ssize_t ldo)
    void dc_gemm_d(int isa, Py_ssize_t M, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off,
                   const double* wp, const double* bias, const double* src, double* out,
                   Py_ssize_t ldo)
    void dc_gemm_out_f(int isa, Py_ssize_t M, Py_ssize_t K, Py_ssize_t Qr, Py_ssize_t Ho,
                       Py_ssize_t Wo, Py_ssize_t Wq, const int32_t* off, const float* wp,
                       const float* bias, const float* src, float* out, Py_ssize_t ldo)
    void dc_gemm_out_d(int isa, Py_ssize_t M, Py_ssize_t K, Py_ssize_t Qr, Py_ssize_t Ho,
                       Py_ssize_t Wo, Py_ssize_t Wq, const int32_t* off, const double* wp,
                       const double* bias, const double* src, double* out, Py_ssize_t ldo)
    int dc_rows_on
    void dc_dw_f(int isa, Py_ssize_t Mr, Py_ssize_t Kr, Py_ssize_t Qr, const int32_t* off,
                 const float* d, Py_ssize_t ldd, const float* src, float* part)
    void dc_dw_d(int isa, Py_ssize_t Mr, Py_ssize_t Kr, Py_ssize_t Qr, const int32_t* off,
                 const double* d, Py_ssize_t ldd, const double* src, double* part)
    void dc_dwt_f(int isa, Py_ssize_t Mp, Py_ssize_t Kr, Py_ssize_t Ho, Py_ssize_t Wo,
                  Py_ssize_t Wq, const int32_t* off, const float* dT, const float* src,
                  float* part)
    void dc_dwt_d(int isa, Py_ssize_t Mp, Py_ssize_t Kr, Py_ssize_t Ho, Py_ssize_t Wo,
                  Py_ssize_t Wq, const int32_t* off, const double* dT, const double* src,
                  double* part)
    int dc_transpose_f(int isa, const float* src, Py_ssize_t M, Py_ssize_t P, float* dst,
                       Py_ssize_t Mp)
    void dc_rows_f(int isa, const float* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                   Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, const float* res, int relu,
                   float* out)
    void dc_rows_d(int isa, const double* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                   Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, const double* res, int relu,
                   double* out)
    void dc_pool_f(int isa, float* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                   Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, const float* res, int relu,
                   int kh, int kw, int sh, int sw, Py_ssize_t Hp, Py_ssize_t Wp, float* out)
    void dc_pool_d(int isa, double* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                   Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, const double* res, int relu,
                   int kh, int kw, int sh, int sw, Py_ssize_t Hp, Py_ssize_t Wp, double* out)
    enum:
        DC_FR
        DC_NV
        DC_KR
        DC_DB
        DC_KT2


TILE_ROWS, TILE_VECTORS, DW_TAPS, DW_ROWS = DC_FR, DC_NV, DC_KR, DC_DB
#: dc_dwt's taps per tile: its offsets are padded to a multiple of it
DWT_TAPS = DC_KT2


def best_isa():
    """The widest variant of the kernels this CPU runs (isa.h: 0 portable, 1 AVX2 + FMA, 2
    AVX-512, whose 16-float variants are direct.h's products, copies, read-out and dw, and
    Winograd's and direct_oc.h's kernels; the rest run as AVX2)."""
    return dn_best_isa()


def lanes(int isa, bint is_double):
    """Values per vector of variant isa for float32 (or float64 if is_double)."""
    return dc_lanes(isa, is_double)


def dw_lanes(int isa, bint is_double):
    """The lanes of backward's dw sums (lanes_part) for variant isa: its dw kernel's vector
    width (AVX-512's is twice the forward's)."""
    return dc_wide_lanes(isa, is_double)


def set_rows(int mode):
    """Sets whether the forward may compute the output rows alone, skipping the grid's
    columns past Wo (direct.h dc_gemm_rows: 1; 2 also two of their 8-float vectors to an
    AVX-512 register, dc_gemm_rows16; 3 also rows of whole 16-float vectors loaded as one,
    the default; 0 none: the same numbers each way, for A/B measurements and the tests
    holding them together); returns the previous mode."""
    global dc_rows_on
    was, dc_rows_on = dc_rows_on, mode
    return was


cdef inline void _gemm(int isa, Py_ssize_t M, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off,
                       const real* wp, const real* bias, const real* src, real* out,
                       Py_ssize_t ldo, Py_ssize_t Ho=0, Py_ssize_t Wo=0,
                       Py_ssize_t Wq=0) noexcept nogil:
    """out's grid of Qr positions, or (the forward, given Ho, Wo, Wq) its Ho x Wo outputs'
    (direct.h dc_gemm_out: the rest of each row's Wq may be left unwritten)."""
    if real is float:
        dc_gemm_out_f(isa, M, K, Qr, Ho, Wo, Wq, off, wp, bias, src, out, ldo)
    else:
        dc_gemm_out_d(isa, M, K, Qr, Ho, Wo, Wq, off, wp, bias, src, out, ldo)


cdef void _planes_one(const real* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t Hq, Py_ssize_t Wq,
                      const int32_t* slot, Py_ssize_t nph, real* src,
                      Py_ssize_t S, int isa) noexcept nogil:
    """src (S values) = the used phase planes of x (C, H, W) padded by (ph, pw), then zeros."""
    cdef Py_ssize_t c, rh, rw, a, b, ih, iw, lo, hi, L = Hq * Wq
    cdef real* plane
    cdef const real* row
    if sh == 2 and sw == 2 and nph == 4:  # all four phases of stride 2 (slot: 0, 1, 2, 3):
        # Winograd's planes, the same values, a row's phases split in vectors (winograd.h)
        # where the loop below copied value by value (a 16-channel 28 x 28 input: ~10 us)
        if real is float:
            wg_planes_f(isa, x, C, H, W, ph, pw, Hq, Wq, src, S)
        else:
            wg_planes_d(isa, x, C, H, W, ph, pw, Hq, Wq, src, S)
        return
    if sh == 1 and sw == 1 and ph >= 0 and pw >= 0:  # one plane a channel: zeros, then the
        # input's rows in vectors (row by row memset + memcpy of 8 values was ~15% of
        # resnet20's 64-channel 8 x 8 forward)
        memset(src, 0, S * sizeof(real))
        lo, hi, ih = pw, (pw + W if pw + W <= Wq else Wq), (ph + H if ph + H <= Hq else Hq)
        if ph < ih and lo < hi:
            for c in range(C):
                _copy(isa, x + c * H * W, W, ih - ph, hi - lo, src + c * L + ph * Wq + lo, Wq)
        return
    for c in range(C):
        for rh in range(sh):
            for rw in range(sw):
                if slot[rh * sw + rw] < 0:
                    continue
                plane = src + (c * nph + slot[rh * sw + rw]) * L
                # the plane's columns b with 0 <= b*sw + rw - pw < W
                lo = (pw - rw + sw - 1) // sw if pw > rw else 0
                hi = (W - 1 + pw - rw) // sw + 1 if W - 1 + pw - rw >= 0 else 0
                if hi > Wq:
                    hi = Wq
                if lo > hi:
                    lo = hi
                for a in range(Hq):
                    ih = a * sh + rh - ph
                    if ih < 0 or ih >= H:
                        memset(plane + a * Wq, 0, Wq * sizeof(real))
                        continue
                    row = x + (c * H + ih) * W
                    memset(plane + a * Wq, 0, lo * sizeof(real))
                    if sw == 1:
                        memcpy(plane + a * Wq + lo, row + lo + rw - pw, (hi - lo) * sizeof(real))
                    else:
                        for b in range(lo, hi):
                            plane[a * Wq + b] = row[b * sw + rw - pw]
                    memset(plane + a * Wq + hi, 0, (Wq - hi) * sizeof(real))
    memset(src + C * nph * L, 0, (S - C * nph * L) * sizeof(real))


def forward(const real[:, :, :, ::1] x, real[:, ::1] planes, const int32_t[::1] slot,
            const int32_t[::1] off, const real[::1] wp, const real[::1] bias,
            real[:, ::1] grid, real[:, :, :, ::1] out, int sh, int sw, int ph, int pw, int Hq,
            int Wq, int Qr, int isa, int num_threads, const real[:, :, :, ::1] residual=None,
            bint relu=False, pool=None, int parts=1, argmax=None):
    """out (N, M, Ho, Wo) = the conv of x (N, C, H, W), whose planes it writes into planes
    (N, S) (kept for backward), or, for inference, into one row per thread of planes
    (num_threads, S) (fewer rows than N: each thread's row is reused while it is in cache,
    instead of the batch's planes, as large as its input, going out to memory and back).
    wp: the packed weights (direct.h), bias padded like them; grid: one (M*Qr,) scratch row
    per thread (no more threads run than jobs: N, or N * tiles of filters if parts > 1).

    An inference step's epilogue runs in the pass that reads the grid out, while it is in
    cache: + residual (N, M, Ho, Wo) if given, max(., 0) if relu (NaN stays NaN, as
    np.maximum keeps it), then, if pool = (ho, wo, kh, kw, sh, sw), the max over each
    kh x kw window (stride sh, sw, no padding) of the (ho, wo) conv output: out is then
    (N, M, Hp, Wp), Hp = (ho - kh) // sh + 1. parts > 1 splits each sample's filters into
    tiles of DC_FR, run by this thread and num_threads - 1 spinning helpers (helpers.h: for
    batches smaller than the thread count, where an OpenMP team's wake-up costs more than
    the arithmetic; the planes are then the batch's, N rows); every value is computed alike
    for any parts and thread count.

    argmax (N, M, Hp, Wp) uint8 (training's conv + relu + 2 x 2 max-pool, float, pool =
    (ho, wo, 2, 2, 2, 2), no residual or relu, parts 1): out is the pooled maxima and argmax
    each window's index, pool.pyx's maxpool_forward's numbers bit for bit, pooled from the
    grid while it is in cache: the (N, M, ho, wo) conv output is never written."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], K = off.shape[0]
    cdef Py_ssize_t S = planes.shape[1], nph = 0, n, t, i, jobs
    cdef Py_ssize_t tiles = (M + DC_FR - 1) // DC_FR
    cdef int pkh = 0, pkw = 0, psh = 1, psw = 1
    cdef bint plain, has_res = residual is not None, kept = planes.shape[0] >= N
    cdef real* g
    cdef real* pl
    if parts < 1:
        raise ValueError("direct.forward: parts must be at least 1")
    if pool is not None:
        Ho, Wo, pkh, pkw, psh, psw = pool
        if (pkh < 1 or pkw < 1 or psh < pkh or psw < pkw or Ho < pkh or Wo < pkw
                or (Ho - pkh) // psh + 1 != out.shape[2] or (Wo - pkw) // psw + 1 != out.shape[3]):
            raise ValueError("direct.forward: the pool's window and the output disagree")
    plain = not has_res and not relu and pkh == 0
    cdef bint with_arg = argmax is not None
    cdef uint8_t[:, :, :, ::1] am
    if with_arg:
        if (real is not float or not DN_POOL2X2 or has_res or relu or parts != 1
                or (pkh, pkw, psh, psw) != (2, 2, 2, 2)):
            raise ValueError("direct.forward: argmax is for a float 2 x 2 stride-2 pool alone")
        am = argmax
        if (am.shape[0] != out.shape[0] or am.shape[1] != out.shape[1]
                or am.shape[2] != out.shape[2] or am.shape[3] != out.shape[3]):
            raise ValueError("direct.forward: argmax and out must have the same shape")
    for i in range(slot.shape[0]):
        nph += slot[i] >= 0
    jobs = N if parts == 1 else N * tiles
    # a team larger than the jobs only wakes threads that find nothing to do (a sleeping
    # thread's wake-up, tens of microseconds, then lies on the region's closing barrier)
    if num_threads > jobs:
        num_threads = jobs if jobs > 0 else 1
    if ((not kept and (planes.shape[0] < num_threads or parts > 1))
            or grid.shape[0] < num_threads or grid.shape[1] < M * Qr
            or Qr % dc_lanes(isa, real is double) or Qr < Ho * Wq
            or slot.shape[0] != sh * sw or wp.shape[0] < K * M or bias.shape[0] < M
            or S < C * nph * Hq * Wq or num_threads < 1):
        raise ValueError("direct.forward: the buffers and the geometry disagree")
    if has_res and (residual.shape[0] < N or residual.shape[1] != M or residual.shape[2] != Ho
                    or residual.shape[3] != Wo):
        raise ValueError("direct.forward: the residual's shape is not the conv output's")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.forward: isa {isa} is not one this CPU runs")
    for i in range(K):
        if off[i] < 0 or off[i] + Qr > S:
            raise ValueError(f"direct.forward: offset {off[i]} reads past the planes ({S})")
    if N == 0:
        return
    cdef _Split split
    cdef const void* res_p = NULL
    if parts > 1:  # a batch smaller than the threads: one item per sample and tile of filters,
        # run by the caller and the spinning helpers (helpers.h), not an OpenMP team
        if has_res:
            res_p = &residual[0, 0, 0, 0]
        split = _Split(<const void*>&planes[0, 0], &off[0], <const void*>&wp[0],
                       <const void*>&bias[0], <void*>&grid[0, 0], <void*>&out[0, 0, 0, 0], res_p,
                       S, grid.shape[1], M * out.shape[2] * out.shape[3], M * Ho * Wo,
                       M, K, Qr, Wq, Ho, Wo, out.shape[2], out.shape[3], tiles, isa, relu,
                       pkh, pkw, psh, psw, plain, real is double, NULL, NULL, NULL, 0, 0)
        with nogil:
            for n in range(N):
                _planes_one(&x[n, 0, 0, 0], C, H, W, sh, sw, ph, pw, Hq, Wq, &slot[0], nph,
                            &planes[n, 0], S, isa)
            dn_par_for(_split_task, &split, N * tiles, num_threads)
        return
    with nogil:
        # dynamic: a thread that wakes late (another process on its core) takes fewer samples,
        # where equal static shares waited for it (resnet20's 16-, 32- and 64-channel forward,
        # batch 64, 2 threads: 1.04-1.11x faster, load 3-6)
        for n in prange(N, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            g = &grid[t, 0]
            pl = &planes[n if kept else t, 0]
            _planes_one(&x[n, 0, 0, 0], C, H, W, sh, sw, ph, pw, Hq, Wq, &slot[0], nph, pl, S, isa)
            _gemm(isa, M, K, Qr, &off[0], &wp[0], &bias[0], pl, g, Qr, Ho, Wo, Wq)
            if with_arg:
                _pool_arg(g, Qr, Wq, M, out.shape[2], out.shape[3], &out[n, 0, 0, 0],
                          &am[n, 0, 0, 0])
            elif plain:
                _copy_out(isa, g, Qr, Wq, 0, M, Ho, Wo, &out[n, 0, 0, 0])
            else:
                _epilogue(isa, g, Qr, Wq, 0, M, Ho, Wo,
                          &residual[n, 0, 0, 0] if has_res else NULL, relu, pkh, pkw, psh, psw,
                          out.shape[2], out.shape[3], &out[n, 0, 0, 0])


include "affine_split.pxi"
include "direct_split.pxi"
include "split_chain.pxi"
include "direct_oc.pxi"
include "direct_oc1.pxi"
include "winograd.pxi"


cdef inline void _pool_arg(const real* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t M,
                           Py_ssize_t hp, Py_ssize_t wp, real* out, uint8_t* arg) noexcept nogil:
    """out, arg (M, hp, wp) of one sample: each grid's 2 x 2 window maxima and their index
    (pool2x2.h, float only: forward checks)."""
    cdef Py_ssize_t m
    if real is float:
        for m in range(M):
            dn_pool2x2_f(g + m * Qr, out + m * hp * wp, arg + m * hp * wp, Wq, hp, wp)


cdef inline void _copy_out(int isa, const real* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                           Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, real* out) noexcept nogil:
    """out (M, Ho, Wo)'s filters m0 <= m < m1 = the grid's rows (Ho of them, Wq apart, M
    grids Qr apart), in vectors (a memcpy a row of 8 values cost 6% of resnet20's 64-channel
    8 x 8 forward)."""
    cdef Py_ssize_t m
    for m in range(m0, m1):
        _copy(isa, g + m * Qr, Wq, Ho, Wo, out + m * Ho * Wo, Wo)


cdef inline void _copy(int isa, const real* src, Py_ssize_t lds, Py_ssize_t rows, Py_ssize_t n,
                       real* dst, Py_ssize_t ldd) noexcept nogil:
    """rows rows of n values, lds apart, to dst, ldd apart (direct.h dc_copy), on AVX2's
    vectors where n is narrower than AVX-512's (whose copy takes those value by value)."""
    if isa > 1 and n < dc_wide_lanes(isa, sizeof(real) == 8):
        isa = 1
    if real is float:
        dc_copy_f(isa, src, lds, rows, n, dst, ldd)
    else:
        dc_copy_d(isa, src, lds, rows, n, dst, ldd)


cdef inline void _epilogue(int isa, real* g, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t m0,
                           Py_ssize_t m1, Py_ssize_t Ho, Py_ssize_t Wo, const real* res,
                           bint relu, int kh, int kw, int sh, int sw, Py_ssize_t Hp,
                           Py_ssize_t Wp, real* out) noexcept nogil:
    """out (M, Hp, Wp) of one sample, filters m0 <= m < m1: the grid's rows (M, Ho, Wq
    apart) (+ res (M, Ho, Wo) if not NULL), max(., 0) if relu, then pooled if kh > 0 (else
    Hp, Wp are Ho, Wo): direct.h's dc_rows and dc_pool, in vectors; pooling overwrites the
    grid."""
    if kh == 0:
        if real is float:
            dc_rows_f(isa, g, Qr, Wq, m0, m1, Ho, Wo, res, relu, out)
        else:
            dc_rows_d(isa, g, Qr, Wq, m0, m1, Ho, Wo, res, relu, out)
    elif real is float:
        dc_pool_f(isa, g, Qr, Wq, m0, m1, Ho, Wo, res, relu, kh, kw, sh, sw, Hp, Wp, out)
    else:
        dc_pool_d(isa, g, Qr, Wq, m0, m1, Ho, Wo, res, relu, kh, kw, sh, sw, Hp, Wp, out)


include "direct_backward.pxi"
