/* Depthwise and grouped convolution: the inner loops of dagnet/_kernels/depthwise.pyx.

   Each channel of a sample is laid out as direct.h's planes (padded, split into the stride's
   phases), so that tap k of a filter reads, for the output at grid position q = oh*Wq + ow,
   src[off[k] + q]: one offset per tap, a dilation included. A depthwise filter then is a
   sum of K shifted copies of its channel's planes, K = channels per group * kh * kw (9 for
   depthwise 3x3), each scaled by one weight - no matrix product, no im2col columns.

   dwk_fwd: grid[q] = bias + sum_k w[k] * src[off[k] + q]             q < Qr
       the forward, and (on the output gradient's zero-bordered grid, the offsets mirrored)
       the input gradient, one phase plane at a time
   dwk_dw:  dw[k] += sum_q d[q] * src[off[k] + q]                    k < K
       the weight gradient, its lanes summed in order and added in double

   Blocking: dwk_fwd keeps up to DWK_NV vectors of positions in registers while k runs over
   the taps (each tap: one broadcast weight, DWK_NV loads, DWK_NV multiply-adds; eight
   independent sums hide the multiply-add's latency); the grid's tail takes tiles of 4, 2, 1
   vectors. dwk_dw keeps DWK_KT taps x 2 vectors (8 sums) while q runs over the grid.
   Every sum runs in a fixed order, the same for any thread count. */
#ifndef DAGNET_DEPTHWISE_H
#define DAGNET_DEPTHWISE_H
#include <string.h>

#include "isa.h"

#define DWK_NV 8 /* dwk_fwd: vectors of positions per tile */
#define DWK_KT 4 /* dwk_dw: taps per tile */
#define DWK_INLINE inline __attribute__((always_inline))

/* One tile of nv vectors (a constant once inlined, so acc stays in registers). */
#define DWK_FWD_TILE(NAME, ATTR, T, V, VU, L)                                               \
ATTR static DWK_INLINE void NAME(const int nv, ptrdiff_t K, const int32_t* __restrict off,  \
                                 const T* __restrict w, T bias, const T* __restrict src,    \
                                 T* __restrict grid) {                                      \
    V acc[DWK_NV];                                                                          \
    for (int v = 0; v < nv; v++)                                                            \
        acc[v] = (V){0} + bias;                                                             \
    for (ptrdiff_t k = 0; k < K; k++) {                                                     \
        const V wk = (V){0} + w[k];                                                         \
        const T* __restrict s = src + off[k];                                               \
        for (int v = 0; v < nv; v++)                                                        \
            acc[v] += wk * *(const VU*)(s + v * L);                                         \
    }                                                                                       \
    for (int v = 0; v < nv; v++)                                                            \
        *(VU*)(grid + v * L) = acc[v];                                                      \
}

