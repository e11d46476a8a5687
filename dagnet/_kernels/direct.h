/* Direct convolution: the loops of dagnet/_kernels/direct.pyx (see there for the whole method).

   The input of one sample is laid out once as "planes": padded, and for a stride s split into
   its s x s phases (plane (c, rh, rw)[a][b] = xpad[c][a*s + rh][b*s + rw]), each plane Hq x Wq
   values, one after the other. Then every tap (c, i, j) of the kernel reads, for the output
   pixel at flat position q = oh*Wq + ow, the value src[off[k] + q] with one offset per tap:
   off[k] = plane(c, i % s, j % s)*Hq*Wq + (i / s)*Wq + j / s. The convolution is a matrix
   product whose second operand is never built: row k of it is src shifted by off[k]. The
   output is computed on the Ho x Wq grid (Wq >= Wo); the grid's columns past Wo read into the
   next row and are dropped (7% more work for 28 x 28 at pad 1).

   dc_gemm: out[m][q] = bias[m] + sum_k w[k][m] * src[off[k] + q]   (the forward; the input
       gradient is the same product on the output gradient's planes, per phase)
   dc_dw:   part[m][k] += sum_q d[m][q] * src[off[k] + q], L lanes kept apart  (dw)

   Blocking (as a GEMM's micro-kernel): dc_gemm keeps a tile of DC_FR output channels x DC_NV
   vectors of positions in registers (12 accumulators; with the 3 loaded vectors and one
   broadcast weight that is the 16 registers of SSE2 and AVX2) while k runs over all taps: per
   tap DC_NV loads and DC_FR broadcasts feed 12 multiply-adds. The weights are packed per tile
   of DC_FR channels (k-major, zero rows past M), so they stream in order. dc_dw keeps DC_KR
   taps x DC_DB channels (12 accumulators, 3 loaded gradient vectors, one loaded source
   vector) while q runs over the sample's grid.
   Every sum runs in a fixed order, the same for any thread count. */
#ifndef DAGNET_DIRECT_H
#define DAGNET_DIRECT_H
#include <string.h>

#include "isa.h"

#define DC_FR 4 /* dc_gemm: output channels per tile */
#define DC_NV 3 /* dc_gemm: vectors of positions per tile */
#define DC_KR 4 /* dc_dw: taps per tile */
#define DC_DB 3 /* dc_dw: channels per tile */

/* out[m][q] for m < M (rows ldo apart), q < Qr (a multiple of DC_NV*L); wp: ceil(M / DC_FR)
   tiles of K x DC_FR weights; bias: ceil(M / DC_FR)*DC_FR values, or NULL for none; src is
   read at off[k] + q for every k < K, q < Qr. */
#define DC_GEMM(NAME, ATTR, T, V, VU, L)                                                    \
ATTR static void NAME(ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr, const int32_t* __restrict off, \
                      const T* __restrict wp, const T* __restrict bias,                     \
                      const T* __restrict src, T* __restrict out, ptrdiff_t ldo) {          \
    const ptrdiff_t tiles = (M + DC_FR - 1) / DC_FR;                                        \
    for (ptrdiff_t q0 = 0; q0 < Qr; q0 += DC_NV * L) {                                      \
        const T* __restrict s = src + q0;                                                   \
        for (ptrdiff_t t = 0; t < tiles; t++) {                                             \
            const T* __restrict w = wp + t * K * DC_FR;                                     \
            V acc[DC_FR][DC_NV];                                                            \
            for (int r = 0; r < DC_FR; r++) {                                               \
                const T b0 = bias ? bias[t * DC_FR + r] : (T)0;                             \
                for (int v = 0; v < DC_NV; v++)                                             \
                    acc[r][v] = (V){0} + b0;                                                \
            }                                                                               \
            for (ptrdiff_t k = 0; k < K; k++, w += DC_FR) {                                 \
                const T* __restrict sk = s + off[k];                                        \
                V x[DC_NV];                                                                 \
                for (int v = 0; v < DC_NV; v++)                                             \
                    x[v] = *(const VU*)(sk + v * L);                                        \
                for (int r = 0; r < DC_FR; r++) {                                           \
                    const V wr = (V){0} + w[r];                                             \
                    for (int v = 0; v < DC_NV; v++)                                         \
                        acc[r][v] += wr * x[v];                                             \
                }                                                                           \
            }                                                                               \
            const ptrdiff_t rows = M - t * DC_FR < DC_FR ? M - t * DC_FR : DC_FR;           \
            for (ptrdiff_t r = 0; r < rows; r++)                                            \
                for (int v = 0; v < DC_NV; v++)                                             \
                    *(VU*)(out + (t * DC_FR + r) * ldo + q0 + v * L) = acc[r][v];           \
        }                                                                                   \
    }                                                                                       \
}

