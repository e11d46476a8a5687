# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Depthwise and grouped convolution (few channels per group): forward and backward.

    planes (N, S): each channel of a sample padded and split into its stride's used phases
        (P = Hq*Wq values each, cs = nph*P per channel, channel by channel), then zeros
    out[n, f] on the Ho x Wq grid = b[f] + sum_k w[f, k] * planes[n][group base + off[k] + q]
    dw[f, k] = sum over n and the grid of dout[n, f][q] * planes[n][group base + off[k] + q]
    dx: each phase plane of each input channel gathers from the output gradients of its
        group's filters, laid on zero-bordered grids ("ext", E values each, the grid at
        `lead`): dplane[p] = sum over its taps j of wdx[g, j] * ext[dx_off[j] + p]

Why: grouped convs by im2col + a batched matmul run thousands of (F/G, K/G) @ (K/G, P)
products with K/G = 9 for depthwise 3x3, far too thin for BLAS; here each filter is K
shifted multiply-adds over its channel's planes (depthwise.h).

Threads: the forward splits the (sample, group) pairs, each writing its own planes and
outputs; the backward splits the batch into chunks fixed by the batch size (not the thread
count), each summing its samples' dw and db (in double) into its own slice, which the caller
sums in order: bitwise the same result for any thread count. Both walk a sample's channels
in order, so the planes, outputs and gradients stream through memory.
"""
from cython.parallel import prange, threadid
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset

from dagnet._kernels.types cimport real

cdef extern from "depthwise.h" nogil:
    int dn_best_isa()
    Py_ssize_t dwk_lanes(int isa, int is_double)
    void dwk_fwd_f(int isa, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off, const float* w,
                   float bias, const float* src, float* grid)
    void dwk_fwd_d(int isa, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off, const double* w,
                   double bias, const double* src, double* grid)
    void dwk_dw_f(int isa, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off, const float* d,
                  const float* src, double* dw)
    void dwk_dw_d(int isa, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off, const double* d,
                  const double* src, double* dw)


def best_isa():
    """The widest variant of the kernels this CPU runs (isa.h: 0 portable, 1 AVX2 + FMA, 2
    AVX-512, which runs the AVX2 kernels)."""
    return dn_best_isa()


def lanes(int isa, bint is_double):
    """Values per vector of variant isa for float32 (or float64 if is_double)."""
    return dwk_lanes(isa, is_double)


cdef inline void _fwd(int isa, Py_ssize_t K, Py_ssize_t Qr, const int32_t* off, const real* w,
                      real bias, const real* src, real* grid) noexcept nogil:
    if real is float:
        dwk_fwd_f(isa, K, Qr, off, w, bias, src, grid)
    else:
        dwk_fwd_d(isa, K, Qr, off, w, bias, src, grid)


cdef void _planes_channel(const real* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sh,
                          Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left, Py_ssize_t Hq,
                          Py_ssize_t Wq, const int32_t* phases, Py_ssize_t nph,
                          real* dst) noexcept nogil:
    """dst (nph*Hq*Wq values) = the used phase planes of the channel x (H, W), padded by
    top rows and left columns (zeros wherever no input pixel falls)."""
    cdef Py_ssize_t s, rh, rw, a, b, ih, lo, hi
    cdef real* plane
    cdef const real* row
    # one memset for the padding, then the pixels row by row: small planes have many short
    # rows, and a call per row edge cost more than the zeros it wrote
    memset(dst, 0, nph * Hq * Wq * sizeof(real))
    for s in range(nph):
        rh = phases[s] // sw
        rw = phases[s] % sw
        plane = dst + s * Hq * Wq
        # the plane's columns b with 0 <= b*sw + rw - left < W
        lo = (left - rw + sw - 1) // sw if left > rw else 0
        hi = (W - 1 + left - rw) // sw + 1 if W - 1 + left - rw >= 0 else 0
        if hi > Wq:
            hi = Wq
        if lo > hi:
            lo = hi
        if lo == hi:
            continue
        for a in range(Hq):
            ih = a * sh + rh - top
            if ih < 0 or ih >= H:
                continue
            row = x + ih * W
            if sw == 1:
                memcpy(plane + a * Wq + lo, row + lo + rw - left, (hi - lo) * sizeof(real))
            elif sw == 2:  # a constant stride: the compiler vectorises the gather
                for b in range(lo, hi):
                    plane[a * Wq + b] = row[2 * b + rw - left]
            else:
                for b in range(lo, hi):
                    plane[a * Wq + b] = row[b * sw + rw - left]


def forward(const real[:, :, :, ::1] x, real[:, ::1] planes, const int32_t[::1] phases,
            const int32_t[::1] off, const real[:, ::1] w, const real[::1] bias,
            real[:, ::1] grid, real[:, :, :, ::1] out, int groups, int sh, int sw, int top,
            int left, int Hq, int Wq, int Qr, int isa, int num_threads):
    """out (N, F, Ho, Wo) = the grouped conv of x (N, C, H, W), whose planes it writes into
    planes (N, S) (kept for backward). w: (F, K) the filters, tap k = (c*kh + i)*kw + j;
    grid: one (Qr,) scratch row per thread."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = out.shape[1], Ho = out.shape[2], Wo = out.shape[3], K = off.shape[0]
    cdef Py_ssize_t G = groups, S = planes.shape[1], nph = phases.shape[0]
    cdef Py_ssize_t cs = nph * Hq * Wq, Cg, Fg, i, n, g, c, m, f, oh, t
    cdef real* src
    cdef real* gr
    if G < 1 or C % G or F % G:
        raise ValueError("depthwise.forward: groups must divide the channels and filters")
    Cg, Fg = C // G, F // G
    if (planes.shape[0] < N or S < C * cs or grid.shape[0] < num_threads or grid.shape[1] < Qr
            or Qr % dwk_lanes(isa, real is double) or Qr < Ho * Wq or Wo > Wq
            or w.shape[0] != F or w.shape[1] != K or bias.shape[0] != F or out.shape[0] != N
            or nph < 1):
        raise ValueError("depthwise.forward: the buffers and the geometry disagree")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"depthwise.forward: isa {isa} is not one this CPU runs")
    for i in range(K):
        if off[i] < 0 or (G - 1) * Cg * cs + off[i] + Qr > S:
            raise ValueError(f"depthwise.forward: offset {off[i]} reads past the planes ({S})")
    if N == 0:
        return
    with nogil:
        for i in prange(N * G, schedule="static", num_threads=num_threads):
            n = i // G
            g = i % G
            t = threadid()
            gr = &grid[t, 0]
            src = &planes[n, 0] + g * Cg * cs
            for c in range(Cg):
                _planes_channel(&x[n, g * Cg + c, 0, 0], H, W, sh, sw, top, left, Hq, Wq,
                                &phases[0], nph, src + c * cs)
            if g == G - 1:
                memset(&planes[n, 0] + C * cs, 0, (S - C * cs) * sizeof(real))
            for m in range(Fg):
                f = g * Fg + m
                _fwd(isa, K, Qr, &off[0], &w[f, 0], bias[f], src, gr)
                for oh in range(Ho):
                    memcpy(&out[n, f, oh, 0], gr + oh * Wq, Wo * sizeof(real))


