# cython: boundscheck=False, wraparound=False
"""Helpers of the inference program (dagnet/runtime/program.py).

same_bytes: whether arrays still hold the bytes of their snapshots, one memcmp each, so that
a program whose weights were folded from params and batchnorm statistics can check on every
call, for a few microseconds, that no one has changed those since (in place or by
replacing them in the dict).
"""
cimport numpy as cnp
from libc.string cimport memcmp

cnp.import_array()


def same_bytes(list now, list then):
    """Whether now[i] and then[i] hold the same bytes for every i (lists of C-contiguous
    arrays); False for a length mismatch or an entry that is not a C-contiguous ndarray.
    Reads each array's data pointer and size through numpy's C API (the buffer protocol took
    ~0.2 us per array, more than the comparison of a batchnorm's few values)."""
    cdef Py_ssize_t i
    cdef object a, b
    if len(now) != len(then):
        return False
    for i in range(len(now)):
        a = now[i]
        b = then[i]
        if not (cnp.PyArray_Check(a) and cnp.PyArray_Check(b)):
            return False
        if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and
                cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>b)):
            return False
        if cnp.PyArray_NBYTES(<cnp.ndarray>a) != cnp.PyArray_NBYTES(<cnp.ndarray>b):
            return False
        if memcmp(cnp.PyArray_DATA(<cnp.ndarray>a), cnp.PyArray_DATA(<cnp.ndarray>b),
                  cnp.PyArray_NBYTES(<cnp.ndarray>a)) != 0:
            return False
    return True