/* grid[q] for q < Qr (a multiple of L); src is read at off[k] + q. */
#define DWK_FWD(NAME, ATTR, T, V, VU, L)                                                    \
DWK_FWD_TILE(NAME##_tile, ATTR, T, V, VU, L)                                                \
ATTR static void NAME(ptrdiff_t K, ptrdiff_t Qr, const int32_t* __restrict off,             \
                      const T* __restrict w, T bias, const T* __restrict src,               \
                      T* __restrict grid) {                                                 \
    ptrdiff_t q = 0;                                                                        \
    for (; q + DWK_NV * L <= Qr; q += DWK_NV * L)                                           \
        NAME##_tile(DWK_NV, K, off, w, bias, src + q, grid + q);                            \
    if (q + 4 * L <= Qr) {                                                                  \
        NAME##_tile(4, K, off, w, bias, src + q, grid + q);                                 \
        q += 4 * L;                                                                         \
    }                                                                                       \
    if (q + 2 * L <= Qr) {                                                                  \
        NAME##_tile(2, K, off, w, bias, src + q, grid + q);                                 \
        q += 2 * L;                                                                         \
    }                                                                                       \
    if (q < Qr)                                                                             \
        NAME##_tile(1, K, off, w, bias, src + q, grid + q);                                 \
}

/* kt taps (a constant once inlined): dw[c] += sum_q d[q] * src[off[c] + q], q < Qr. */
#define DWK_DW_TILE(NAME, ATTR, T, V, VU, L)                                                \
ATTR static DWK_INLINE void NAME(const int kt, ptrdiff_t Qr, const int32_t* __restrict off, \
                                 const T* __restrict d, const T* __restrict src,            \
                                 double* __restrict dw) {                                   \
    V a0[DWK_KT], a1[DWK_KT];                                                               \
    const T* __restrict sk[DWK_KT];                                                         \
    for (int c = 0; c < kt; c++) {                                                          \
        sk[c] = src + off[c];                                                               \
        a0[c] = a1[c] = (V){0};                                                             \
    }                                                                                       \
    ptrdiff_t q = 0;                                                                        \
    for (; q + 2 * L <= Qr; q += 2 * L) {                                                   \
        const V d0 = *(const VU*)(d + q), d1 = *(const VU*)(d + q + L);                     \
        for (int c = 0; c < kt; c++) {                                                      \
            a0[c] += d0 * *(const VU*)(sk[c] + q);                                          \
            a1[c] += d1 * *(const VU*)(sk[c] + q + L);                                      \
        }                                                                                   \
    }                                                                                       \
    if (q < Qr) {                                                                           \
        const V d0 = *(const VU*)(d + q);                                                   \
        for (int c = 0; c < kt; c++)                                                        \
            a0[c] += d0 * *(const VU*)(sk[c] + q);                                          \
    }                                                                                       \
    for (int c = 0; c < kt; c++) {                                                          \
        const V a = a0[c] + a1[c];                                                          \
        T s = 0;                                                                            \
        for (int l = 0; l < L; l++)                                                         \
            s += a[l];                                                                      \
        dw[c] += s;                                                                         \
    }                                                                                       \
}

/* dw[k] for k < K over q < Qr (a multiple of L). */
#define DWK_DW(NAME, ATTR, T, V, VU, L)                                                     \
DWK_DW_TILE(NAME##_tile, ATTR, T, V, VU, L)                                                 \
ATTR static void NAME(ptrdiff_t K, ptrdiff_t Qr, const int32_t* __restrict off,             \
                      const T* __restrict d, const T* __restrict src,                       \
                      double* __restrict dw) {                                              \
    ptrdiff_t k = 0;                                                                        \
    for (; k + DWK_KT <= K; k += DWK_KT)                                                    \
        NAME##_tile(DWK_KT, Qr, off + k, d, src, dw + k);                                   \
    switch (K - k) {                                                                        \
    case 3: NAME##_tile(3, Qr, off + k, d, src, dw + k); break;                             \
    case 2: NAME##_tile(2, Qr, off + k, d, src, dw + k); break;                             \
    case 1: NAME##_tile(1, Qr, off + k, d, src, dw + k); break;                             \
    default: break;                                                                         \
    }                                                                                       \
}

DWK_FWD(dwk_fwd_f_portable, , float, dn_f4, dn_f4_u, 4)
DWK_FWD(dwk_fwd_d_portable, , double, dn_d2, dn_d2_u, 2)
DWK_DW(dwk_dw_f_portable, , float, dn_f4, dn_f4_u, 4)
DWK_DW(dwk_dw_d_portable, , double, dn_d2, dn_d2_u, 2)
#if DN_X86
DWK_FWD(dwk_fwd_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DWK_FWD(dwk_fwd_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DWK_DW(dwk_dw_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DWK_DW(dwk_dw_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
#define DWK_PICK(NAME, ARGS)                                                                \
    if (isa >= DN_AVX2) {                                                                   \
        NAME##_avx2 ARGS;                                                                   \
        return;                                                                             \
    }                                                                                       \
    NAME##_portable ARGS;
#else
#define DWK_PICK(NAME, ARGS) NAME##_portable ARGS;
#endif

/* The vector width (values) of variant isa for T (AVX-512 runs the AVX2 variant). */
static ptrdiff_t dwk_lanes(int isa, int is_double) {
#if DN_X86
    if (isa >= DN_AVX2)
        return is_double ? 4 : 8;
#endif
    return is_double ? 2 : 4;
}

#define DWK_DISPATCH(T, SUF)                                                                \
static void dwk_fwd_##SUF(int isa, ptrdiff_t K, ptrdiff_t Qr, const int32_t* off,           \
                          const T* w, T bias, const T* src, T* grid) {                      \
    DWK_PICK(dwk_fwd_##SUF, (K, Qr, off, w, bias, src, grid))                               \
}                                                                                           \
static void dwk_dw_##SUF(int isa, ptrdiff_t K, ptrdiff_t Qr, const int32_t* off,            \
                         const T* d, const T* src, double* dw) {                            \
    DWK_PICK(dwk_dw_##SUF, (K, Qr, off, d, src, dw))                                        \
}
DWK_DISPATCH(float, f)
DWK_DISPATCH(double, d)
#endif
