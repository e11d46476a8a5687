# The batch-1 forward's split (included by direct.pyx): one sample's filter tiles shared by
# the caller and the spinning helper threads of helpers.h (see there for why not OpenMP).

cdef extern from "helpers.h" nogil:
    ctypedef void (*dn_task)(void* ctx, Py_ssize_t item, int tid) noexcept nogil
    void dn_par_for(dn_task fn, void* ctx, Py_ssize_t n, int threads)
    long long dn_count[4]

cdef struct _Split:
    # one batch-1 forward split into items (sample, tile of DC_FR filters): its arrays'
    # first elements (float or double, as is_double says) and their strides per sample
    const void* planes
    const int32_t* off
    const void* wp
    const void* bias
    void* grid
    void* out
    const void* res
    Py_ssize_t planes_n, grid_t, out_n, res_n
    Py_ssize_t M, K, Qr, Wq, Ho, Wo, Hp, Wp, tiles
    int isa
    bint relu
    int kh, kw, sh, sw
    bint plain, is_double


cdef void _split_task(void* ctx, Py_ssize_t item, int tid) noexcept nogil:
    cdef _Split* c = <_Split*>ctx
    if c.is_double:
        _split_one(c, <double*>NULL, item, tid)
    else:
        _split_one(c, <float*>NULL, item, tid)


cdef inline void _split_one(_Split* c, real* kind, Py_ssize_t item, int tid) noexcept nogil:
    """Item `item` of c: one sample's outputs of one tile of filters, in thread tid's grid."""
    cdef Py_ssize_t n = item // c.tiles, m0 = (item % c.tiles) * DC_FR, m1 = m0 + DC_FR
    cdef real* g = <real*>c.grid + tid * c.grid_t
    cdef real* out = <real*>c.out + n * c.out_n
    if m1 > c.M:
        m1 = c.M
    _gemm(c.isa, m1 - m0, c.K, c.Qr, c.off, <const real*>c.wp + m0 * c.K,
          <const real*>c.bias + m0, <const real*>c.planes + n * c.planes_n, g + m0 * c.Qr, c.Qr)
    if c.plain:
        _copy_out(g, c.Qr, c.Wq, m0, m1, c.Ho, c.Wo, out)
    else:
        _epilogue(c.isa, g, c.Qr, c.Wq, m0, m1, c.Ho, c.Wo,
                  <const real*>c.res + n * c.res_n if c.res != NULL else NULL, c.relu,
                  c.kh, c.kw, c.sh, c.sw, c.Hp, c.Wp, out)


def helper_counts():
    """{name: count since load} of the batch-1 split's loops (helpers.h): run with the helpers,
    run alone (after a long wait for a preempted helper, or a second caller), long waits, and
    items the helpers ran."""
    return {"with_helpers": dn_count[0], "alone": dn_count[1], "long_waits": dn_count[2],
            "helper_items": dn_count[3]}
