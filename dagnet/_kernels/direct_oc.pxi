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
    void oc_taps2_f(int K, const int32_t* off, const float* wp, const float* bias, Py_ssize_t M,
                    Py_ssize_t nc, const float* xp, Py_ssize_t Wp, Py_ssize_t sh, Py_ssize_t Ho,
                    Py_ssize_t Wo, const float* res, int relu, float* out)
    void oc_taps2_d(int K, const int32_t* off, const double* wp, const double* bias,
                    Py_ssize_t M, Py_ssize_t nc, const double* xp, Py_ssize_t Wp, Py_ssize_t sh,
                    Py_ssize_t Ho, Py_ssize_t Wo, const double* res, int relu, double* out)


def oc_lanes(int isa, bint is_double):
    """Values per vector of variant isa's output-channel tiles (16 floats with AVX-512, else
    the direct kernels' lanes): oc_geometry's and oc_packed's lanes."""
    return dc_wide_lanes(isa, is_double)


def oc_taps_max():
    """The most taps (C*kh*kw) of a stride-1 conv forward_oc runs on direct_oc.h's few-tap
    kernel (AVX-512): ops/direct_oc.py uses_taps."""
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


cdef void _oc_conv(int isa, bint taps, bint taps2, Py_ssize_t K, const int32_t* off,
                   const real* wq, const real* bq, Py_ssize_t M, Py_ssize_t Mp, int nb,
                   Py_ssize_t L, const real* xn, Py_ssize_t Wp, int sh, int sw, Py_ssize_t Ho,
                   Py_ssize_t Wo, real* g, const real* res, bint relu,
                   real* out) noexcept nogil:
    """One sample's conv on the kernel forward_oc picked (taps: oc_taps, taps2: oc_taps2,
    else the grid g and its read-out): out (M, Ho, Wo) from the (padded) sample xn."""
    if taps:
        if real is float:
            oc_taps_f(K, off, wq, bq, M, nb * L, xn, Wp, Ho, Wo, res, relu, out)
        else:
            oc_taps_d(K, off, wq, bq, M, nb * L, xn, Wp, Ho, Wo, res, relu, out)
    elif taps2:
        if real is float:
            oc_taps2_f(K, off, wq, bq, M, nb * L, xn, Wp, sh, Ho, Wo, res, relu, out)
        else:
            oc_taps2_d(K, off, wq, bq, M, nb * L, xn, Wp, sh, Ho, Wo, res, relu, out)
    elif real is float:
        oc_rows_f(isa, nb, K, off, wq, bq, Mp, xn, Wp, sh, sw, 0, Ho, Wo, g)
        oc_out_f(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo, res, relu, out)
    else:
        oc_rows_d(isa, nb, K, off, wq, bq, Mp, xn, Wp, sh, sw, 0, Ho, Wo, g)
        oc_out_d(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo, res, relu, out)


def forward_oc(const real[:, :, :, ::1] x, real[:, ::1] scratch, const int32_t[::1] off,
               const real[::1] wq, const real[::1] bq, real[:, :, :, ::1] out, int nb, int sh,
               int sw, int ph, int pw, int isa, int num_threads,
               const real[:, :, :, ::1] residual=None, bint relu=False, bint taps2=True,
               const int32_t[::1] off2=None, const real[::1] wq2=None, const real[::1] bq2=None,
               real[:, :, :, ::1] out2=None, int nb2=2, bint relu2=False):
    """out (N, M, Ho, Wo) = the conv of x (N, C, H, W) (+ residual (N, M, Ho, Wo) if given,
    max(., 0) if relu: NaN stays NaN) by direct_oc.h's kernels (at most OC_TAPS_MAX taps with
    AVX-512: the few-tap kernels, oc_taps for stride 1, oc_taps2 for column stride 2), samples
    split over OpenMP threads. off (K,): tap (c, i, j) at (c*Hp + i)*Wp + j of the padded sample (Hp = H + 2ph,
    Wp = W + 2pw); wq: tiles of nb*L channels of K x nb*L weights, bq: their Mp biases
    (ops/direct_oc.py oc_packed); scratch: one row per thread, the padded sample (none without
    padding) then the (Ho*Wo, Mp) grid. taps2 False keeps column-stride-2 convs on the grid
    kernel (A/B measurements).
    With out2 (N, M2, Ho, Wo), a second conv of the same input and stride (a ResNet's 1x1
    projection beside its block's strided conv) runs in the same pass, each sample right after
    the first conv's while it is in cache: taps off2 in the same padded sample, weights wq2,
    bq2 (Mp2 <= Mp: it reuses the grid), nb2; max(., 0) if relu2, no residual."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], K = off.shape[0]
    cdef Py_ssize_t Hp = H + 2 * ph, Wp = W + 2 * pw, Mp = bq.shape[0], n, t, i
    cdef Py_ssize_t L = dc_wide_lanes(isa, real is double), reach
    cdef Py_ssize_t xs = C * Hp * Wp if ph or pw else 0
    cdef Py_ssize_t K2 = 0, M2 = 0, Mp2 = 0
    cdef bint has_res = residual is not None, taps, two = out2 is not None, taps2b = False
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
    if two:
        if off2 is None or wq2 is None or bq2 is None:
            raise ValueError("direct.forward_oc: out2 needs off2, wq2 and bq2")
        K2, M2, Mp2 = off2.shape[0], out2.shape[1], bq2.shape[0]
        if (nb2 not in (2, 4) or Mp2 % (nb2 * L) or Mp2 < M2 or Mp2 > Mp
                or wq2.shape[0] < K2 * Mp2 or out2.shape[0] != N or out2.shape[2] != Ho
                or out2.shape[3] != Wo):
            raise ValueError("direct.forward_oc: the second conv's buffers and geometry disagree")
        for i in range(K2):
            if off2[i] < 0 or off2[i] + reach >= C * Hp * Wp:
                raise ValueError(f"direct.forward_oc: offset {off2[i]} reads past the input")
    if N == 0 or Ho == 0 or Wo == 0 or (M == 0 and M2 == 0):
        return
    if num_threads > N:
        num_threads = N
    taps = sh == 1 and sw == 1 and K <= OC_TAPS_MAX and isa >= 2  # AVX-512: the few-tap kernel
    taps2b = sw == 2 and K2 <= OC_TAPS_MAX and isa >= 2 and taps2  # the second conv's
    taps2 = sw == 2 and K <= OC_TAPS_MAX and isa >= 2 and taps2  # its column-stride-2 twin
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            xn = &x[n, 0, 0, 0]
            xp = &scratch[t, 0]
            g = xp + xs
            if xs:
                _pad_one(xn, C, H, W, ph, pw, xp)
                xn = xp
            if M:
                _oc_conv(isa, taps, taps2, K, &off[0], &wq[0], &bq[0], M, Mp, nb, L, xn, Wp, sh,
                         sw, Ho, Wo, g, &residual[n, 0, 0, 0] if has_res else NULL, relu,
                         &out[n, 0, 0, 0])
            if two and M2:
                _oc_conv(isa, sh == 1 and sw == 1 and K2 <= OC_TAPS_MAX and isa >= 2, taps2b, K2,
                         &off2[0], &wq2[0], &bq2[0], M2, Mp2, nb2, L, xn, Wp, sh, sw, Ho, Wo, g,
                         NULL, relu2, &out2[n, 0, 0, 0])
