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
mask (the output's sign) applied inside them.
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

from dagnet._kernels.branchless cimport keep as _keep
from dagnet._kernels.types cimport real

cdef inline Py_ssize_t _chunk(Py_ssize_t P) noexcept nogil:
    """Planes per dynamic share: about 4096 values (few hand-outs, fine enough to balance)."""
    return 4096 // P if P < 4096 else 1


cdef inline real _grad(const real* dr, const real* mr, Py_ssize_t p, bint relu) noexcept nogil:
    """dout[p], or with relu 0 where the relu's output mr[p] is not positive."""
    return _keep(mr[p] > 0, dr[p]) if relu else dr[p]


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
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], n, c, p
    cdef double K, d, sa, sb, count = N * P
    cdef const real* row
    _check("channel_stats", [x])
    _check_channels("channel_stats", C, [mean, var])
    if N == 0 or P == 0:
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        K = x[0, c, 0]
        sa = 0
        sb = 0
        for n in range(N):
            row = &x[n, c, 0]
            for p in range(P):
                d = row[p] - K
                sa = sa + d
                sb = sb + d * d
        mean[c] = K + sa / count
        var[c] = max(sb / count - (sa / count) * (sa / count), 0.0)


def normalize(const real[:, :, :] x, const real[::1] mean, const real[::1] inv_std,
              const real[::1] gamma, const real[::1] beta, real[:, :, :] out, bint relu,
              int num_threads, const real[:, :, :] skip, bint add_skip):
    """out = gamma * xhat + beta per channel, xhat = (x - mean) * inv_std, plus skip (like x)
    if add_skip (a ResNet block's residual join; skip is not read otherwise), then
    max(out, 0) if relu (a NaN stays NaN, as in np.maximum)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], m, n, c, p
    cdef real mu, s, g, b, y
    cdef const real* xr
    cdef const real* sr = NULL
    cdef real* orow
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
        xr = &x[n, c, 0]
        orow = &out[n, c, 0]
        if add_skip:
            sr = &skip[n, c, 0]
        for p in range(P):
            y = g * ((xr[p] - mu) * s) + b
            if add_skip:
                y = y + sr[p]
            if relu:
                y = 0 if y < 0 else y
            orow[p] = y


def backward_sums(const real[:, :, :] dout, const real[:, :, :] x, const real[::1] mean,
                  const real[::1] inv_std, const real[:, :, :] mask_src, double[::1] dbeta,
                  double[::1] dgamma, bint relu, int num_threads, real[:, :, :] g_out,
                  bint write_g):
    """dbeta[c] = sum of g, dgamma[c] = sum of g * xhat over channel c (xhat recomputed from
    x as normalize computes it), where g is dout, or with relu dout where mask_src (the
    relu's output) is > 0; g also into g_out (like dout) if write_g (not touched otherwise)."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], n, c, p
    cdef double sb, sg, g
    cdef real mu
    cdef const real* dr
    cdef const real* xr
    cdef const real* mr
    cdef real* gr
    _check("backward_sums", [dout, x] + ([mask_src] if relu else []) + ([g_out] if write_g else []))
    _check_channels("backward_sums", C, [mean, inv_std, dbeta, dgamma])
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
        # inv_std taken out of the sum: one multiply per channel, not per value
        dgamma[c] = sg * inv_std[c]


def backward_dx(const real[:, :, :] dout, const real[:, :, :] x, const real[::1] mean,
                const real[::1] inv_std, const real[:, :, :] mask_src, const real[::1] k,
                const real[::1] dbeta, const real[::1] dgamma, real count, real[:, :, :] dx,
                bint relu, int num_threads):
    """dx = k * (count * g - dbeta - xhat * dgamma) per channel, k = gamma * inv_std / count
    (the train-mode closed form), g and xhat as in backward_sums."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], m, n, c, p
    cdef real kc, db, dg, mu, s
    cdef const real* dr
    cdef const real* xr
    cdef const real* mr
    cdef real* out
    _check("backward_dx", [dout, x, dx] + ([mask_src] if relu else []))
    _check_channels("backward_dx", C, [mean, inv_std, k, dbeta, dgamma])
    if N == 0 or P == 0:
        return
    for m in prange(N * C, nogil=True, schedule="dynamic", chunksize=_chunk(P),
                   num_threads=num_threads):
        n = m // C
        c = m % C
        kc = k[c]
        db = dbeta[c]
        dg = dgamma[c]
        mu = mean[c]
        s = inv_std[c]
        dr = &dout[n, c, 0]
        xr = &x[n, c, 0]
        mr = &mask_src[n, c, 0] if relu else NULL
        out = &dx[n, c, 0]
        for p in range(P):
            out[p] = (count * _grad(dr, mr, p, relu) - db - ((xr[p] - mu) * s) * dg) * kc
