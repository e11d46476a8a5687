# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Element-wise kernels: erf, which numpy lacks, from the C library (erff for float32, erf for
float64: within a few ulp of the exact value; x and out flat contiguous arrays of one dtype,
long arrays split over OpenMP threads, each element independent: bitwise the same for any
thread count); and, in one pass each, what numpy does in several: relu's input gradient
(dagnet/relu_grad.py) and SGD with momentum's update (dagnet/train/optim.py)."""
from cython.parallel import prange
from libc.math cimport erf as erf64, erff as erf32

from dagnet._kernels.types cimport real


def erf(const real[::1] x, real[::1] out, int num_threads):
    """out[i] = erf(x[i])."""
    cdef Py_ssize_t i, n = x.shape[0]
    if out.shape[0] != n:
        raise ValueError(f"erf: out has {out.shape[0]} values, x has {n}")
    if real is float:
        for i in prange(n, nogil=True, schedule="static", num_threads=num_threads):
            out[i] = erf32(x[i])
    else:
        for i in prange(n, nogil=True, schedule="static", num_threads=num_threads):
            out[i] = erf64(x[i])


cdef extern from "branchless.h":
    void dn_relu_grad_f(const float* d, const float* y, float* o, Py_ssize_t n) nogil
    void dn_relu_grad_d(const double* d, const double* y, double* o, Py_ssize_t n) nogil


def relu_grad(const real[:, :, :] dout, const real[:, :, :] y, real[:, :, :] out):
    """out = dout where y > 0, else +0.0 (relu's input gradient from its output y), one pass.
    All three (A, B, P) with contiguous rows of P, any strides over A and B (a conv's
    GEMM-layout gradient); out may be dout. One thread: the pass is bound by memory, and a
    second thread was measured no faster."""
    cdef Py_ssize_t a, b, A = dout.shape[0], B = dout.shape[1], P = dout.shape[2]
    if (dout.strides[2] != sizeof(real) or y.strides[2] != sizeof(real)
            or out.strides[2] != sizeof(real)) and P > 1:
        raise ValueError("relu_grad: the rows of P values must be contiguous")
    if (y.shape[0] != A or y.shape[1] != B or y.shape[2] != P or out.shape[0] != A
            or out.shape[1] != B or out.shape[2] != P):
        raise ValueError(f"relu_grad: shapes differ: dout {(A, B, P)}, y "
                         f"{(y.shape[0], y.shape[1], y.shape[2])}, out "
                         f"{(out.shape[0], out.shape[1], out.shape[2])}")
    if P == 0:
        return
    with nogil:
        for a in range(A):
            for b in range(B):
                if real is float:
                    dn_relu_grad_f(&dout[a, b, 0], &y[a, b, 0], &out[a, b, 0], P)
                else:
                    dn_relu_grad_d(&dout[a, b, 0], &y[a, b, 0], &out[a, b, 0], P)


def momentum_step(real[::1] w, const real[::1] dw, real[::1] v, double momentum,
                  double learning_rate):
    """SGD with momentum in one pass: v = momentum * v - learning_rate * dw; w += v, each
    product, difference and sum rounded to w's type as numpy's four passes round them (the
    hyperparameters rounded to it first, as numpy casts a Python float to the array's type;
    no FMA contraction: the baseline x86-64 build has none), so the bits are numpy's. One
    thread (each value is independent)."""
    cdef Py_ssize_t i, n = w.shape[0]
    cdef real mu = <real>momentum, lr = <real>learning_rate, nv
    if dw.shape[0] != n or v.shape[0] != n:
        raise ValueError(f"momentum_step: w has {n} values, dw {dw.shape[0]}, v {v.shape[0]}")
    with nogil:
        for i in range(n):
            nv = v[i] * mu - lr * dw[i]
            v[i] = nv
            w[i] = w[i] + nv
