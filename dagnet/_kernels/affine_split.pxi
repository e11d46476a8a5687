# A fully connected layer at a small batch (included by direct.pyx, whose helper threads it
# shares: helpers.h's pool is one per extension module): blocks of columns split among the
# caller and the spinning helpers (affine.h explains why).
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from "affine.h" nogil:
    int DN_AF_CB
    void dn_affine_f(const float* x, Py_ssize_t D, const float* w, Py_ssize_t M,
                     const float* b, Py_ssize_t j0, Py_ssize_t j1, int relu, float* y)
    void dn_affine_d(const double* x, Py_ssize_t D, const double* w, Py_ssize_t M,
                     const double* b, Py_ssize_t j0, Py_ssize_t j1, int relu, double* y)

cdef struct _Affine:
    const char* x
    const char* w
    const char* b
    char* y
    Py_ssize_t N, D, M
    bint relu, is_double


cdef void _affine_task(void* ctx, Py_ssize_t item, int tid) noexcept nogil:
    """Item `item` of c: columns [item * DN_AF_CB, + DN_AF_CB) of every sample."""
    cdef _Affine* c = <_Affine*>ctx
    cdef Py_ssize_t n, j0 = item * DN_AF_CB, j1 = j0 + DN_AF_CB
    if j1 > c.M:
        j1 = c.M
    for n in range(c.N):
        if c.is_double:
            dn_affine_d(<const double*>c.x + n * c.D, c.D, <const double*>c.w, c.M,
                        <const double*>c.b, j0, j1, c.relu, <double*>c.y + n * c.M)
        else:
            dn_affine_f(<const float*>c.x + n * c.D, c.D, <const float*>c.w, c.M,
                        <const float*>c.b, j0, j1, c.relu, <float*>c.y + n * c.M)


cdef inline bint _c_floats(object a, int ndim, int num):
    return (cnp.PyArray_Check(a) and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim and
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and
            cnp.PyArray_TYPE(<cnp.ndarray>a) == num)


def affine_small(x, w, b, y, bint relu, int num_threads):
    """y (N, M) = x (N, D) @ w (D, M) + b (M,), max(., 0) if relu: C-contiguous float32 or
    float64 arrays of one dtype, y writable. Blocks of DN_AF_CB columns are run by this
    thread and up to num_threads - 1 helpers; the same numbers for any num_threads. The
    checks read numpy's C API (typed memoryviews took ~0.5 us each)."""
    cdef int num = cnp.PyArray_TYPE(<cnp.ndarray>x) if cnp.PyArray_Check(x) else -1
    cdef _Affine c
    if num not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64) or not (
            _c_floats(x, 2, num) and _c_floats(w, 2, num) and _c_floats(b, 1, num)
            and _c_floats(y, 2, num) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>y)):
        raise ValueError("affine_small: x, w, b, y must be C-contiguous arrays of one float "
                         "dtype, y writable")
    c.N, c.D = cnp.PyArray_DIM(<cnp.ndarray>x, 0), cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    c.M = cnp.PyArray_DIM(<cnp.ndarray>w, 1)
    if (cnp.PyArray_DIM(<cnp.ndarray>w, 0) != c.D or cnp.PyArray_DIM(<cnp.ndarray>b, 0) != c.M
            or cnp.PyArray_DIM(<cnp.ndarray>y, 0) != c.N or cnp.PyArray_DIM(<cnp.ndarray>y, 1) != c.M):
        raise ValueError(f"affine_small: shapes x {x.shape}, w {w.shape}, b {b.shape}, "
                         f"y {y.shape} do not agree")
    if num_threads < 1:
        raise ValueError("affine_small: num_threads must be at least 1")
    c.x = <const char*>cnp.PyArray_DATA(<cnp.ndarray>x)
    c.w = <const char*>cnp.PyArray_DATA(<cnp.ndarray>w)
    c.b = <const char*>cnp.PyArray_DATA(<cnp.ndarray>b)
    c.y = <char*>cnp.PyArray_DATA(<cnp.ndarray>y)
    c.relu, c.is_double = relu, num == cnp.NPY_FLOAT64
    with nogil:
        dn_par_for(_affine_task, &c, (c.M + DN_AF_CB - 1) // DN_AF_CB, num_threads)
