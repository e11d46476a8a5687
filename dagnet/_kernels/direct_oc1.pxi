# Training's stride-1 forward vectorised along output channels (included by direct.pyx; the
# kernel and why: direct_oc1.h).

cdef extern from "direct_oc1.h" nogil:
    void o1_conv_f(int isa, Py_ssize_t K, Py_ssize_t KB, const int32_t* off,
                   const float* wp, const float* bias, Py_ssize_t Mp, const float* xp,
                   Py_ssize_t Wq, Py_ssize_t Ho, Py_ssize_t Wo, float* grid)
    void o1_conv_d(int isa, Py_ssize_t K, Py_ssize_t KB, const int32_t* off,
                   const double* wp, const double* bias, Py_ssize_t Mp, const double* xp,
                   Py_ssize_t Wq, Py_ssize_t Ho, Py_ssize_t Wo, double* grid)


def forward_oc1(const real[:, :, :, ::1] x, real[:, ::1] planes, const int32_t[::1] off,
                const real[::1] wq, const real[::1] bq, real[:, ::1] grid,
                real[:, :, :, ::1] out, int kb, int ph, int pw, int Hq, int Wq,
                int isa, int num_threads):
    """out (N, M, Ho, Wo) = the stride-1 conv of x (N, C, H, W) padded by (ph, pw), whose
    planes (the padded sample, Hq x Wq a channel, then zeros) it writes into planes (N, S)
    (kept for backward), or into one row per thread (fewer rows than N: reused in cache), on direct_oc1.h's kernel, samples split over OpenMP threads: taps in
    blocks of kb. off (K,): tap (c, i, j) at (c*Hq + i)*Wq + j; wq, bq: the filters in tiles
    of 2 vectors (ops/direct_oc1.py channel_tiles: direct_oc.h's layout, nb 2);
    grid: one (Ho*Wo*Mp,) scratch row per thread. The outputs are bitwise forward's."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t M = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], K = off.shape[0]
    cdef Py_ssize_t S = planes.shape[1], Mp = bq.shape[0], n, t, i
    cdef Py_ssize_t L = dc_wide_lanes(isa, real is double)
    cdef int32_t slot0 = 0
    cdef bint kept = planes.shape[0] >= N
    cdef real* g
    cdef real* pl
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.forward_oc1: isa {isa} is not one this CPU runs")
    if (Mp % (2 * L) or Mp < M or wq.shape[0] < K * Mp or kb < 1
            or ph < 0 or pw < 0 or Hq != H + 2 * ph or Wq != W + 2 * pw
            or Ho > Hq or Wo > Wq or out.shape[0] != N
            or S < C * Hq * Wq or num_threads < 1 or grid.shape[0] < min(num_threads, N)
            or planes.shape[0] < min(num_threads, N)
            or grid.shape[1] < Ho * Wo * Mp):
        raise ValueError("direct.forward_oc1: the buffers and the geometry disagree")
    for i in range(K):
        if off[i] < 0 or Ho < 1 or Wo < 1 or off[i] + (Ho - 1) * Wq + Wo > S:
            raise ValueError(f"direct.forward_oc1: offset {off[i]} reads past the planes ({S})")
    if N == 0 or M == 0:
        return
    if num_threads > N:
        num_threads = N
    with nogil:
        # dynamic: a late thread takes fewer samples (direct.pyx forward)
        for n in prange(N, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            g = &grid[t, 0]
            pl = &planes[n if kept else t, 0]
            _planes_one(&x[n, 0, 0, 0], C, H, W, 1, 1, ph, pw, Hq, Wq, &slot0, 1, pl, S, isa)
            if real is float:
                o1_conv_f(isa, K, kb, &off[0], &wq[0], &bq[0], Mp, pl, Wq, Ho, Wo, g)
                oc_out_f(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo, NULL, 0, &out[n, 0, 0, 0])
            else:
                o1_conv_d(isa, K, kb, &off[0], &wq[0], &bq[0], Mp, pl, Wq, Ho, Wo, g)
                oc_out_d(isa, g, Mp, M, Ho * Wo, 0, Ho * Wo, NULL, 0, &out[n, 0, 0, 0])
