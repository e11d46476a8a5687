# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Spatial batchnorm over x (N, C, P) (P = H*W), optionally with the relu after it.

Each (n, c) plane of P values must be contiguous; the planes may lie anywhere, so x can be
the (N, C, P) view of a conv's GEMM output stored as (C, N, P), and dx can be written straight
into that layout for the conv's backward (no transposes).
Memory traffic is the cost, so each step streams as few tensors as it can, as torch does: the
statistics take one pass per channel (sums of x - K and its square, K the channel's first
value, so the shift keeps the variance exact to double precision); forward writes only its
output (backward recomputes xhat = (x - mean) * inv_std from x and never stores it: one
tensor written, not two); backward makes one pass for the two sums and one for dx, the relu
mask (the output's sign) applied inside them. In training both passes run one channel at a
time (`stats_normalize`, `backward`), so that the second reads the channel from L2.
The sums are in double; -ffast-math lets gcc vectorise them (its order is fixed at compile
time: the same numbers every run).
Channels (statistics, sums) or planes (elementwise passes) are split over OpenMP threads, each
reduced entirely by one thread in a fixed order: bitwise the same for any thread count.
They are handed out dynamically, a channel or a few planes at a time, not in equal static
shares: every parallel region wakes a sleeping thread (OMP_WAIT_POLICY=PASSIVE) and, with the
other core busy, may wait for it a scheduler tick; a static share then left the statistics of
a (64, 16, 32, 32) input 3x slower on two threads than on one (3.0 vs 0.92 ms), while dynamic
shares let the awake thread take what the late one has not.
"""
from cython.parallel import prange
from libc.math cimport sqrt

from dagnet._kernels.branchless cimport keep as _keep
from dagnet._kernels.types cimport real

cdef inline Py_ssize_t _chunk(Py_ssize_t P) noexcept nogil:
    """Planes per dynamic share: about 4096 values (few hand-outs, fine enough to balance)."""
    return 4096 // P if P < 4096 else 1


cdef inline real _grad(const real* dr, const real* mr, Py_ssize_t p, bint relu) noexcept nogil:
    """dout[p], or with relu 0 where the relu's output mr[p] is not positive."""
    return _keep(mr[p] > 0, dr[p]) if relu else dr[p]


cdef inline void _moments(const real* x0, Py_ssize_t step, Py_ssize_t N, Py_ssize_t P,
                          double* mean, double* var) noexcept nogil:
    """The mean and biased variance of one channel: N planes of P values, step values apart
    (sums of x - K, K its first value; channel_stats and stats_normalize, the same bits)."""
    cdef double K = x0[0], d, sa = 0, sb = 0, count = N * P
    cdef const real* row
    cdef Py_ssize_t n, p
    for n in range(N):
        row = x0 + n * step
        for p in range(P):
            d = row[p] - K
            sa = sa + d
            sb = sb + d * d
    mean[0] = K + sa / count
    var[0] = max(sb / count - (sa / count) * (sa / count), 0.0)


cdef inline void _normalize_plane(const real* xr, const real* sr, real* orow, Py_ssize_t P,
                                  real mu, real s, real g, real b, bint relu) noexcept nogil:
    """orow = g * ((xr - mu) * s) + b, + sr if sr is not NULL, max(., 0) if relu (a NaN stays
    NaN): one plane (normalize and stats_normalize, the same bits)."""
    cdef Py_ssize_t p
    cdef real y
    for p in range(P):
        y = g * ((xr[p] - mu) * s) + b
        if sr != NULL:
            y = y + sr[p]
        if relu:
            y = 0 if y < 0 else y
        orow[p] = y


def _check(name, arrays):
    """Every array is (N, C, P) like the first, with contiguous planes."""
    shape = tuple(arrays[0].shape[:3])
    for a in arrays:
        if tuple(a.shape[:3]) != shape:
            raise ValueError(f"{name}: arrays must all have shape {shape}, got {tuple(a.shape[:3])}")
        if shape[2] > 1 and a.strides[2] != a.itemsize:
            raise ValueError(f"{name}: each (n, c) plane must be contiguous")


def _check_channels(name, C, vectors):
    for v in vectors:
        if v.shape[0] != C:
            raise ValueError(f"{name}: every per-channel vector must have {C} entries, got {v.shape[0]}")


def channel_stats(const real[:, :, :] x, double[::1] mean, double[::1] var, int num_threads):
    """mean[c] and the biased variance var[c] of x[:, c, :], in one pass."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], c
    _check("channel_stats", [x])
    _check_channels("channel_stats", C, [mean, var])
    if N == 0 or P == 0:
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        _moments(&x[0, c, 0], x.strides[0] // <Py_ssize_t>sizeof(real), N, P, &mean[c], &var[c])


def normalize(const real[:, :, :] x, const real[::1] mean, const real[::1] inv_std,
              const real[::1] gamma, const real[::1] beta, real[:, :, :] out, bint relu,
              int num_threads, const real[:, :, :] skip, bint add_skip):
    """out = gamma * xhat + beta per channel, xhat = (x - mean) * inv_std, plus skip (like x)
    if add_skip (a ResNet block's residual join; skip is not read otherwise), then
    max(out, 0) if relu (a NaN stays NaN, as in np.maximum)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], m, n, c
    cdef real mu, s, g, b
    _check("normalize", [x, out] + ([skip] if add_skip else []))
    _check_channels("normalize", C, [mean, inv_std, gamma, beta])
    if N == 0 or P == 0:
        return
    for m in prange(N * C, nogil=True, schedule="dynamic", chunksize=_chunk(P),
                   num_threads=num_threads):
        n = m // C
        c = m % C
        mu = mean[c]
        s = inv_std[c]
        g = gamma[c]
        b = beta[c]
        _normalize_plane(&x[n, c, 0], &skip[n, c, 0] if add_skip else NULL, &out[n, c, 0], P,
                         mu, s, g, b, relu)


def backward(const real[:, :, :] dout, const real[:, :, :] x, const real[::1] mean,
             const real[::1] inv_std, const real[:, :, :] mask_src, const real[::1] k,
             double[::1] dbeta, double[::1] dgamma, real count, real[:, :, :] dx, bint need_dx,
             bint relu, int num_threads, real[:, :, :] g_out, bint write_g):
    """Train-mode batchnorm gradients, one channel at a time: dbeta[c] = sum of g,
    dgamma[c] = sum of g * xhat over channel c (xhat recomputed from x as normalize computes
    it), where g is dout, or with relu dout where mask_src (the relu's output) is > 0; g also
    into g_out (like dout) if write_g (not touched otherwise); then, if need_dx,
    dx = k * (count * g - dbeta - xhat * dgamma), k = gamma * inv_std / count (the closed
    form), reading g from g_out when it was written. A channel's dout, x and mask (N * P
    values each: 0.2 MiB for a (64, 16, 28, 28) input) are read for its sums and again, from
    L2, for its dx: whole-batch passes, sums then dx, went out to L3 / memory twice (which
    two processes at once share): batchnorm's backward 1.18x less CPU in resnet_small's
    step, the same numbers."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], n, c, p
    cdef double sb, sg, g
    cdef real mu, s, kc, db, dg
    cdef const real* dr
    cdef const real* xr
    cdef const real* mr
    cdef real* gr
    cdef real* out
    _check("backward", [dout, x] + ([mask_src] if relu else []) + ([g_out] if write_g else [])
           + ([dx] if need_dx else []))
    _check_channels("backward", C, [mean, inv_std, k, dbeta, dgamma])
    if N == 0 or P == 0:
        dbeta[:] = 0
        dgamma[:] = 0
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        sb = 0
        sg = 0
        mu = mean[c]
        for n in range(N):
            dr = &dout[n, c, 0]
            xr = &x[n, c, 0]
            mr = &mask_src[n, c, 0] if relu else NULL
            gr = &g_out[n, c, 0] if write_g else NULL
            for p in range(P):
                g = _grad(dr, mr, p, relu)
                if write_g:
                    gr[p] = <real>g
                sb = sb + g
                sg = sg + g * (xr[p] - mu)
        dbeta[c] = sb
        dgamma[c] = sg * inv_std[c]
        if not need_dx:
            continue
        kc = k[c]
        db = <real>sb
        dg = <real>(sg * inv_std[c])
        s = inv_std[c]
        for n in range(N):
            xr = &x[n, c, 0]
            out = &dx[n, c, 0]
            if write_g:  # g is written: read it, the mask no more
                dr = &g_out[n, c, 0]
                for p in range(P):
                    out[p] = (count * dr[p] - db - ((xr[p] - mu) * s) * dg) * kc
            else:
                dr = &dout[n, c, 0]
                mr = &mask_src[n, c, 0] if relu else NULL
                for p in range(P):
                    out[p] = (count * _grad(dr, mr, p, relu) - db - ((xr[p] - mu) * s) * dg) * kc


def stats_normalize(const real[:, :, :] x, double[::1] mean, double[::1] var, real eps,
                    real[::1] mean_r, real[::1] inv_std, const real[::1] gamma,
                    const real[::1] beta, real[:, :, :] out, bint relu, int num_threads,
                    const real[:, :, :] skip, bint add_skip):
    """channel_stats, then normalize with the batch's statistics, one channel at a time: the
    channel's x (N * P values: 0.2 MiB for a (64, 16, 28, 28) input) is read for its
    statistics and again, from L2, to normalise it, instead of the second whole-batch pass
    going out to L3 / memory. mean, var: the statistics in double (as channel_stats);
    mean_r, inv_std: mean in x's type and 1 / sqrt(var + eps) (numpy's bits: the square
    root of a double rounded to float is the float square root, and the build keeps
    -fno-finite-math-only, under which gcc uses no approximate reciprocals); the same sums
    and formula as the two kernels: bitwise their numbers (batchnorm's forward 1.10x less
    CPU in resnet_small's step)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], n, c
    cdef real mu, s, g, b, v
    _check("stats_normalize", [x, out] + ([skip] if add_skip else []))
    _check_channels("stats_normalize", C, [mean, var, mean_r, inv_std, gamma, beta])
    if N == 0 or P == 0:
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        _moments(&x[0, c, 0], x.strides[0] // <Py_ssize_t>sizeof(real), N, P, &mean[c], &var[c])
        mu = <real>mean[c]
        v = <real>var[c]
        s = <real>sqrt(<double>(v + eps))
        s = 1 / s
        mean_r[c] = mu
        inv_std[c] = s
        g = gamma[c]
        b = beta[c]
        for n in range(N):
            _normalize_plane(&x[n, c, 0], &skip[n, c, 0] if add_skip else NULL, &out[n, c, 0],
                             P, mu, s, g, b, relu)
