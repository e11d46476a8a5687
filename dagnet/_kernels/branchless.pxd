# Branch-free selects (branchless.h), for the kernels' cimport.
cdef extern from "branchless.h":
    float dn_keep_f(int keep, float v) nogil
    double dn_keep_d(int keep, double v) nogil

from dagnet._kernels.types cimport real


cdef inline real keep(bint cond, real v) noexcept nogil:
    """v if cond else 0 by a bit mask, not a jump (the condition is data: a relu mask, an
    argmax match)."""
    if real is float:
        return dn_keep_f(cond, v)
    else:
        return dn_keep_d(cond, v)
