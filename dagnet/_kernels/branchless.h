/* Branch-free selects shared by the Cython kernels. A ternary on data (v if cond else 0)
   compiled to a jump in short scalar loops, and on random data the CPU mispredicts about every
   other one; a bit mask costs the same every time. */
#ifndef DAGNET_BRANCHLESS_H
#define DAGNET_BRANCHLESS_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

/* v where keep is 1 and +0.0 where it is 0 (an Inf or NaN v becomes 0 too, as a select would) */
static inline float dn_keep_f(int keep, float v) {
    uint32_t u; memcpy(&u, &v, 4); u &= (uint32_t)0 - (uint32_t)keep; memcpy(&v, &u, 4);
    return v;
}
static inline double dn_keep_d(int keep, double v) {
    uint64_t u; memcpy(&u, &v, 8); u &= (uint64_t)0 - (uint64_t)keep; memcpy(&v, &u, 8);
    return v;
}

/* relu's input gradient over n values, torch's threshold_backward: o = d where y > 0, else +0.0
   (y NaN or <= 0; a NaN or Inf d there gives 0 too). The condition becomes a whole-word mask
   ANDed into d's bits, so -ffast-math cannot make it a product (d * 0 is -0.0 for a negative d,
   NaN for an infinite one) and GCC vectorises it as a compare and an AND: one pass, no branch.
   o may be d (in place). */
static inline void dn_relu_grad_f(const float* d, const float* y, float* o, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t u; memcpy(&u, d + i, 4);
        u &= (uint32_t)0 - (uint32_t)(y[i] > 0.0f);
        memcpy(o + i, &u, 4);
    }
}
static inline void dn_relu_grad_d(const double* d, const double* y, double* o, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) {
        uint64_t u; memcpy(&u, d + i, 8);
        u &= (uint64_t)0 - (uint64_t)(y[i] > 0.0);
        memcpy(o + i, &u, 8);
    }
}
#endif
