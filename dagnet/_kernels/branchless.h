/* Branch-free selects shared by the Cython kernels. A ternary on data (v if cond else 0)
   compiled to a jump in short scalar loops, and on random data the CPU mispredicts about every
   other one; a bit mask costs the same every time. */
#ifndef DAGNET_BRANCHLESS_H
#define DAGNET_BRANCHLESS_H
#include <stdint.h>
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
#endif
