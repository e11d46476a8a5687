# cython: boundscheck=False, wraparound=False
"""Helpers of the inference program (dagnet/runtime/program.py).

same_bytes: whether arrays still hold the bytes of their snapshots, one memcmp each, so that
a program whose weights were folded from params and batchnorm statistics can check on every
call, for a few microseconds, that no one has changed those since (in place or by
replacing them in the dict).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.string cimport memcmp


def same_bytes(list now, list then):
    """Whether now[i] and then[i] hold the same bytes for every i (lists of C-contiguous
    arrays); False for a length mismatch or an array that is not contiguous."""
    cdef Py_buffer a, b
    cdef Py_ssize_t i
    cdef bint same
    if len(now) != len(then):
        return False
    for i in range(len(now)):
        try:
            PyObject_GetBuffer(now[i], &a, PyBUF_SIMPLE)
        except (BufferError, TypeError, ValueError):
            return False
        try:
            PyObject_GetBuffer(then[i], &b, PyBUF_SIMPLE)
            same = a.len == b.len and memcmp(a.buf, b.buf, a.len) == 0
            PyBuffer_Release(&b)
        finally:
            PyBuffer_Release(&a)
        if not same:
            return False
    return True
