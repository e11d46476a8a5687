# cython: boundscheck=False, wraparound=False
"""Helpers of the inference program (dagnet/runtime/program.py).

same_bytes: whether arrays still hold the bytes of their snapshots, one memcmp each, so that
a program whose weights were folded from params and batchnorm statistics can check on every
call, for a few microseconds, that no one has changed those since (in place or by
replacing them in the dict); same_sources looks those arrays up first.
gap_concat: a ResNet's head (global average pools, then their concat) in one pass.
"""
cimport numpy as cnp
from libc.string cimport memcmp

cdef extern from "infer.h" nogil:
    double gap_sum_f(const float* x, Py_ssize_t n)
    double gap_sum_d(const double* x, Py_ssize_t n)

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


def same_sources(dict params, dict state, list keys, list then):
    """Whether the arrays keys name still hold the bytes of then (their snapshots): keys[i]
    is (param name, None) or (state key, statistic). The look-ups in C: as a Python list of
    the arrays, they took longer than the comparison. False where a look-up fails (the
    caller's fold then raises what it raises)."""
    cdef Py_ssize_t i, n = len(keys)
    cdef object key, field, a, st
    cdef list now = []
    if len(then) != n:
        return False
    for i in range(n):
        key, field = <tuple>keys[i]
        if field is None:
            a = params.get(key)
        else:
            st = state.get(key)
            a = None if st is None or not isinstance(st, dict) else (<dict>st).get(field)
        if a is None:
            return False
        now.append(a)
    return same_bytes(now, then)


def gap_concat(list srcs, tuple pooled, cnp.ndarray out):
    """out (N, K) = the parts side by side: srcs[i] (N, C, H, W) averaged over H, W where
    pooled[i], else srcs[i] (N, C) as it is (global_avg_pool, then concat along axis 1).
    C-contiguous arrays of out's dtype (float32 or float64); each mean is a float64 sum of
    the H*W values over H*W, rounded once; the sum in infer.h's 32 lanes (its order fixed
    by H*W alone; np.mean sums pairwise in the dtype: the two differ by rounding)."""
    cdef Py_ssize_t N, K, col = 0, C, L, n, c, i
    cdef bint dbl
    cdef double s
    cdef char* src
    cdef char* dst
    cdef object a
    if out.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(out) or \
            out.dtype.num not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise ValueError("gap_concat: out must be a C-contiguous (N, K) float32 or float64 array")
    if len(srcs) != len(pooled):
        raise ValueError("gap_concat: one pooled flag per source")
    N, K, dbl = out.shape[0], out.shape[1], out.dtype.num == cnp.NPY_FLOAT64
    dst = <char*>cnp.PyArray_DATA(out)
    for i in range(len(srcs)):
        a = srcs[i]
        if not (cnp.PyArray_Check(a) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)) or \
                (<cnp.ndarray>a).dtype.num != out.dtype.num or \
                (<cnp.ndarray>a).ndim != (4 if pooled[i] else 2) or (<cnp.ndarray>a).shape[0] != N:
            raise ValueError(f"gap_concat: source {i} is not a C-contiguous "
                             f"({'N, C, H, W' if pooled[i] else 'N, C'}) array of out's dtype")
        C = (<cnp.ndarray>a).shape[1]
        L = (<cnp.ndarray>a).shape[2] * (<cnp.ndarray>a).shape[3] if pooled[i] else 1
        if col + C > K or L < 1:
            raise ValueError("gap_concat: the parts do not fill out's columns")
        src = <char*>cnp.PyArray_DATA(<cnp.ndarray>a)
        with nogil:
            for n in range(N):
                for c in range(C):
                    # infer.h's lanes (a copied -0.0 keeps its sign)
                    if dbl:
                        s = gap_sum_d(<double*>src + (n * C + c) * L, L)
                        (<double*>dst)[n * K + col + c] = s / L
                    else:
                        s = gap_sum_f(<float*>src + (n * C + c) * L, L)
                        (<float*>dst)[n * K + col + c] = <float>(s / L)
        col += C
    if col != K:
        raise ValueError("gap_concat: the parts do not fill out's columns")
