# The inference forward of 3x3 stride-1 convs by Winograd F(2x2, 3x3) (included by
# direct.pyx; the kernels and why: winograd.h).

cdef extern from "winograd.h" nogil:
    void wg_grid_f(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                   Py_ssize_t Qr, const float* src, const float* u, const float* bias,
                   float* vb, float* mb, float* y)
    void wg_grid_d(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                   Py_ssize_t Qr, const double* src, const double* u, const double* bias,
                   double* vb, double* mb, double* y)
    void wg_out_f(int isa, const float* y, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t M,
                  Py_ssize_t Ho, Py_ssize_t Wo, const float* res, int relu, float* out)
    void wg_out_d(int isa, const double* y, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t M,
                  Py_ssize_t Ho, Py_ssize_t Wo, const double* res, int relu, double* out)
    void wg_planes_f(int isa, const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t Hq, Py_ssize_t Wq, float* src,
                     Py_ssize_t S)
    void wg_planes_d(int isa, const double* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t Hq, Py_ssize_t Wq, double* src,
                     Py_ssize_t S)
    Py_ssize_t wg_block(int isa, int is_double)
    bint wg_fuses(int isa, int is_double, Py_ssize_t Wq)
    void wg_grid_out_f(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                       Py_ssize_t Qr, const float* src, const float* u, const float* bias,
                       float* vb, float* mb, float* y, Py_ssize_t Ho, Py_ssize_t Wo,
                       const float* res, int relu, float* out)
    enum:
        WG_FR


WINO_ROWS = WG_FR
#: values a scratch row holds past its parts so that each block buffer can start on a 64-byte
#: boundary (_at64): a 16-float vector loaded across two cache lines, as every one of them
#: was from a numpy row, made the products 1.2-1.5x slower (8-wide ones too)
ALIGN_SLACK = 3 * 16


cdef inline real* _at64(real* p) noexcept nogil:
    """p moved up to the next 64-byte boundary (at most 15 floats or 7 doubles)."""
    return <real*>((<uintptr_t>p + 63) & ~(<uintptr_t>63))


def wino_lanes(int isa, bint is_double):
    """Values per vector of variant isa's Winograd grid (its tile positions are rounded up to
    them): 16 floats with AVX-512, else the direct kernels' lanes."""
    return dc_wide_lanes(isa, is_double)


def wino_scratch(Py_ssize_t C, Py_ssize_t M, Py_ssize_t S, Py_ssize_t Qr, int isa,
                 bint is_double):
    """Values of one thread's scratch row for forward_wino: the planes (S), the block's
    transformed input and products, the output phase grid (and a vector read past it)."""
    cdef Py_ssize_t L = dc_wide_lanes(isa, is_double), B = wg_block(isa, is_double)
    return (S + 16 * C * B + 16 * WG_FR * B + (M + WG_FR - 1) // WG_FR * WG_FR * 4 * Qr + L
            + ALIGN_SLACK)


