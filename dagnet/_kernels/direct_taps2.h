/* A conv of few taps (K = C*kh*kw <= OC_TAPS_MAX) and column stride 2, AVX-512 alone: a
   ResNet's 1x1 stride-2 projection (resnet_small's 16 -> 32 skip), the inference forward of
   direct.pyx's forward_oc.

   direct_oc.h's tiles vectorise along output channels and write a grid (positions x
   channels) that oc_out transposes into the NCHW output: for a 1x1 conv of 16 taps that
   read-out took as long as the products (profile of forward_oc, 16 samples). Here, as
   direct_oc.h's few-tap kernel for stride 1 (oc_taps), each output row is vectorised along
   its positions, L of them a vector, the tail masked; a tap's L inputs, every second column
   of the sample's row, come as two vector loads and one permute that keeps the even lanes.
   A row block's K input vectors stay in registers for all filters, OC_TAPS2_FR filters a pass
   (independent chains of K broadcast weights' multiply-adds), then each filter's skip, relu
   and a masked store straight into the NCHW output: no grid, no read-out, no zero filters.
   The weights are oc_packed's tiles (filter m, tap k at (m / nc)*K*nc + k*nc + m % nc), the
   input the (padded) sample with rows Wp apart and tap k at off[k], as direct_oc.h's. Each
   output is bias + the taps' products in k order, multiply-adds as dc_gemm's and oc_rows':
   the same bits as both. */
#ifndef DAGNET_DIRECT_TAPS2_H
#define DAGNET_DIRECT_TAPS2_H
#include "direct_oc.h" /* OC_TAPS_MAX */
#define OC_TAPS2_FR 8 /* filters a pass: 8 chains (16 spilled: 0.83x the speed) */

#if DN_X86
/* Lanes past n (< L) are loaded as zeros and never stored; the two loads read the columns
   up to the last position's tap, 2 * (n - 1) past the first, no further (the row's end). */
#define OC_TAPS2_BODY(T, V, MASK, L, SET1, LOADZ, FMA, ADD, CMPMASK, MOVZ, STOREM, SETZERO,  \
                      PERM, IDX)                                                             \
    const ptrdiff_t Q = Ho * Wo;                                                            \
    const V zero = SETZERO();                                                               \
    const __m512i even = IDX;                                                               \
    for (ptrdiff_t oh = 0; oh < Ho; oh++)                                                   \
        for (ptrdiff_t j0 = 0; j0 < Wo; j0 += L) {                                          \
            const ptrdiff_t n = Wo - j0 >= L ? L : Wo - j0, e = 2 * n - 1; /* columns read */ \
            const MASK mk = (MASK)(n == L ? ~0ull : (1ull << n) - 1);                       \
            const MASK lo = (MASK)(e >= L ? ~0ull : (1ull << e) - 1);                       \
            const MASK hi = (MASK)(e >= 2 * L ? ~0ull : e > L ? (1ull << (e - L)) - 1 : 0); \
            const T* __restrict xr = xp + oh * sh * Wp + 2 * j0;                            \
            V xv[OC_TAPS_MAX];                                                              \
            _Pragma("GCC unroll 16")                                                        \
            for (int k = 0; k < K; k++)                                                     \
                xv[k] = PERM(LOADZ(lo, xr + off[k]), even, LOADZ(hi, xr + off[k] + L));     \
            const ptrdiff_t o = oh * Wo + j0;                                               \
            for (ptrdiff_t m0 = 0; m0 < M; m0 += OC_TAPS2_FR) {                              \
                V acc[OC_TAPS2_FR]; /* independent chains: one alone waits out each latency */ \
                const T* __restrict wt = wp + m0 / nc * K * nc + m0 % nc; /* one tile's */  \
                for (int r = 0; r < OC_TAPS2_FR; r++)                                        \
                    acc[r] = SET1(bias[m0 + r]);                                            \
                _Pragma("GCC unroll 16")                                                    \
                for (int k = 0; k < K; k++, wt += nc) /* tap k's weights: nc apart */       \
                    for (int r = 0; r < OC_TAPS2_FR; r++)                                    \
                        acc[r] = FMA(SET1(wt[r]), xv[k], acc[r]);                           \
                for (int r = 0; r < OC_TAPS2_FR; r++) /* all chains first (as oc_taps) */   \
                    __asm__("" : "+v"(acc[r]));                                             \
                for (int r = 0; r < OC_TAPS2_FR && m0 + r < M; r++) {                        \
                    V v = acc[r];                                                           \
                    T* __restrict dst = out + (m0 + r) * Q + o;                             \
                    if (res)                                                                \
                        v = ADD(v, LOADZ(mk, res + (m0 + r) * Q + o));                      \
                    if (relu) /* zero where < 0: NaN and -0.0 kept, as DC_RELU1 */          \
                        v = MOVZ(CMPMASK(v, zero, _CMP_NLT_UQ), v);                         \
                    STOREM(dst, mk, v);                                                     \
                }                                                                           \
            }                                                                               \
        }

