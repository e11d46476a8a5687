# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Spatial batchnorm over x (N, C, P) (P = H*W), optionally with the relu after it.

Each (n, c) plane of P values must be contiguous; the planes may lie anywhere, so x can be
the (N, C, P) view of a conv's GEMM output stored as (C, N, P), and dx can be written straight
into that layout for the conv's backward (no transposes).
numpy's per-channel reductions over axes (0, 2, 3) walk NCHW with strides and its elementwise
passes each sweep the whole tensor; here the statistics take two passes per channel (sums in
double, so float32 loses nothing), normalise + scale + shift (+ relu) one pass, and backward
one pass for the two sums and one for dx, the relu mask applied inside them.
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


def _check(name, arrays):
    """Every array is (N, C, P) like the first, with contiguous planes."""
    shape = tuple(arrays[0].shape[:3])
    for a in arrays:
        if tuple(a.shape[:3]) != shape:
            raise ValueError(f"{name}: arrays must all have shape {shape}, got {tuple(a.shape[:3])}")
        if shape[2] > 1 and a.strides[2] != a.itemsize:
            raise ValueError(f"{name}: each (n, c) plane must be contiguous")


def channel_stats(const real[:, :, :] x, double[::1] mean, double[::1] var, int num_threads):
    """mean[c] and the biased variance var[c] of x[:, c, :]."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], n, c, p
    cdef double s, d, mu, count = N * P
    cdef const real* row
    _check("channel_stats", [x])
    if mean.shape[0] != C or var.shape[0] != C:
        raise ValueError("channel_stats: mean and var must have one entry per channel")
    if N == 0 or P == 0:
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        s = 0
        for n in range(N):
            row = &x[n, c, 0]
            for p in range(P):
                s = s + row[p]
        mu = s / count
        s = 0
        for n in range(N):
            row = &x[n, c, 0]
            for p in range(P):
                d = row[p] - mu
                s = s + d * d
        mean[c] = mu
        var[c] = s / count


def normalize(const real[:, :, :] x, const real[::1] mean, const real[::1] inv_std,
              const real[::1] gamma, const real[::1] beta, real[:, :, :] xhat,
              real[:, :, :] out, bint relu, int num_threads, const real[:, :, :] skip,
              bint add_skip):
    """xhat = (x - mean) * inv_std and out = gamma * xhat + beta per channel, plus skip (like
    x) if add_skip (a ResNet block's residual join; skip is not read otherwise), then
    max(out, 0) if relu (a NaN stays NaN, as in np.maximum)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], m, n, c, p
    cdef real mu, s, g, b, h, y
    cdef const real* xr
    cdef const real* sr = NULL
    cdef real* hr
    cdef real* orow
    _check("normalize", [x, xhat, out] + ([skip] if add_skip else []))
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
        hr = &xhat[n, c, 0]
        orow = &out[n, c, 0]
        if add_skip:
            sr = &skip[n, c, 0]
        for p in range(P):
            h = (xr[p] - mu) * s
            hr[p] = h
            y = g * h + b
            if add_skip:
                y = y + sr[p]
            if relu:
                y = 0 if y < 0 else y
            orow[p] = y


def backward_sums(const real[:, :, :] dout, const real[:, :, :] xhat,
                  const real[:, :, :] mask_src, double[::1] dbeta, double[::1] dgamma,
                  bint relu, int num_threads, real[:, :, :] g_out, bint write_g):
    """dbeta[c] = sum of g, dgamma[c] = sum of g * xhat over channel c, where g is dout, or
    with relu dout where mask_src (the relu's output) is > 0; g also into g_out (like dout)
    if write_g (g_out is not touched otherwise)."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], n, c, p
    cdef double sb, sg, g
    cdef const real* dr
    cdef const real* hr
    cdef const real* mr
    cdef real* gr = NULL
    _check("backward_sums", [dout, xhat, mask_src] + ([g_out] if write_g else []))
    if N == 0 or P == 0:
        dbeta[:] = 0
        dgamma[:] = 0
        return
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=num_threads):
        sb = 0
        sg = 0
        for n in range(N):
            dr = &dout[n, c, 0]
            hr = &xhat[n, c, 0]
            mr = &mask_src[n, c, 0]
            if write_g:
                gr = &g_out[n, c, 0]
            for p in range(P):
                g = _keep(mr[p] > 0, dr[p]) if relu else dr[p]
                if write_g:
                    gr[p] = <real>g
                sb = sb + g
                sg = sg + g * hr[p]
        dbeta[c] = sb
        dgamma[c] = sg


def backward_dx(const real[:, :, :] dout, const real[:, :, :] xhat,
                const real[:, :, :] mask_src, const real[::1] k, const real[::1] dbeta,
                const real[::1] dgamma, real count, real[:, :, :] dx, bint relu,
                int num_threads):
    """dx = k * (count * g - dbeta - xhat * dgamma) per channel, k = gamma * inv_std / count
    (the train-mode closed form), g as in backward_sums."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], m, n, c, p
    cdef real kc, db, dg, g
    cdef const real* dr
    cdef const real* hr
    cdef const real* mr
    cdef real* xr
    _check("backward_dx", [dout, xhat, mask_src, dx])
    if N == 0 or P == 0:
        return
    for m in prange(N * C, nogil=True, schedule="dynamic", chunksize=_chunk(P),
                   num_threads=num_threads):
        n = m // C
        c = m % C
        kc = k[c]
        db = dbeta[c]
        dg = dgamma[c]
        dr = &dout[n, c, 0]
        hr = &xhat[n, c, 0]
        mr = &mask_src[n, c, 0]
        xr = &dx[n, c, 0]
        for p in range(P):
            g = _keep(mr[p] > 0, dr[p]) if relu else dr[p]
            xr[p] = (count * g - db - hr[p] * dg) * kc
