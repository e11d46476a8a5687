/* Direct convolution vectorised along output channels (as MLAS's NCHWc kernels): the
   inference forward of dagnet/_kernels/direct.pyx's forward_oc.

   direct.h vectorises along output positions: each tap's input is a vector load at an offset
   into the stride's phase planes, on a grid Wq = W + 2*pad wide (its extra columns computed
   and dropped), with a 32-byte load that straddles two cache lines for most offsets. Here a
   tap's input value is broadcast and multiplied by a vector of the tap's weights for L
   consecutive output channels: a tile of R positions along one output row x NB vectors of
   output channels (R*NB = 12 accumulators or fewer; with NB weight vectors and one broadcast
   that is at most 16 registers), k running over all C*kh*kw taps. Positions run along the
   true output row (a narrower tile at its end: no grid waste), a stride is read in place
   (input column ow*sw + j: no phase planes), the broadcasts never split a cache line and the
   weights, packed [tile][k][NB*L], stream in order.

   The input of one sample is its padded copy (C, Hp, Wp) (or the sample itself when there
   is no padding), tap k = (c, i, j) at off[k] = (c*Hp + i)*Wp + j; the tiles write a grid
   of the sample's output positions x Mp channels (position-major), which oc_out reads out
   channel by channel into the NCHW output, + skip, relu. Each output is bias + the taps'
   products in k order: the same sum, in the same order, as direct.h's dc_gemm. */
#ifndef DAGNET_DIRECT_OC_H
#define DAGNET_DIRECT_OC_H
#include "direct.h" /* DC_RELU1, DC_PICK, dc_lanes */

/* acc[r][v] += sum over taps k0 <= k < k1 of w[k] * x[off[k] + r*sw], in k order, one
   multiply-add each, for R positions and NB vectors of L channels (w: the tile's weights
   from tap k0, NB*L a tap; acc: V[R][NB]). The inner loop of both kernels vectorised along
   output channels: OC_TILE here (all taps, a stride, UNROLL a pragma or nothing) and
   direct_oc1.h's O1_TILE (a block of taps resumed from partial sums, stride 1). */