/* part[m][k][:L] += the L lane sums of d[m][q] * src[off[k] + q] over q < Qr (a multiple of
   L), for m < Mr (a multiple of DC_DB; rows of d ldd apart) and k < Kr (a multiple of
   DC_KR); the lanes are summed later, in order. */
#define DC_DW(NAME, ATTR, T, V, VU, L)                                                      \
ATTR static void NAME(ptrdiff_t Mr, ptrdiff_t Kr, ptrdiff_t Qr, const int32_t* __restrict off, \
                      const T* __restrict d, ptrdiff_t ldd, const T* __restrict src,        \
                      T* __restrict part) {                                                 \
    for (ptrdiff_t m0 = 0; m0 < Mr; m0 += DC_DB)                                            \
        for (ptrdiff_t k0 = 0; k0 < Kr; k0 += DC_KR) {                                      \
            V acc[DC_KR][DC_DB];                                                            \
            const T* __restrict sk[DC_KR];                                                  \
            for (int c = 0; c < DC_KR; c++) {                                               \
                sk[c] = src + off[k0 + c];                                                  \
                for (int r = 0; r < DC_DB; r++)                                             \
                    acc[c][r] = (V){0};                                                     \
            }                                                                               \
            const T* __restrict dm = d + m0 * ldd;                                          \
            for (ptrdiff_t q = 0; q < Qr; q += L) {                                         \
                V dv[DC_DB];                                                                \
                for (int r = 0; r < DC_DB; r++)                                             \
                    dv[r] = *(const VU*)(dm + r * ldd + q);                                 \
                for (int c = 0; c < DC_KR; c++) {                                           \
                    const V sv = *(const VU*)(sk[c] + q);                                   \
                    for (int r = 0; r < DC_DB; r++)                                         \
                        acc[c][r] += sv * dv[r];                                            \
                }                                                                           \
            }                                                                               \
            for (int c = 0; c < DC_KR; c++)                                                 \
                for (int r = 0; r < DC_DB; r++)                                             \
                    *(VU*)(part + ((m0 + r) * Kr + k0 + c) * L) += acc[c][r];               \
        }                                                                                   \
}

DC_GEMM(dc_gemm_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_GEMM(dc_gemm_d_portable, , double, dn_d2, dn_d2_u, 2)
DC_DW(dc_dw_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_DW(dc_dw_d_portable, , double, dn_d2, dn_d2_u, 2)
#if DN_X86
DC_GEMM(dc_gemm_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_GEMM(dc_gemm_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DC_DW(dc_dw_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_DW(dc_dw_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
#endif

/* The vector width (values) of variant isa for T; AVX-512 runs the AVX2 variant (16 wide
   tiles would need other tile shapes, and no AVX-512 machine measured them). */
static ptrdiff_t dc_lanes(int isa, int is_double) {
#if DN_X86
    if (isa >= DN_AVX2)
        return is_double ? 4 : 8;
#endif
    return is_double ? 2 : 4;
}

#if DN_X86
#define DC_PICK(NAME, ARGS)                                                                 \
    if (isa >= DN_AVX2) {                                                                   \
        NAME##_avx2 ARGS;                                                                   \
        return;                                                                             \
    }                                                                                       \
    NAME##_portable ARGS;
#else
#define DC_PICK(NAME, ARGS) NAME##_portable ARGS;
#endif

#define DC_DISPATCH(T, SUF)                                                                 \
static void dc_gemm_##SUF(int isa, ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr, const int32_t* off, \
                          const T* wp, const T* bias, const T* src, T* out, ptrdiff_t ldo) { \
    DC_PICK(dc_gemm_##SUF, (M, K, Qr, off, wp, bias, src, out, ldo))                        \
}                                                                                           \
static void dc_dw_##SUF(int isa, ptrdiff_t Mr, ptrdiff_t Kr, ptrdiff_t Qr, const int32_t* off, \
                        const T* d, ptrdiff_t ldd, const T* src, T* part) {                 \
    DC_PICK(dc_dw_##SUF, (Mr, Kr, Qr, off, d, ldd, src, part))                              \
}
DC_DISPATCH(float, f)
DC_DISPATCH(double, d)
#endif
