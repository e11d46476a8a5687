/* Training's stride-1 direct convs vectorised along output channels: direct.pyx's
   forward_oc1, for the convs ops/direct_oc1.py uses_oc1 takes (filters in pairs of vectors).

   direct.h's dc_gemm vectorises along output positions; on the small grids of resnet20's
   deeper stages (8 x 8 and 16 x 16 outputs, rows 10 and 18 apart in the planes) its vectors
   pair half rows (dc_gemm_rows16: a shuffle per vector, the odd last pair in a narrow tile).
   Here, as in direct_oc.h's inference kernels, a tap's input value is broadcast and multiplied
   by vectors of the tap's weights for L consecutive output channels: a tile of 8 positions
   along one output row x 2 vectors of channels (8 x 2: 16 accumulators), no
   shuffles, no grid columns past Wo. Unlike direct_oc.h it runs the taps in blocks of KB (the
   tile's accumulators stored in the grid between blocks, loaded back for the next): a
   64-channel conv's weights (576 taps x 64 channels, 147 KB) then stream from L1, not L2
   (all taps in one block ran resnet20's 64-channel 8 x 8 forward at 0.8x dc_gemm's speed;
   blocks of 12-24 KB of weights 1.03-1.17x: ops/direct_oc1.py uses_oc1 has the figures).

   It reads the direct kernels' planes (stride 1: the padded sample, tap (c, i, j) at
   off[k] = (c*Hq + i)*Wq + j, direct.h), writes a grid of the sample's Ho*Wo positions x Mp
   channels (position-major) that direct_oc.h's oc_out transposes into the NCHW output. Each
   output is bias + the taps' products in k order, one multiply-add each: the same sum, in the
   same order, as dc_gemm's, so the outputs are bitwise the planes kernel's. */
#ifndef DAGNET_DIRECT_OC1_H
#define DAGNET_DIRECT_OC1_H
#include "direct_oc.h" /* oc_out, DC_PICK512, dc_wide_lanes */

/* grid[r*ldg + v*L] for r < R positions along a row, v < NB vectors of channels: the taps
   k0 <= k < k1 (w: this tile's weights from tap k0, NB*L a tap) added to bias (k0 == 0) or
   to the grid's partial sums (the earlier blocks'), x read at off[k] + r (direct_oc.h's
   OC_TAP_SUMS, stride 1, no unroll pragma). */
#define O1_TILE(NAME, ATTR, T, V, VU, L, R, NB)                                             \
ATTR static inline void NAME(ptrdiff_t k0, ptrdiff_t k1, const int32_t* __restrict off,    \
                             const T* __restrict w, const T* __restrict bias,              \
                             const T* __restrict x, T* __restrict grid, ptrdiff_t ldg) {    \
    V acc[R][NB];                                                                           \
    if (k0 == 0) {                                                                          \
        for (int v = 0; v < NB; v++) {                                                      \
            const V b = *(const VU*)(bias + v * L);                                         \
            for (int r = 0; r < R; r++)                                                     \
                acc[r][v] = b;                                                              \
        }                                                                                   \
    } else {                                                                                \
        for (int r = 0; r < R; r++)                                                         \
            for (int v = 0; v < NB; v++)                                                    \
                acc[r][v] = *(const VU*)(grid + r * ldg + v * L);                           \
    }                                                                                       \
    OC_TAP_SUMS(T, V, VU, L, R, NB, , acc, k0, k1, off, w, x, 1);                               \
    for (int r = 0; r < R; r++)                                                             \
        for (int v = 0; v < NB; v++)                                                        \
            *(VU*)(grid + r * ldg + v * L) = acc[r][v];                                     \
}

/* One output row's tiles of NB vectors: RM positions a tile, the row's tail in one
   narrower tile (RM <= 8). */
