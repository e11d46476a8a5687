# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Element-wise special functions numpy lacks: erf, from the C library (erff for float32, erf
for float64: within a few ulp of the exact value). x and out are flat contiguous arrays of one
dtype; long arrays are split over OpenMP threads (each element is independent: bitwise the same
for any thread count)."""
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
