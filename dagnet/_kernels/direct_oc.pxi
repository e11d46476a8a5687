# The inference forward vectorised along output channels (included by direct.pyx; the
# kernels and why: direct_oc.h).

cdef extern from "direct_oc.h" nogil:
    void oc_rows_f(int isa, int nb, Py_ssize_t K, const int32_t* off, const float* wp,
                   const float* bias, Py_ssize_t Mp, const float* xp, Py_ssize_t Wp,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                   float* grid)
    void oc_rows_d(int isa, int nb, Py_ssize_t K, const int32_t* off, const double* wp,
                   const double* bias, Py_ssize_t Mp, const double* xp, Py_ssize_t Wp,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                   double* grid)
    void oc_out_f(int isa, const float* grid, Py_ssize_t Mp, Py_ssize_t M, Py_ssize_t Q,
                  Py_ssize_t q0, Py_ssize_t q1, const float* res, int relu, float* out)
    void oc_out_d(int isa, const double* grid, Py_ssize_t Mp, Py_ssize_t M, Py_ssize_t Q,
                  Py_ssize_t q0, Py_ssize_t q1, const double* res, int relu, double* out)
    int OC_TAPS_MAX
    void oc_taps_f(int K, const int32_t* off, const float* wp, const float* bias, Py_ssize_t M,
                   Py_ssize_t nc, const float* xp, Py_ssize_t Wp, Py_ssize_t Ho, Py_ssize_t Wo,
                   const float* res, int relu, float* out)
    void oc_taps_d(int K, const int32_t* off, const double* wp, const double* bias,
                   Py_ssize_t M, Py_ssize_t nc, const double* xp, Py_ssize_t Wp, Py_ssize_t Ho,
                   Py_ssize_t Wo, const double* res, int relu, double* out)


def oc_lanes(int isa, bint is_double):
    """Values per vector of variant isa's output-channel tiles (16 floats with AVX-512, else
    the direct kernels' lanes): oc_geometry's and oc_packed's lanes."""
    return dc_wide_lanes(isa, is_double)


def oc_taps_max():
    """The most taps (C*kh*kw) of a stride-1 conv forward_oc runs on direct_oc.h's few-tap
    kernel (AVX-512): ops/direct.py uses_taps."""
    return OC_TAPS_MAX


cdef void _pad_one(const real* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph,
                   Py_ssize_t pw, real* xp) noexcept nogil:
    """xp (C, H + 2ph, W + 2pw) = x (C, H, W) with ph rows and pw columns of zeros around."""
    cdef Py_ssize_t c, a, Wp = W + 2 * pw, Hp = H + 2 * ph
    cdef real* row
    for c in range(C):
        memset(xp + c * Hp * Wp, 0, ph * Wp * sizeof(real))
        for a in range(H):
            row = xp + (c * Hp + ph + a) * Wp
            memset(row, 0, pw * sizeof(real))
            memcpy(row + pw, x + (c * H + a) * W, W * sizeof(real))
            memset(row + pw + W, 0, pw * sizeof(real))
        memset(xp + (c * Hp + ph + H) * Wp, 0, ph * Wp * sizeof(real))


def forward_oc(const real[:, :, :, ::1] x, real[:, ::1] scratch, const int32_t[::1] off,
               const real[::1] wq, const real[::1] bq, real[:, :, :, ::1] out, int nb, int sh,
               int sw, int ph, int pw, int isa, int num_threads,
               const real[:, :, :, ::1] residual=None, bint relu=False):
    """out (N, M, Ho, Wo) = the conv of x (N, C, H, W) (+ residual (N, M, Ho, Wo) if given,
    max(., 0) if relu: NaN stays NaN) by direct_oc.h's kernels (stride 1 and at most
    OC_TAPS_MAX taps with AVX-512: the few-tap kernel), samples split over OpenMP threads. off (K,): tap (c, i, j) at (c*Hp + i)*Wp + j of the padded sample (Hp = H + 2ph,
    Wp = W + 2pw); wq: tiles of nb*L channels of K x nb*L weights, bq: their Mp biases
    (ops/direct.py oc_packed); scratch: one row per thread, the padded sample (none without
    padding) then the (Ho*Wo, Mp) grid."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], K = off.shape[0]
    cdef Py_ssize_t Hp = H + 2 * ph, Wp = W + 2 * pw, Mp = bq.shape[0], n, t, i
    cdef Py_ssize_t L = dc_wide_lanes(isa, real is double), reach
    cdef Py_ssize_t xs = C * Hp * Wp if ph or pw else 0
    cdef bint has_res = residual is not None, taps
    cdef const real* xn
    cdef real* xp
    cdef real* g
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.forward_oc: isa {isa} is not one this CPU runs")
    if (nb not in (2, 4) or Mp % (nb * L) or Mp < M or wq.shape[0] < K * Mp or sh < 1 or sw < 1
            or ph < 0 or pw < 0 or out.shape[0] != N or num_threads < 1
            or scratch.shape[0] < min(num_threads, N) or scratch.shape[1] < xs + Ho * Wo * Mp):
        raise ValueError("direct.forward_oc: the buffers and the geometry disagree")
    if has_res and (residual.shape[0] != N or residual.shape[1] != M
                    or residual.shape[2] != Ho or residual.shape[3] != Wo):
        raise ValueError("direct.forward_oc: the residual's shape is not the conv output's")
    reach = (Ho - 1) * sh * Wp + (Wo - 1) * sw if Ho > 0 and Wo > 0 else 0
    for i in range(K):
        if off[i] < 0 or off[i] + reach >= C * Hp * Wp:
            raise ValueError(f"direct.forward_oc: offset {off[i]} reads past the input")
    if N == 0 or M == 0 or Ho == 0 or Wo == 0:
        return
    if num_threads > N:
        num_threads = N
    taps = sh == 1 and sw == 1 and K <= OC_TAPS_MAX and isa >= 2  # AVX-512: the few-tap kernel
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            xn = &x[n, 0, 0, 0]
            xp = &scratch[t, 0]
            g = xp + xs
            if xs:
                _pad_one(xn, C, H, W, ph, pw, xp)
                xn = xp
            if taps:
                if real is float:
                    oc_taps_f(K, &off[0], &wq[0], &bq[0], M, nb * L, xn, Wp, Ho, Wo,
                              &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
                else:
                    oc_taps_d(K, &off[0], &wq[0], &bq[0], M, nb * L, xn, Wp, Ho, Wo,
                              &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
            elif real is float:
                oc_rows_f(isa, nb, K, &off[0], &wq[0], &bq[0], Mp, xn, Wp, sh, sw, 0, Ho, Wo, g)
                oc_out_f(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo,
                         &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
            else:
                oc_rows_d(isa, nb, K, &off[0], &wq[0], &bq[0], Mp, xn, Wp, sh, sw, 0, Ho, Wo, g)
                oc_out_d(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo,
                         &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