#define O1_ROW(NAME, ATTR, T, V, VU, L, NB, RM)                                             \
O1_TILE(NAME##_8, ATTR, T, V, VU, L, 8, NB)                                                 \
O1_TILE(NAME##_7, ATTR, T, V, VU, L, 7, NB)                                                 \
O1_TILE(NAME##_6, ATTR, T, V, VU, L, 6, NB)                                                 \
O1_TILE(NAME##_5, ATTR, T, V, VU, L, 5, NB)                                                 \
O1_TILE(NAME##_4, ATTR, T, V, VU, L, 4, NB)                                                 \
O1_TILE(NAME##_3, ATTR, T, V, VU, L, 3, NB)                                                 \
O1_TILE(NAME##_2, ATTR, T, V, VU, L, 2, NB)                                                 \
O1_TILE(NAME##_1, ATTR, T, V, VU, L, 1, NB)                                                 \
ATTR static void NAME(ptrdiff_t k0, ptrdiff_t k1, const int32_t* off, const T* w,           \
                      const T* bias, const T* x, ptrdiff_t Wo, T* grid, ptrdiff_t ldg) {    \
    for (ptrdiff_t ow = 0; ow < Wo; ow += RM) {                                             \
        const T* xr = x + ow;                                                               \
        T* g = grid + ow * ldg;                                                             \
        switch (Wo - ow < RM ? Wo - ow : RM) {                                              \
        case 8: NAME##_8(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 7: NAME##_7(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 6: NAME##_6(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 5: NAME##_5(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 4: NAME##_4(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 3: NAME##_3(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        case 2: NAME##_2(k0, k1, off, w, bias, xr, g, ldg); break;                          \
        default: NAME##_1(k0, k1, off, w, bias, xr, g, ldg); break;                         \
        }                                                                                   \
    }                                                                                       \
}

/* grid (Ho*Wo positions x Mp channels, position-major) = the conv of the planes xp (rows Wq
   apart): per block of KB taps, every tile of 2 vectors of L channels (weights wp: tiles of
   K x 2L, bias: Mp values) over every output row, 8 positions a tile (16 accumulators:
   AVX-512's 32 registers; AVX2's and the portable variants spill some: correct, for the
   tests). Measured against 4 positions x 4 vectors on resnet20's 64-channel 8 x 8 and
   resnet_small's 7 x 7: the same speed within the noise; 32 filters fill 2 vectors alone. */
#define O1_CONV(NAME, ATTR, T, V, VU, L)                                                    \
O1_ROW(NAME##_nb2, ATTR, T, V, VU, L, 2, 8)                                                 \
ATTR static void NAME(ptrdiff_t K, ptrdiff_t KB, const int32_t* off, const T* wp,           \
                      const T* bias, ptrdiff_t Mp, const T* xp, ptrdiff_t Wq, ptrdiff_t Ho, \
                      ptrdiff_t Wo, T* grid) {                                              \
    const ptrdiff_t nc = 2 * L;                                                             \
    for (ptrdiff_t k0 = 0; k0 < K; k0 += KB) {                                              \
        const ptrdiff_t k1 = k0 + KB < K ? k0 + KB : K;                                     \
        for (ptrdiff_t t = 0; t < Mp / nc; t++) {                                           \
            const T* w = wp + (t * K + k0) * nc;                                            \
            for (ptrdiff_t oh = 0; oh < Ho; oh++)                                           \
                NAME##_nb2(k0, k1, off, w, bias + t * nc, xp + oh * Wq, Wo,                 \
                           grid + oh * Wo * Mp + t * nc, Mp);                               \
        }                                                                                   \
    }                                                                                       \
}

O1_CONV(o1_conv_f_portable, , float, dn_f4, dn_f4_u, 4)
O1_CONV(o1_conv_d_portable, , double, dn_d2, dn_d2_u, 2)
#if DN_X86
O1_CONV(o1_conv_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
O1_CONV(o1_conv_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
O1_CONV(o1_conv_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16)
O1_CONV(o1_conv_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8)
#endif

#define O1_DISPATCH(T, SUF)                                                                 \
static void o1_conv_##SUF(int isa, ptrdiff_t K, ptrdiff_t KB, const int32_t* off, const T* wp, \
                          const T* bias, ptrdiff_t Mp, const T* xp, ptrdiff_t Wq, ptrdiff_t Ho, \
                          ptrdiff_t Wo, T* grid) {                                          \
    DC_PICK512(o1_conv_##SUF, (K, KB, off, wp, bias, Mp, xp, Wq, Ho, Wo, grid))              \
}
O1_DISPATCH(float, f)
O1_DISPATCH(double, d)
#endif
