# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Spatial batchnorm over x (N, C, P) (P = H*W, C-contiguous), optionally with the relu after it.

numpy's per-channel reductions over axes (0, 2, 3) walk NCHW with strides and its elementwise
passes each sweep the whole tensor; here the statistics take two passes per channel (sums in
double, so float32 loses nothing), normalise + scale + shift (+ relu) one pass, and backward
one pass for the two sums and one for dx, the relu mask applied inside them.
Channels (statistics, sums) or planes (elementwise passes) are split over OpenMP threads, each
reduced entirely by one thread in a fixed order: bitwise the same for any thread count.
"""
from cython.parallel import prange

from dagnet._kernels.branchless cimport dn_keep_d, dn_keep_f

ctypedef fused real:
    float
    double


cdef inline real _keep(bint keep, real v) noexcept nogil:
    """v if keep else 0, branch-free (the relu mask is random data)."""
    if real is float:
        return dn_keep_f(keep, v)
    else:
        return dn_keep_d(keep, v)


def channel_stats(const real[:, :, ::1] x, double[::1] mean, double[::1] var, int num_threads):
    """mean[c] and the biased variance var[c] of x[:, c, :]."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], n, c, p
    cdef double s, d, count = N * P
    cdef const real* row
    if mean.shape[0] != C or var.shape[0] != C:
        raise ValueError("channel_stats: mean and var must have one entry per channel")
    for c in prange(C, nogil=True, schedule="static", num_threads=num_threads):
        s = 0
        for n in range(N):
            row = &x[n, c, 0]
            for p in range(P):
                s = s + row[p]
        mean[c] = s / count
        s = 0
        for n in range(N):
            row = &x[n, c, 0]
            for p in range(P):
                d = row[p] - mean[c]
                s = s + d * d
        var[c] = s / count


def normalize(const real[:, :, ::1] x, const real[::1] mean, const real[::1] inv_std,
              const real[::1] gamma, const real[::1] beta, real[:, :, ::1] xhat,
              real[:, :, ::1] out, bint relu, int num_threads):
    """xhat = (x - mean) * inv_std and out = gamma * xhat + beta per channel, then
    max(out, 0) if relu (a NaN stays NaN, as in np.maximum)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2], m, n, c, p
    cdef real mu, s, g, b, h, y
    for m in prange(N * C, nogil=True, schedule="static", num_threads=num_threads):
        n = m // C
        c = m % C
        mu = mean[c]
        s = inv_std[c]
        g = gamma[c]
        b = beta[c]
        for p in range(P):
            h = (x[n, c, p] - mu) * s
            xhat[n, c, p] = h
            y = g * h + b
            if relu:
                y = 0 if y < 0 else y
            out[n, c, p] = y


def backward_sums(const real[:, :, ::1] dout, const real[:, :, ::1] xhat,
                  const real[:, :, ::1] mask_src, double[::1] dbeta, double[::1] dgamma,
                  bint relu, int num_threads):
    """dbeta[c] = sum of g, dgamma[c] = sum of g * xhat over channel c, where g is dout, or
    with relu dout where mask_src (the relu's output) is > 0."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], n, c, p
    cdef double sb, sg, g
    for c in prange(C, nogil=True, schedule="static", num_threads=num_threads):
        sb = 0
        sg = 0
        for n in range(N):
            for p in range(P):
                g = _keep(mask_src[n, c, p] > 0, dout[n, c, p]) if relu else dout[n, c, p]
                sb = sb + g
                sg = sg + g * xhat[n, c, p]
        dbeta[c] = sb
        dgamma[c] = sg


def backward_dx(const real[:, :, ::1] dout, const real[:, :, ::1] xhat,
                const real[:, :, ::1] mask_src, const real[::1] k, const real[::1] dbeta,
                const real[::1] dgamma, real count, real[:, :, ::1] dx, bint relu,
                int num_threads):
    """dx = k * (count * g - dbeta - xhat * dgamma) per channel, k = gamma * inv_std / count
    (the train-mode closed form), g as in backward_sums."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1], P = dout.shape[2], m, n, c, p
    cdef real kc, db, dg, g
    for m in prange(N * C, nogil=True, schedule="static", num_threads=num_threads):
        n = m // C
        c = m % C
        kc = k[c]
        db = dbeta[c]
        dg = dgamma[c]
        for p in range(P):
            g = _keep(mask_src[n, c, p] > 0, dout[n, c, p]) if relu else dout[n, c, p]
            dx[n, c, p] = (count * g - db - xhat[n, c, p] * dg) * kc
