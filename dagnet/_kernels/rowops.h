/* Loops over contiguous rows for the fused conv + relu + max-pool (dagnet/_kernels/convpool.pyx).

   dn_rows_sum: y += sum_c coef[c] * base[idx[c] * stride :][: n], a weighted sum of chosen
   rows, the backward's inner loop. It is one sparse row of a matrix product, so it is blocked
   as a GEMM is: each block of y stays in registers while every chosen row adds to it, one load
   and one multiply-add per value instead of an axpy's two loads, multiply-add and store per
   row (1.8x slower, measured on LeNet's conv2).
   dn_pool_rows: the max-pool of one sample stored channels-last.

   The extension is built for baseline x86_64 (SSE2), where a vector holds 4 floats. On Linux
   with GCC, target_clones also compiles AVX2 and AVX-512 versions of each function and picks
   one when the module loads, by the features the CPU reports (feature names: "arch=" clones
   match CPU models, and an AMD EPYC with AVX-512 fell through to SSE2). The results agree up
   to rounding: where the CPU has FMA, multiply-adds are fused. */
#ifndef DAGNET_ROWOPS_H
#define DAGNET_ROWOPS_H
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DN_CLONES
#endif

/* GCC vector types: one v16 is one AVX-512 register, two AVX2 or four SSE2 ones, as the clone
   compiles it. The _u types may sit at any float/double boundary (unaligned loads). Written
   with them because, as plain loops over an array, GCC unrolled the loop over rows and jammed
   it into a scalar loop over the block. */
typedef float dn_v16f __attribute__((vector_size(64)));
typedef float dn_v16f_u __attribute__((vector_size(64), aligned(4)));
typedef double dn_v8d __attribute__((vector_size(64)));
typedef double dn_v8d_u __attribute__((vector_size(64), aligned(8)));

/* y[:n] += sum_c coef[c] * base[idx[c] * stride:][:n]: blocks of 4 vectors, then single vectors,
   then the last values one by one */
#define DN_ROWS_SUM(NAME, T, V, VU, L)                                                       \
DN_CLONES static void NAME(ptrdiff_t n, ptrdiff_t count, const T* __restrict coef,          \
                           const T* __restrict base, ptrdiff_t stride,                      \
                           const int32_t* __restrict idx, T* __restrict y) {                \
    ptrdiff_t i = 0, c;                                                                      \
    for (; i + 4 * L <= n; i += 4 * L) {                                                     \
        V a0 = *(const VU*)(y + i), a1 = *(const VU*)(y + i + L);                            \
        V a2 = *(const VU*)(y + i + 2 * L), a3 = *(const VU*)(y + i + 3 * L);                \
        for (c = 0; c < count; c++) {                                                        \
            const T* r = base + (ptrdiff_t)idx[c] * stride + i;                              \
            const T k = coef[c];                                                             \
            a0 += k * *(const VU*)r;                                                         \
            a1 += k * *(const VU*)(r + L);                                                   \
            a2 += k * *(const VU*)(r + 2 * L);                                               \
            a3 += k * *(const VU*)(r + 3 * L);                                               \
        }                                                                                    \
        *(VU*)(y + i) = a0; *(VU*)(y + i + L) = a1;                                          \
        *(VU*)(y + i + 2 * L) = a2; *(VU*)(y + i + 3 * L) = a3;                              \
    }                                                                                        \
    for (; i + L <= n; i += L) {                                                             \
        V a0 = *(const VU*)(y + i);                                                          \
        for (c = 0; c < count; c++)                                                          \
            a0 += coef[c] * *(const VU*)(base + (ptrdiff_t)idx[c] * stride + i);             \
        *(VU*)(y + i) = a0;                                                                  \
    }                                                                                        \
    for (; i < n; i++) {                                                                     \
        T a0 = y[i];                                                                         \
        for (c = 0; c < count; c++)                                                          \
            a0 += coef[c] * base[(ptrdiff_t)idx[c] * stride + i];                            \
        y[i] = a0;                                                                           \
    }                                                                                        \
}

DN_ROWS_SUM(dn_rows_sum_f, float, dn_v16f, dn_v16f_u, 16)
DN_ROWS_SUM(dn_rows_sum_d, double, dn_v8d, dn_v8d_u, 8)

/* Max-pool of one sample's conv output stored channels-last, y (ho*wo, F), into m and k
   (po*qo, F), also channels-last: each window's maxima and the index i*kw + j of the cell each
   came from. Ties keep the first max in row-major window order; a NaN propagates and the last
   one wins (strictly greater, or NaN). Every window reads whole contiguous rows of F channels
   and updates them with selects, not jumps, over restrict pointers: vectorised over channels.
   The caller keeps pad <= size / 2, so every window holds at least one cell of y. */
#define DN_POOL_ROWS(NAME, T)                                                                \
DN_CLONES static void NAME(const T* __restrict y, ptrdiff_t ho, ptrdiff_t wo, ptrdiff_t F,  \
                           ptrdiff_t po, ptrdiff_t qo, ptrdiff_t kh, ptrdiff_t kw,          \
                           ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw,          \
                           T* __restrict m, int32_t* __restrict k) {                        \
    for (ptrdiff_t q = 0; q < po * qo; q++) {                                                \
        const ptrdiff_t top = (q / qo) * sh - ph, left = (q % qo) * sw - pw;                 \
        const ptrdiff_t i0 = top < 0 ? -top : 0, i1 = top + kh > ho ? ho - top : kh;         \
        const ptrdiff_t j0 = left < 0 ? -left : 0, j1 = left + kw > wo ? wo - left : kw;     \
        T* __restrict mq = m + q * F;                                                        \
        int32_t* __restrict kq = k + q * F;                                                  \
        const T* first = y + ((top + i0) * wo + left + j0) * F;                              \
        for (ptrdiff_t f = 0; f < F; f++) { mq[f] = first[f]; kq[f] = (int32_t)(i0 * kw + j0); } \
        for (ptrdiff_t i = i0; i < i1; i++)                                                  \
            for (ptrdiff_t j = j0; j < j1; j++) {                                            \
                const T* __restrict cell = y + ((top + i) * wo + left + j) * F;              \
                const int32_t index = (int32_t)(i * kw + j);                                 \
                for (ptrdiff_t f = 0; f < F; f++) {                                          \
                    const T v = cell[f], mf = mq[f];                                         \
                    const int t = (v > mf) | (v != v);                                       \
                    mq[f] = t ? v : mf;                                                      \
                    kq[f] = t ? index : kq[f];                                               \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
}

DN_POOL_ROWS(dn_pool_rows_f, float)
DN_POOL_ROWS(dn_pool_rows_d, double)
#endif
