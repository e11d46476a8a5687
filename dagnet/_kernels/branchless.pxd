# Branch-free selects (branchless.h), for the kernels' cimport.
cdef extern from "branchless.h":
    float dn_keep_f(int keep, float v) nogil
    double dn_keep_d(int keep, double v) nogil