def forward_wino(const real[:, :, :, ::1] x, real[:, ::1] scratch, const real[::1] u,
                 const real[::1] bias, real[:, :, :, ::1] out, int ph, int pw, int Hq, int Wq,
                 int Qr, int S, int isa, int num_threads, const real[:, :, :, ::1] residual=None,
                 bint relu=False, bint fused=True):
    """out (N, M, Ho, Wo) = the 3x3 stride-1 conv of x (N, C, H, W) padded by (ph, pw) (+
    residual (N, M, Ho, Wo) if given, max(., 0) if relu: NaN stays NaN) by Winograd
    F(2x2, 3x3) (winograd.h), samples split over OpenMP threads. u: the transformed filters
    (16, ceil(M / WG_FR), C, WG_FR), bias padded like them (ops/winograd.py packed); Hq, Wq:
    the stride-2 planes' size, Qr: the tile grid's positions ceil(Ho / 2) * Wq rounded up to
    whole vectors, S: a sample's planes with their zero tail; scratch: one row per thread of
    wino_scratch values. fused: the read-out in the grid's blocks where wg_fuses (float on
    AVX-512, Wq = 8), outputs 1-2 ulps off the pass's (False: for A/B measurements)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], n, t
    cdef Py_ssize_t L = dc_wide_lanes(isa, real is double), B = wg_block(isa, real is double)
    cdef Py_ssize_t HW = Hq * Wq
    cdef Py_ssize_t tiles = (M + WG_FR - 1) // WG_FR
    cdef bint has_res = residual is not None, is_double = real is double
    cdef real* row
    cdef real* vb
    cdef real* mb
    cdef real* y
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.forward_wino: isa {isa} is not one this CPU runs")
    if (ph < 0 or pw < 0 or Ho != H + 2 * ph - 2 or Wo != W + 2 * pw - 2 or Ho < 1 or Wo < 1
            or Hq != (H + 2 * ph + 1) // 2 or Wq != (W + 2 * pw + 1) // 2 or Qr % L
            or Qr < (Ho + 1) // 2 * Wq or S < 4 * C * HW or S < 4 * C * HW - HW + Wq + 1 + Qr
            or u.shape[0] < 16 * tiles * C * WG_FR or bias.shape[0] < tiles * WG_FR
            or out.shape[0] != N or num_threads < 1 or scratch.shape[0] < min(num_threads, N)
            or scratch.shape[1] < wino_scratch(C, M, S, Qr, isa, is_double)):
        raise ValueError("direct.forward_wino: the buffers and the geometry disagree")
    if has_res and (residual.shape[0] != N or residual.shape[1] != M
                    or residual.shape[2] != Ho or residual.shape[3] != Wo):
        raise ValueError("direct.forward_wino: the residual's shape is not the conv output's")
    if N == 0 or M == 0:
        return
    if num_threads > N:
        num_threads = N
    fused = fused and wg_fuses(isa, is_double, Wq)
    with nogil:
        # dynamic: a late thread takes fewer samples (direct.pyx forward)
        for n in prange(N, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            row = &scratch[t, 0]
            vb = _at64(row + S)
            mb = _at64(vb + 16 * C * B)
            y = _at64(mb + 16 * WG_FR * B)
            if real is float:
                wg_planes_f(isa, &x[n, 0, 0, 0], C, H, W, ph, pw, Hq, Wq, row, S)
                if fused:
                    wg_grid_out_f(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y, Ho,
                                  Wo, &residual[n, 0, 0, 0] if has_res else NULL, relu,
                                  &out[n, 0, 0, 0])
                else:
                    wg_grid_f(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y)
                    wg_out_f(isa, y, Qr, Wq, M, Ho, Wo,
                             &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
            else:
                wg_planes_d(isa, &x[n, 0, 0, 0], C, H, W, ph, pw, Hq, Wq, row, S)
                wg_grid_d(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y)
                wg_out_d(isa, y, Qr, Wq, M, Ho, Wo, &residual[n, 0, 0, 0] if has_res else NULL,
                         relu, &out[n, 0, 0, 0])


# -- F(4x4, 3x3) (winograd4.h): stride-4 planes, 36 products per 4x4 block of outputs --
cdef extern from "winograd4.h" nogil:
    void wg4_grid_f(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                    Py_ssize_t Qr, const float* src, const float* u, const float* bias,
                    float* vb, float* mb, float* y)
    void wg4_grid_d(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                    Py_ssize_t Qr, const double* src, const double* u, const double* bias,
                    double* vb, double* mb, double* y)
    void wg4_out_f(int isa, const float* y, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t M,
                   Py_ssize_t Ho, Py_ssize_t Wo, const float* res, int relu, float* out)
    void wg4_out_d(int isa, const double* y, Py_ssize_t Qr, Py_ssize_t Wq, Py_ssize_t M,
                   Py_ssize_t Ho, Py_ssize_t Wo, const double* res, int relu, double* out)
    void wg4_planes_f(int isa, const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t Hq, Py_ssize_t Wq, float* src,
                      Py_ssize_t S, float* pad)
    void wg4_planes_d(int isa, const double* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t Hq, Py_ssize_t Wq, double* src,
                      Py_ssize_t S, double* pad)
    void wg4_grid_out_f(int isa, Py_ssize_t M, Py_ssize_t C, Py_ssize_t HW, Py_ssize_t Wq,
                        Py_ssize_t Qr, const float* src, const float* u, const float* bias,
                        float* vb, float* mb, float* y, Py_ssize_t Ho, Py_ssize_t Wo,
                        const float* res, int relu, float* out)


def wino4_scratch(Py_ssize_t C, Py_ssize_t M, Py_ssize_t S, Py_ssize_t Hq, Py_ssize_t Wq,
                  Py_ssize_t Qr,
                  int isa, bint is_double):
    """Values of one thread's scratch row for forward_wino4: the planes (S), a padded channel
    (4*Hq rows of 4*(Wq + L)), the block's transformed input and products, the output phase
    grid (and a vector past)."""
    cdef Py_ssize_t L = dc_wide_lanes(isa, is_double), B = wg_block(isa, is_double)
    return (S + 16 * Hq * (Wq + dc_lanes(isa, is_double)) + 36 * C * B + 36 * WG_FR * B
            + (M + WG_FR - 1) // WG_FR * WG_FR * 16 * Qr + L + ALIGN_SLACK)


def forward_wino4(const real[:, :, :, ::1] x, real[:, ::1] scratch, const real[::1] u,
                  const real[::1] bias, real[:, :, :, ::1] out, int ph, int pw, int Hq, int Wq,
                  int Qr, int S, int isa, int num_threads, const real[:, :, :, ::1] residual=None,
                  bint relu=False, bint fused=True):
    """forward_wino by F(4x4, 3x3) (winograd4.h): u the transformed filters (36,
    ceil(M / WG_FR), C, WG_FR) (ops/winograd.py packed with tile 4); Hq = ceil(Ho / 4) + 1,
    Wq = ceil(Wo / 4) + 1: the stride-4 planes' size; Qr: ceil(Ho / 4) * Wq rounded up to
    whole vectors; S: a sample's 16 planes a channel with their zero tail; scratch: one row
    per thread of wino4_scratch values. fused: the read-out in the grid's blocks where
    wg_fuses (float on AVX-512, Wq = 8), the same bits (False: for A/B measurements)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], n, t
    cdef Py_ssize_t L = dc_wide_lanes(isa, real is double), B = wg_block(isa, real is double)
    cdef Py_ssize_t HW = Hq * Wq, PL = dc_lanes(isa, real is double)
    cdef Py_ssize_t tiles = (M + WG_FR - 1) // WG_FR
    cdef bint has_res = residual is not None, is_double = real is double
    cdef real* row
    cdef real* rb
    cdef real* vb
    cdef real* mb
    cdef real* y
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.forward_wino4: isa {isa} is not one this CPU runs")
    if (ph < 0 or pw < 0 or Ho != H + 2 * ph - 2 or Wo != W + 2 * pw - 2 or Ho < 1 or Wo < 1
            or Hq != (Ho + 3) // 4 + 1 or Wq != (Wo + 3) // 4 + 1 or Qr % L
            or Qr < (Ho + 3) // 4 * Wq or S < 16 * C * HW or S < 16 * C * HW - HW + Wq + 1 + Qr
            or u.shape[0] < 36 * tiles * C * WG_FR or bias.shape[0] < tiles * WG_FR
            or out.shape[0] != N or num_threads < 1 or scratch.shape[0] < min(num_threads, N)
            or scratch.shape[1] < wino4_scratch(C, M, S, Hq, Wq, Qr, isa, is_double)):
        raise ValueError("direct.forward_wino4: the buffers and the geometry disagree")
    if has_res and (residual.shape[0] != N or residual.shape[1] != M
                    or residual.shape[2] != Ho or residual.shape[3] != Wo):
        raise ValueError("direct.forward_wino4: the residual's shape is not the conv output's")
    if N == 0 or M == 0:
        return
    if num_threads > N:
        num_threads = N
    fused = fused and wg_fuses(isa, is_double, Wq)
    with nogil:
        # dynamic: a late thread takes fewer samples (direct.pyx forward)
        for n in prange(N, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            row = &scratch[t, 0]
            rb = row + S
            vb = _at64(rb + 16 * Hq * (Wq + PL))
            mb = _at64(vb + 36 * C * B)
            y = _at64(mb + 36 * WG_FR * B)
            if real is float:
                wg4_planes_f(isa, &x[n, 0, 0, 0], C, H, W, ph, pw, Hq, Wq, row, S, rb)
                if fused:
                    wg4_grid_out_f(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y, Ho,
                                   Wo, &residual[n, 0, 0, 0] if has_res else NULL, relu,
                                   &out[n, 0, 0, 0])
                else:
                    wg4_grid_f(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y)
                    wg4_out_f(isa, y, Qr, Wq, M, Ho, Wo,
                              &residual[n, 0, 0, 0] if has_res else NULL, relu, &out[n, 0, 0, 0])
            else:
                wg4_planes_d(isa, &x[n, 0, 0, 0], C, H, W, ph, pw, Hq, Wq, row, S, rb)
                wg4_grid_d(isa, M, C, HW, Wq, Qr, row, &u[0], &bias[0], vb, mb, y)
                wg4_out_d(isa, y, Qr, Wq, M, Ho, Wo, &residual[n, 0, 0, 0] if has_res else NULL,
                          relu, &out[n, 0, 0, 0])