#define OC_TAPS2(SUF, T, V, MASK, L, S, IDX)                                                \
DN_TARGET_AVX512 static inline __attribute__((always_inline)) void oc_taps2_##SUF##_k(      \
        const int K, const int32_t* __restrict off, const T* __restrict wp,                 \
        const T* __restrict bias, ptrdiff_t M, ptrdiff_t nc, const T* __restrict xp,        \
        ptrdiff_t Wp, ptrdiff_t sh, ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res,    \
        int relu, T* __restrict out) {                                                      \
    OC_TAPS2_BODY(T, V, MASK, L, _mm512_set1_##S, _mm512_maskz_loadu_##S, _mm512_fmadd_##S, \
                  _mm512_add_##S, _mm512_cmp_##S##_mask, _mm512_maskz_mov_##S,              \
                  _mm512_mask_storeu_##S, _mm512_setzero_##S, _mm512_permutex2var_##S, IDX) \
}                                                                                           \
DN_TARGET_AVX512 static void oc_taps2_##SUF(int K, const int32_t* off, const T* wp,        \
        const T* bias, ptrdiff_t M, ptrdiff_t nc, const T* xp, ptrdiff_t Wp, ptrdiff_t sh,  \
        ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, T* out) {                       \
    switch (K) { /* each count its own unrolled loops: the K vectors stay in registers */   \
    case 16: oc_taps2_##SUF##_k(16, off, wp, bias, M, nc, xp, Wp, sh, Ho, Wo, res, relu, out); break; \
    case 8: oc_taps2_##SUF##_k(8, off, wp, bias, M, nc, xp, Wp, sh, Ho, Wo, res, relu, out); break; \
    case 4: oc_taps2_##SUF##_k(4, off, wp, bias, M, nc, xp, Wp, sh, Ho, Wo, res, relu, out); break; \
    default: oc_taps2_##SUF##_k(K, off, wp, bias, M, nc, xp, Wp, sh, Ho, Wo, res, relu, out); break; \
    }                                                                                       \
}
#pragma GCC diagnostic push /* xv[k] for k >= K is never read; GCC cannot tell */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
OC_TAPS2(f, float, __m512, __mmask16, 16, ps,
         _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30))
OC_TAPS2(d, double, __m512d, __mmask8, 8, pd, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14))
#pragma GCC diagnostic pop
#else /* never called: the caller takes them for AVX-512 alone */
#define OC_TAPS2_STUB(SUF, T)                                                               \
static void oc_taps2_##SUF(int K, const int32_t* off, const T* wp, const T* bias,           \
                           ptrdiff_t M, ptrdiff_t nc, const T* xp, ptrdiff_t Wp,            \
                           ptrdiff_t sh, ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, \
                           T* out) {}
OC_TAPS2_STUB(f, float)
OC_TAPS2_STUB(d, double)
#endif
#endif