#define OC_TAP_SUMS(T, V, VU, L, R, NB, UNROLL, acc, k0, k1, off, w, x, sw)                     \
    do {                                                                                    \
        const T* __restrict w_ = (w);                                                       \
        UNROLL                                                                              \
        for (ptrdiff_t k_ = (k0); k_ < (k1); k_++, w_ += (NB) * (L)) {                      \
            const T* __restrict xk_ = (x) + (off)[k_];                                      \
            V wv_[NB];                                                                      \
            for (int v_ = 0; v_ < (NB); v_++)                                               \
                wv_[v_] = *(const VU*)(w_ + v_ * (L));                                      \
            for (int r_ = 0; r_ < (R); r_++) {                                              \
                const V b_ = (V){0} + xk_[r_ * (sw)];                                       \
                for (int v_ = 0; v_ < (NB); v_++)                                           \
                    (acc)[r_][v_] += b_ * wv_[v_];                                          \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* grid[r][v*L ..] (rows ldg apart) = bias + sum_k w[k] * x[off[k] + r*sw], for R positions
   and NB vectors of L channels. */
#define OC_TILE(NAME, ATTR, T, V, VU, L, R, NB, UNROLL)                                     \
ATTR static inline void NAME(ptrdiff_t K, const int32_t* __restrict off,                   \
                             const T* __restrict w, const T* __restrict bias,              \
                             const T* __restrict x, ptrdiff_t sw, T* __restrict grid,       \
                             ptrdiff_t ldg) {                                               \
    V acc[R][NB];                                                                           \
    for (int v = 0; v < NB; v++) {                                                          \
        const V b = *(const VU*)(bias + v * L);                                             \
        for (int r = 0; r < R; r++)                                                         \
            acc[r][v] = b;                                                                  \
    }                                                                                       \
    OC_TAP_SUMS(T, V, VU, L, R, NB, UNROLL, acc, 0, K, off, w, x, sw);                          \
    for (int r = 0; r < R; r++)                                                             \
        for (int v = 0; v < NB; v++)                                                        \
            *(VU*)(grid + r * ldg + v * L) = acc[r][v];                                     \
}

/* The tiles of NB vectors: at most 12 / NB positions, a row's tiles as equal as can be
   (ceil(Wo / (12 / NB)) of them): a narrow tail tile has too few accumulators to hide the
   multiply-add's latency (Wo = 14 as 6 + 6 + 2 positions ran the row 1.xx slower than as
   5 + 5 + 4). Each output's sum is the same whatever tile computes it. */
#define OC_TILES2(NAME, ATTR, T, V, VU, L)                                                  \
OC_TILE(NAME##_6, ATTR, T, V, VU, L, 6, 2, DC_UNROLL)                                       \
OC_TILE(NAME##_5, ATTR, T, V, VU, L, 5, 2, DC_UNROLL)                                       \
OC_TILE(NAME##_4, ATTR, T, V, VU, L, 4, 2, DC_UNROLL)                                       \
OC_TILE(NAME##_3, ATTR, T, V, VU, L, 3, 2, DC_UNROLL)                                       \
OC_TILE(NAME##_2, ATTR, T, V, VU, L, 2, 2, DC_UNROLL)                                       \
OC_TILE(NAME##_1, ATTR, T, V, VU, L, 1, 2, DC_UNROLL)                                       \
ATTR static void NAME(ptrdiff_t K, const int32_t* off, const T* w, const T* bias,           \
                      const T* x, ptrdiff_t sw, ptrdiff_t Wo, T* grid, ptrdiff_t ldg) {     \
    const ptrdiff_t n = (Wo + 5) / 6, q = n ? Wo / n : 0, big = n ? Wo % n : 0;             \
    for (ptrdiff_t t = 0; t < n; t++) {                                                     \
        const ptrdiff_t r = q + (t < big);                                                  \
        switch (r) {                                                                        \
        case 6: NAME##_6(K, off, w, bias, x, sw, grid, ldg); break;                         \
        case 5: NAME##_5(K, off, w, bias, x, sw, grid, ldg); break;                         \
        case 4: NAME##_4(K, off, w, bias, x, sw, grid, ldg); break;                         \
        case 3: NAME##_3(K, off, w, bias, x, sw, grid, ldg); break;                         \
        case 2: NAME##_2(K, off, w, bias, x, sw, grid, ldg); break;                         \
        default: NAME##_1(K, off, w, bias, x, sw, grid, ldg); break;                        \
        }                                                                                   \
        x += r * sw;                                                                        \
        grid += r * ldg;                                                                    \
    }                                                                                       \
}
#define OC_TILES4(NAME, ATTR, T, V, VU, L)                                                  \
OC_TILE(NAME##_3, ATTR, T, V, VU, L, 3, 4, )                                                  \
OC_TILE(NAME##_2, ATTR, T, V, VU, L, 2, 4, )                                                  \
OC_TILE(NAME##_1, ATTR, T, V, VU, L, 1, 4, )                                                  \
ATTR static void NAME(ptrdiff_t K, const int32_t* off, const T* w, const T* bias,           \
                      const T* x, ptrdiff_t sw, ptrdiff_t Wo, T* grid, ptrdiff_t ldg) {     \
    const ptrdiff_t n = (Wo + 2) / 3, q = n ? Wo / n : 0, big = n ? Wo % n : 0;             \
    for (ptrdiff_t t = 0; t < n; t++) {                                                     \
        const ptrdiff_t r = q + (t < big);                                                  \
        if (r == 3)                                                                         \
            NAME##_3(K, off, w, bias, x, sw, grid, ldg);                                    \
        else if (r == 2)                                                                    \
            NAME##_2(K, off, w, bias, x, sw, grid, ldg);                                    \
        else                                                                                \
            NAME##_1(K, off, w, bias, x, sw, grid, ldg);                                    \
        x += r * sw;                                                                        \
        grid += r * ldg;                                                                    \
    }                                                                                       \
}

/* grid (Ho*Wo positions x Mp channels, position-major) of output rows oh0 <= oh < oh1:
   every tile of NB*L channels (weights wp: tiles of K x NB*L, bias: Mp values) along each
   row; xp is the padded sample (rows Wp apart), the output row oh reading its rows from
   oh*sh. */
#define OC_ROWS(NAME, ATTR, T)                                                              \
ATTR static void NAME(int nb, ptrdiff_t K, const int32_t* off, const T* wp, const T* bias,  \
                      ptrdiff_t Mp, const T* xp, ptrdiff_t Wp, ptrdiff_t sh, ptrdiff_t sw,  \
                      ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t Wo, T* grid, ptrdiff_t L) {   \
    const ptrdiff_t nc = nb * L;                                                            \
    for (ptrdiff_t t = 0; t < Mp / nc; t++)                                                 \
        for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                          \
            const T* w = wp + t * K * nc;                                                   \
            T* g = grid + oh * Wo * Mp + t * nc;                                            \
            if (nb == 4)                                                                    \
                NAME##_nb4(K, off, w, bias + t * nc, xp + oh * sh * Wp, sw, Wo, g, Mp);     \
            else                                                                            \
                NAME##_nb2(K, off, w, bias + t * nc, xp + oh * sh * Wp, sw, Wo, g, Mp);     \
        }                                                                                   \
}

/* out[m][q] = grid[q][m] (+ res[m][q] if res), then max(., 0) if relu (a bit mask:
   DC_RELU1 of direct.h, NaN kept), for m < M, q0 <= q < q1 (q = oh*Wo + ow: the sample's
   positions, in both). The grid is read in blocks of OC_QB positions (OC_QB*Mp values, in L1)
   channel by channel: a position's channels lie one cache line apart or closer. */
#define OC_QB 64
#define OC_OUT(NAME, ATTR, T, IS)                                                           \
ATTR static void NAME(const T* __restrict grid, ptrdiff_t Mp, ptrdiff_t M, ptrdiff_t Q,     \
                      ptrdiff_t q0, ptrdiff_t q1, const T* __restrict res, int relu,        \
                      T* __restrict out) {                                                  \
    for (ptrdiff_t b = q0; b < q1; b += OC_QB) {                                            \
        const ptrdiff_t e = b + OC_QB < q1 ? b + OC_QB : q1;                                \
        for (ptrdiff_t m = 0; m < M; m++)                                                   \
            for (ptrdiff_t q = b; q < e; q++)                                               \
                DC_ONE(T, IS, grid[q * Mp + m], res, m * Q + q, relu, out);                 \
    }                                                                                       \
}


#define OC_VARIANT(SUF, OUT, ATTR, T, V, VU, L, IS)                                              \
OC_TILES2(oc_rows_##SUF##_nb2, ATTR, T, V, VU, L)                                           \
OC_TILES4(oc_rows_##SUF##_nb4, ATTR, T, V, VU, L)                                           \
OC_ROWS(oc_rows_##SUF, ATTR, T)                                                             \
OC_OUT(OUT, ATTR, T, IS)

OC_VARIANT(f_portable, oc_out_f_portable, , float, dn_f4, dn_f4_u, 4, uint32_t)
OC_VARIANT(d_portable, oc_out_d_portable, , double, dn_d2, dn_d2_u, 2, uint64_t)
#if DN_X86
OC_VARIANT(f_avx2, oc_out_f_avx2_tail, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, uint32_t)
OC_VARIANT(d_avx2, oc_out_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, uint64_t)
#endif

/* AVX-512: the tiles on 16 floats (8 doubles) of output channels; the read-out stays
   AVX2's (Mp, a multiple of 16, is one of 8). */
#if DN_X86
OC_TILES2(oc_rows_f_avx512_nb2, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16)
OC_TILES4(oc_rows_f_avx512_nb4, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16)
OC_ROWS(oc_rows_f_avx512, DN_TARGET_AVX512, float)
OC_TILES2(oc_rows_d_avx512_nb2, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8)
OC_TILES4(oc_rows_d_avx512_nb4, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8)
OC_ROWS(oc_rows_d_avx512, DN_TARGET_AVX512, double)
#endif

#if DN_X86
#include <immintrin.h>
/* OC_OUT for float on AVX2 (Mp a multiple of 8): per 8 channels, blocks of OC_QB positions
   transposed 8 x 8 in registers (the unpack / shuffle / lane-permute steps) into tmp (in L1),
   then each channel's run of the block + skip, relu, stored: the skip and the output then
   stream one channel at a time (writing all 8 channels' rows at once, 16 streams with the
   skip's, ran at half dc_rows's speed); the last (q1 - q0) % 8 positions as OC_OUT. */
DN_TARGET_AVX2 static void oc_out_f_avx2(const float* __restrict grid, ptrdiff_t Mp,
                                         ptrdiff_t M, ptrdiff_t Q, ptrdiff_t q0, ptrdiff_t q1,
                                         const float* __restrict res, int relu,
                                         float* __restrict out) {
    float tmp[8][OC_QB] __attribute__((aligned(32)));
    const __m256 zero = _mm256_setzero_ps();
    const ptrdiff_t qe = q0 + (q1 - q0) / 8 * 8;
    for (ptrdiff_t m0 = 0; m0 < M; m0 += 8) {
        const int n = M - m0 < 8 ? (int)(M - m0) : 8;
        for (ptrdiff_t b = q0; b < qe; b += OC_QB) {
            const ptrdiff_t e = b + OC_QB < qe ? b + OC_QB : qe;
            for (ptrdiff_t q = b; q < e; q += 8) {
                const float* g = grid + q * Mp + m0;
                __m256 r[8], t[8];
                for (int i = 0; i < 8; i++)
                    r[i] = _mm256_loadu_ps(g + i * Mp);
                for (int i = 0; i < 8; i += 2) {
                    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
                }
                for (int i = 0; i < 8; i += 4) {
                    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
                }
                for (int i = 0; i < 4; i++) {
                    _mm256_store_ps(tmp[i] + (q - b), _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
                    _mm256_store_ps(tmp[i + 4] + (q - b),
                                    _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
                }
            }
            for (int j = 0; j < n; j++) {
                float* o = out + (m0 + j) * Q;
                const float* rr = res ? res + (m0 + j) * Q : NULL;
                for (ptrdiff_t q = b; q < e; q += 8) {
                    __m256 v = _mm256_load_ps(tmp[j] + (q - b));
                    if (rr)
                        v = _mm256_add_ps(v, _mm256_loadu_ps(rr + q));
                    if (relu) /* a NaN compares false: kept, as DC_RELU1 */
                        v = _mm256_andnot_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), v);
                    _mm256_storeu_ps(o + q, v);
                }
            }
        }
    }
    oc_out_f_avx2_tail(grid, Mp, M, Q, qe, q1, res, relu, out);
}
#endif

/* A conv of few taps (K = C*kh*kw <= OC_TAPS_MAX), AVX-512 alone, at column stride 1 (a
   1-channel stem) or 2 (a ResNet's 1x1 stride-2 projection, resnet_small's 16 -> 32 skip):
   vectorised along output positions again, each output row in vectors of L, the tail
   masked. The tiles above write a grid that oc_out reads out: for a 1x1 conv of 16 taps that
   read-out took as long as the products, and they pad 16 filters to 32 with AVX-512. Here a
   row block's K input vectors are loaded once into registers and serve every filter,
   OC_TAPS_FR filters a pass (independent chains of K broadcast weights' multiply-adds), then
   each filter's skip, relu and a masked store straight into the NCHW output: no grid, no
   read-out, no zero filters. The weights are oc_packed's tiles (filter m, tap k at
   (m / nc)*K*nc + k*nc + m % nc). Each output is bias + the taps' products in k order,
   multiply-adds as dc_gemm's: the same bits as both kernels. */
#define OC_TAPS_MAX 16
#define OC_TAPS_FR 8 /* filters a pass: 8 chains (16 spilled: 0.83x the speed at stride 2);
                        oc_packed's Mp (tiles of 32 or 64) a multiple */
#if DN_X86
/* Columns cs apart (a constant: 1, or 2 with rows sh apart). At cs 2 a tap's L inputs, every
   second column, are two masked loads and a permute that keeps the even lanes (EVEN); the
   loads read the columns up to the last position's tap, 2 * (n - 1) past the first, no
   further (the row's end). Lanes past n (< L) are loaded as zeros and never stored. */
#define OC_TAPS(SUF, T, V, MASK, L, S, EVEN)                                                \
DN_TARGET_AVX512 static inline __attribute__((always_inline)) void oc_taps_##SUF##_k(       \
        const int cs, const int K, const int32_t* __restrict off, const T* __restrict wp,   \
        const T* __restrict bias, ptrdiff_t M, ptrdiff_t nc, const T* __restrict xp,        \
        ptrdiff_t Wp, ptrdiff_t sh, ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res,    \
        int relu, T* __restrict out) {                                                      \
    const ptrdiff_t Q = Ho * Wo;                                                            \
    const V zero = _mm512_setzero_##S();                                                    \
    const __m512i even = EVEN;                                                              \
    for (ptrdiff_t oh = 0; oh < Ho; oh++)                                                   \
        for (ptrdiff_t j0 = 0; j0 < Wo; j0 += L) {                                          \
            const ptrdiff_t n = Wo - j0 >= L ? L : Wo - j0, e = 2 * n - 1; /* cs 2 reads e */ \
            const MASK mk = (MASK)(n == L ? ~0ull : (1ull << n) - 1);                       \
            const MASK lo = (MASK)(e >= L ? ~0ull : (1ull << e) - 1);                       \
            const MASK hi = (MASK)(e >= 2 * L ? ~0ull : e > L ? (1ull << (e - L)) - 1 : 0); \
            /* each stride's own form: one for both compiled to other code (-fwrapv) */     \
            const T* __restrict xr =                                                        \
                cs == 1 ? xp + oh * Wp + j0 : xp + oh * sh * Wp + 2 * j0;                   \
            V xv[OC_TAPS_MAX];                                                              \
            _Pragma("GCC unroll 16")                                                        \
            for (int k = 0; k < K; k++)                                                     \
                xv[k] = cs == 1 ? _mm512_maskz_loadu_##S(mk, xr + off[k])                   \
                    : _mm512_permutex2var_##S(_mm512_maskz_loadu_##S(lo, xr + off[k]), even, \
                                              _mm512_maskz_loadu_##S(hi, xr + off[k] + L)); \
            const ptrdiff_t o = oh * Wo + j0;                                               \
            for (ptrdiff_t m0 = 0; m0 < M; m0 += OC_TAPS_FR) {                              \
                V acc[OC_TAPS_FR]; /* independent chains: one alone waits out each latency */ \
                const T* __restrict wt = wp + m0 / nc * K * nc + m0 % nc; /* one tile's */  \
                for (int r = 0; r < OC_TAPS_FR; r++)                                        \
                    acc[r] = _mm512_set1_##S(bias[m0 + r]);                                 \
                _Pragma("GCC unroll 16")                                                    \
                for (int k = 0; k < K; k++, wt += nc) /* tap k's weights: nc apart */       \
                    for (int r = 0; r < OC_TAPS_FR; r++)                                    \
                        acc[r] = _mm512_fmadd_##S(_mm512_set1_##S(wt[r]), xv[k], acc[r]);   \
                for (int r = 0; r < OC_TAPS_FR; r++) /* all chains done here: GCC sank */   \
                    __asm__("" : "+v"(acc[r])); /* each into the stores below, one by one */ \
                for (int r = 0; r < OC_TAPS_FR && m0 + r < M; r++) {                        \
                    V v = acc[r];                                                           \
                    T* __restrict dst = out + (m0 + r) * Q + o;                             \
                    if (res)                                                                \
                        v = _mm512_add_##S(v, _mm512_maskz_loadu_##S(mk, res + (m0 + r) * Q + o)); \
                    if (relu) /* zero where < 0: NaN and -0.0 kept, as DC_RELU1 */          \
                        v = _mm512_maskz_mov_##S(_mm512_cmp_##S##_mask(v, zero, _CMP_NLT_UQ), v); \
                    _mm512_mask_storeu_##S(dst, mk, v);                                     \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
}                                                                                           \
DN_TARGET_AVX512 static void oc_taps_##SUF(int K, const int32_t* off, const T* wp,          \
        const T* bias, ptrdiff_t M, ptrdiff_t nc, const T* xp, ptrdiff_t Wp, ptrdiff_t Ho,  \
        ptrdiff_t Wo, const T* res, int relu, T* out) {                                     \
    switch (K) { /* each count its own unrolled loops: the K vectors stay in registers */   \
    case 1: OC_TAPS_K(SUF, 1, 1, 1);                                                        \
    case 2: OC_TAPS_K(SUF, 1, 1, 2);                                                        \
    case 3: OC_TAPS_K(SUF, 1, 1, 3);                                                        \
    case 4: OC_TAPS_K(SUF, 1, 1, 4);                                                        \
    case 6: OC_TAPS_K(SUF, 1, 1, 6);                                                        \
    case 8: OC_TAPS_K(SUF, 1, 1, 8);                                                        \
    case 9: OC_TAPS_K(SUF, 1, 1, 9);                                                        \
    case 12: OC_TAPS_K(SUF, 1, 1, 12);                                                      \
    case 16: OC_TAPS_K(SUF, 1, 1, 16);                                                      \
    default: OC_TAPS_K(SUF, 1, 1, K);                                                       \
    }                                                                                       \
}                                                                                           \
DN_TARGET_AVX512 static void oc_taps2_##SUF(int K, const int32_t* off, const T* wp,         \
        const T* bias, ptrdiff_t M, ptrdiff_t nc, const T* xp, ptrdiff_t Wp, ptrdiff_t sh,  \
        ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, T* out) {                       \
    switch (K) {                                                                            \
    case 16: OC_TAPS_K(SUF, 2, sh, 16);                                                     \
    case 8: OC_TAPS_K(SUF, 2, sh, 8);                                                       \
    case 4: OC_TAPS_K(SUF, 2, sh, 4);                                                       \
    default: OC_TAPS_K(SUF, 2, sh, K);                                                      \
    }                                                                                       \
}
#define OC_TAPS_K(SUF, CS, SH, K)                                                           \
    oc_taps_##SUF##_k(CS, K, off, wp, bias, M, nc, xp, Wp, SH, Ho, Wo, res, relu, out); break
#pragma GCC diagnostic push /* xv[k] for k >= K is never read; GCC cannot tell */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
OC_TAPS(f, float, __m512, __mmask16, 16, ps,
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30))
OC_TAPS(d, double, __m512d, __mmask8, 8, pd, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14))
#pragma GCC diagnostic pop
#else /* never called: the caller takes them for AVX-512 alone */
#define OC_TAPS_STUB(SUF, T)                                                                \
static void oc_taps_##SUF(int K, const int32_t* off, const T* wp, const T* bias, ptrdiff_t M, \
                          ptrdiff_t nc, const T* xp, ptrdiff_t Wp, ptrdiff_t Ho, ptrdiff_t Wo, \
                          const T* res, int relu, T* out) {}                                \
static void oc_taps2_##SUF(int K, const int32_t* off, const T* wp, const T* bias,           \
                           ptrdiff_t M, ptrdiff_t nc, const T* xp, ptrdiff_t Wp,            \
                           ptrdiff_t sh, ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, \
                           T* out) {}
OC_TAPS_STUB(f, float)
OC_TAPS_STUB(d, double)
#endif

#define OC_DISPATCH(T, SUF)                                                                 \
static void oc_rows_##SUF(int isa, int nb, ptrdiff_t K, const int32_t* off, const T* wp,    \
                          const T* bias, ptrdiff_t Mp, const T* xp, ptrdiff_t Wp,           \
                          ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t oh0, ptrdiff_t oh1,         \
                          ptrdiff_t Wo, T* grid) {                                          \
    const ptrdiff_t L = dc_wide_lanes(isa, sizeof(T) == 8);                                      \
    DC_PICK512(oc_rows_##SUF, (nb, K, off, wp, bias, Mp, xp, Wp, sh, sw, oh0, oh1, Wo, grid, L)) \
}                                                                                           \
static void oc_out_##SUF(int isa, const T* grid, ptrdiff_t Mp, ptrdiff_t M, ptrdiff_t Q,    \
                         ptrdiff_t q0, ptrdiff_t q1, const T* res, int relu, T* out) {      \
    DC_PICK(oc_out_##SUF, (grid, Mp, M, Q, q0, q1, res, relu, out))                         \
}
OC_DISPATCH(float, f)
OC_DISPATCH(double, d)
#endif