cdef void _scatter_phase(const real* sc, real* dxc, Py_ssize_t H, Py_ssize_t W, Py_ssize_t rh,
                         Py_ssize_t rw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top,
                         Py_ssize_t left, Py_ssize_t Hq, Py_ssize_t Wq) noexcept nogil:
    """The input pixels of phase (rh, rw) in dxc (H, W) = their values in sc (Hq x Wq)."""
    cdef Py_ssize_t a, b, ih, lo, hi
    lo = (left - rw + sw - 1) // sw if left > rw else 0
    hi = (W - 1 + left - rw) // sw + 1 if W - 1 + left - rw >= 0 else 0
    if hi > Wq:
        hi = Wq
    if lo >= hi:
        return
    for a in range(Hq):
        ih = a * sh + rh - top
        if ih < 0 or ih >= H:
            continue
        if sw == 1:
            memcpy(dxc + ih * W + lo + rw - left, sc + a * Wq + lo, (hi - lo) * sizeof(real))
        elif sw == 2:
            for b in range(lo, hi):
                dxc[ih * W + 2 * b + rw - left] = sc[a * Wq + b]
        else:
            for b in range(lo, hi):
                dxc[ih * W + b * sw + rw - left] = sc[a * Wq + b]


def backward(const real[:, :, :, ::1] dout, const real[:, ::1] planes,
             const int32_t[::1] phases, const int32_t[::1] off, double[:, :, ::1] dw,
             double[:, ::1] db, real[:, ::1] ext, real[:, :, :, ::1] dx,
             const int32_t[::1] dx_off, const real[:, ::1] dx_w, const int32_t[::1] dx_counts,
             real[:, ::1] scratch, int groups, int channels, int sh, int sw, int top,
             int left, int Hq, int Wq, int Qr, int Pr, int lead, int E, bint zero_dx, int isa,
             int num_threads):
    """dw[chunk] (F, K) and db[chunk] (F,), zeros on entry, += the gradients of the forward's
    filters and biases over the chunk's samples (in double; the chunks split the batch evenly,
    in order); with dx (not None) the input gradient, overwritten. ext: one
    (F/G*E,) zeroed scratch row per thread (each filter's output gradient at `lead` of its
    E values); dx_off, dx_w (G, J), dx_counts: per input channel of a group and per used
    phase, its dx_counts taps' offsets into ext and weights, in that order; scratch: one
    (Pr,) row per thread; zero_dx: whether some input pixels get no gradient (they are
    zeroed first)."""
    cdef Py_ssize_t N = dout.shape[0], F = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    cdef Py_ssize_t K = off.shape[0], G = groups, C = channels, S = planes.shape[1]
    cdef Py_ssize_t nph = phases.shape[0], P = Hq * Wq, cs, Cg, Fg, H = 0, W = 0
    cdef Py_ssize_t chunks = dw.shape[0], ch, g, n, m, f, oh, ow, c, s, j0, cnt, t, i
    cdef bint need_dx = dx is not None
    cdef double total
    cdef real* e
    cdef real* em
    cdef real* sc
    cdef real* dxc
    cdef const real* src
    cdef const real* d
    cs = nph * P
    if G < 1 or C % G or F % G:
        raise ValueError("depthwise.backward: groups must divide the channels and filters")
    Cg, Fg = C // G, F // G
    if (planes.shape[0] < N or S < C * cs or dw.shape[1] != F or dw.shape[2] != K
            or chunks < 1 or db.shape[0] != chunks or db.shape[1] != F
            or ext.shape[0] < num_threads or ext.shape[1] < Fg * E
            or Qr % dwk_lanes(isa, real is double) or Qr < Ho * Wq or Wo > Wq
            or lead < 0 or lead + Qr > E or nph < 1):
        raise ValueError("depthwise.backward: the buffers and the geometry disagree")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"depthwise.backward: isa {isa} is not one this CPU runs")
    for i in range(K):
        if off[i] < 0 or (G - 1) * Cg * cs + off[i] + Qr > S:
            raise ValueError(f"depthwise.backward: offset {off[i]} reads past the planes ({S})")
    if need_dx:
        H, W = dx.shape[2], dx.shape[3]
        if (dx.shape[0] != N or dx.shape[1] != C or dx_counts.shape[0] != Cg * nph
                or dx_w.shape[0] != G or dx_w.shape[1] != dx_off.shape[0]
                or scratch.shape[0] < num_threads or scratch.shape[1] < Pr
                or Pr % dwk_lanes(isa, real is double) or Pr < P):
            raise ValueError("depthwise.backward: the input gradient's buffers and geometry "
                             "disagree")
        j0 = 0
        for c in range(Cg):
            for s in range(nph):
                for i in range(j0, j0 + dx_counts[c * nph + s]):
                    if dx_off[i] < 0 or dx_off[i] + c * cs + s * P + Pr > Fg * E:
                        raise ValueError(f"depthwise.backward: offset {dx_off[i]} reads past "
                                         f"the output gradient's grids")
                j0 += dx_counts[c * nph + s]
        if j0 != dx_off.shape[0]:
            raise ValueError("depthwise.backward: dx_counts and dx_off disagree")
    if N == 0:
        return
    with nogil:
        for ch in prange(chunks, schedule="static", num_threads=num_threads):
            t = threadid()
            e = &ext[t, 0]
            sc = &scratch[t, 0] if need_dx else NULL
            for n in range(ch * N // chunks, (ch + 1) * N // chunks):
                for g in range(G):
                    src = &planes[n, 0] + g * Cg * cs
                    for m in range(Fg):
                        f = g * Fg + m
                        em = e + m * E + lead
                        total = 0
                        for oh in range(Ho):
                            d = &dout[n, f, oh, 0]
                            memcpy(em + oh * Wq, d, Wo * sizeof(real))
                            for ow in range(Wo):
                                total = total + d[ow]
                        db[ch, f] += total
                        if real is float:
                            dwk_dw_f(isa, K, Qr, &off[0], em, src, &dw[ch, f, 0])
                        else:
                            dwk_dw_d(isa, K, Qr, &off[0], em, src, &dw[ch, f, 0])
                    if not need_dx:
                        continue
                    j0 = 0
                    for c in range(Cg):
                        dxc = &dx[n, g * Cg + c, 0, 0]
                        if zero_dx:
                            memset(dxc, 0, H * W * sizeof(real))
                        for s in range(nph):
                            cnt = dx_counts[c * nph + s]
                            _fwd(isa, cnt, Pr, &dx_off[j0], &dx_w[g, j0], 0,
                                 e + c * cs + s * P, sc)
                            _scatter_phase(sc, dxc, H, W, phases[s] // sw, phases[s] % sw, sh,
                                           sw, top, left, Hq, Wq)
                            j0 = j0 + cnt
