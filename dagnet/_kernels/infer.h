/* The inference head's sums (infer.pyx gap_concat): a global average pool's float64 sum of
   a channel's H*W values in 4 vectors of 8 lanes: vector v of each block of 32 values takes
   values 8v .. 8v + 7, the tail's whole 8-value groups go to vectors 0, 1, 2 in order; the
   vectors are added pairwise ((0 + 2) + (1 + 3)), its last values lane by lane, then the 8
   lanes pairwise. The order is fixed by H*W alone. One value is its own sum (a copied -0.0
   keeps its sign: -ffast-math drops the signed zeros' rules, so no sum starts from -0.0).
   One value after another into one sum waited out an add's latency per value (8x fewer
   values a cycle); the lanes run as 4 vectors of 8 doubles (one AVX-512 register each,
   two AVX2 or four SSE2 ones: the same sums in every clone). */
#ifndef DAGNET_INFER_H
#define DAGNET_INFER_H
#include <stddef.h>
#include <string.h>

#include "isa.h"

typedef double gap_d8 __attribute__((vector_size(64)));
typedef double gap_d8_u __attribute__((vector_size(64), aligned(8)));
typedef float gap_f8_u __attribute__((vector_size(32), aligned(4)));

#define GAP_SUM(NAME, T, LOAD)                                                              \
DN_CLONES static double NAME(const T* x, ptrdiff_t n) {                                     \
    gap_d8 acc[4];                                                                          \
    double lane[8];                                                                         \
    if (n == 1)                                                                             \
        return (double)x[0];                                                                \
    for (int v = 0; v < 4; v++)                                                             \
        acc[v] = (gap_d8){0};                                                               \
    ptrdiff_t i = 0;                                                                        \
    for (; i + 32 <= n; i += 32)                                                            \
        for (int v = 0; v < 4; v++)                                                         \
            acc[v] += LOAD(x + i + 8 * v);                                                  \
    for (int v = 0; i + 8 <= n; i += 8, v++) /* the tail's whole vectors: v < 3 */          \
        acc[v] += LOAD(x + i);                                                              \
    acc[0] = (acc[0] + acc[2]) + (acc[1] + acc[3]);                                         \
    memcpy(lane, acc, sizeof lane);                                                         \
    for (ptrdiff_t j = 0; i + j < n; j++) /* its last values: value i + j into lane j */   \
        lane[j] = lane[j] + (double)x[i + j];                                               \
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) +                                    \
           ((lane[1] + lane[5]) + (lane[3] + lane[7]));                                     \
}
#define GAP_LOAD_F(p) __builtin_convertvector(*(const gap_f8_u*)(p), gap_d8)
#define GAP_LOAD_D(p) (*(const gap_d8_u*)(p))
GAP_SUM(gap_sum_f, float, GAP_LOAD_F)
GAP_SUM(gap_sum_d, double, GAP_LOAD_D)
#endif
