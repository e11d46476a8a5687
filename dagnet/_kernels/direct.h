/* Direct convolution: the loops of dagnet/_kernels/direct.pyx (see there for the whole method).

   The input of one sample is laid out once as "planes": padded, and for a stride s split into
   its s x s phases (plane (c, rh, rw)[a][b] = xpad[c][a*s + rh][b*s + rw]), each plane Hq x Wq
   values, one after the other. Then every tap (c, i, j) of the kernel reads, for the output
   pixel at flat position q = oh*Wq + ow, the value src[off[k] + q] with one offset per tap:
   off[k] = plane(c, i % s, j % s)*Hq*Wq + (i / s)*Wq + j / s. The convolution is a matrix
   product whose second operand is never built: row k of it is src shifted by off[k]. The
   output is computed on the Ho x Wq grid (Wq >= Wo); the grid's columns past Wo read into the
   next row and are dropped (7% more work for 28 x 28 at pad 1). Where the output rows alone
   take fewer vectors (each row in ceil(Wo / L) of them), the forward computes those
   (dc_gemm_rows: LeNet's conv2, 8 outputs a row on a grid 12 wide, 1.36x faster at batch
   256; its conv1, 24 on 28, 1.03x), for float on AVX-512 two of those 8-float vectors to a
   register (dc_gemm_rows16: conv2 1.87x the grid's speed; the same numbers every way).

   dc_gemm: out[m][q] = bias[m] + sum_k w[k][m] * src[off[k] + q]   (the forward; the input
       gradient is the same product on the output gradient's planes, per phase)
   dc_dw:   part[m][k] += sum_q d[m][q] * src[off[k] + q], L lanes kept apart  (dw)
   dc_dwt:  part[k][m] += sum_q src[off[k] + q] * dT[q][m], vectors along m  (dw of more
       filters: below)

   Blocking (as a GEMM's micro-kernel): dc_gemm keeps a tile of DC_FR output channels x DC_NV
   vectors of positions in registers (12 accumulators; with the 3 loaded vectors and one
   broadcast weight that is the 16 registers of SSE2 and AVX2) while k runs over all taps: per
   tap DC_NV loads and DC_FR broadcasts feed 12 multiply-adds (the grid's last 1 or 2 vectors:
   a narrower tile); on AVX-512, DC_FR x DC_NV512 vectors of 16 floats (DC_GEMM512, the same
   bits). The weights are packed per tile of DC_FR channels (k-major, zero rows past M), so
   they stream in order. An inference conv's output pass (dc_rows, dc_pool: +
   skip, relu, pool) reads the grid out in vectors while it is in cache. dc_dw keeps DC_KR
   taps x DC_DB channels (12 accumulators, 3 loaded gradient vectors, one loaded source
   vector) while q runs over the sample's grid.
   Every sum runs in a fixed order, the same for any thread count. Inference's strided convs
   run direct_oc.h's kernels instead (vectorised along output channels: no phase planes, no
   grid columns past Wo; the same sums in the same order), ops/direct_oc.py uses_oc says which. */
#ifndef DAGNET_DIRECT_H
#define DAGNET_DIRECT_H
#include <string.h>

#include "isa.h"
#if DN_X86
#include <immintrin.h>
#endif

#define DC_FR 4 /* dc_gemm: output channels per tile */
#define DC_NV 3 /* dc_gemm: vectors of positions per tile (the tails: 2 or 1) */
#if defined(__GNUC__) && !defined(__clang__)
#define DC_UNROLL _Pragma("GCC unroll 4")
#else
#define DC_UNROLL
#endif
#define DC_KR 4 /* dc_dw: taps per tile */
#define DC_DB 3 /* dc_dw: channels per tile */
#define DC_DW_WIDE 6 /* dc_dw on AVX-512 (32 registers): channels per tile, then DC_DB */
/* keeps a loaded vector in a register (GCC otherwise reloads it from memory for each of its
   multiply-adds: more loads than the ports issue) */
#if DN_X86
#define DC_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define DC_IN_REGISTER(v) ((void)0)
#endif

/* Whether dc_gemm_out may take the output rows alone (1), in pairs on AVX-512 too (2), rows
   of whole 16-float vectors as one load each (3), or none (0) (direct.pyx set_rows: A/B
   measurements and the tests holding them together). */
static int dc_rows_on = 3;

/* The body of DC_TILE and DC_TILEV: the tiles of DC_FR channels x NV vectors of positions,
   read from s at off[k] and written to out (rows ldo apart), vector v at AT (an expression
   of v); the caller declares tiles, ceil(M / DC_FR). */
#define DC_TILES(T, V, VU, NV, AT)                                                          \
    for (ptrdiff_t t = 0; t < tiles; t++) {                                                 \
        const T* __restrict w = wp + t * K * DC_FR;                                         \
        V acc[DC_FR][NV];                                                                   \
        for (int r = 0; r < DC_FR; r++) {                                                   \
            const T b0 = bias ? bias[t * DC_FR + r] : (T)0;                                 \
            for (int v = 0; v < NV; v++)                                                    \
                acc[r][v] = (V){0} + b0;                                                    \
        }                                                                                   \
        DC_UNROLL /* measured: 4 taps a trip ran 1.00-1.16x the speed of 1, 2 and 8 less */ \
        for (ptrdiff_t k = 0; k < K; k++, w += DC_FR) {                                     \
            const T* __restrict sk = s + off[k];                                            \
            V x[NV];                                                                        \
            for (int v = 0; v < NV; v++)                                                    \
                x[v] = *(const VU*)(sk + (AT));                                             \
            for (int r = 0; r < DC_FR; r++) {                                               \
                const V wr = (V){0} + w[r];                                                 \
                for (int v = 0; v < NV; v++)                                                \
                    acc[r][v] += wr * x[v];                                                 \
            }                                                                               \
        }                                                                                   \
        const ptrdiff_t rows = M - t * DC_FR < DC_FR ? M - t * DC_FR : DC_FR;               \
        for (ptrdiff_t r = 0; r < rows; r++)                                                \
            for (int v = 0; v < NV; v++)                                                    \
                *(VU*)(out + (t * DC_FR + r) * ldo + (AT)) = acc[r][v];                     \
    }

/* out[m][q0 + q] for m < M (rows ldo apart), q < NV*L: the tiles of DC_FR channels x NV
   vectors of positions at q0 (src and out already moved there). */
#define DC_TILE(NAME, ATTR, T, V, VU, L, NV)                                                \
ATTR static inline void NAME(ptrdiff_t M, ptrdiff_t K, const int32_t* __restrict off,       \
                             const T* __restrict wp, const T* __restrict bias,              \
                             const T* __restrict s, T* __restrict out, ptrdiff_t ldo) {     \
    const ptrdiff_t tiles = (M + DC_FR - 1) / DC_FR;                                        \
    DC_TILES(T, V, VU, NV, v * L)                                                           \
}

/* out[m][q] for m < M (rows ldo apart), q < Qr (a multiple of L); wp: ceil(M / DC_FR)
   tiles of K x DC_FR weights; bias: ceil(M / DC_FR)*DC_FR values, or NULL for none; src is
   read at off[k] + q for every k < K, q < Qr. Whole tiles of DC_NV vectors, then the grid's
   last one or two vectors in a narrower tile (each value the same sum, in the same order:
   the grid needs no rounding to whole tiles, which was 7% of a 14 x 14 conv's). */
#define DC_GEMM(NAME, ATTR, T, V, VU, L)                                                    \
DC_TILE(NAME##_t3, ATTR, T, V, VU, L, DC_NV)                                                \
DC_TILE(NAME##_t2, ATTR, T, V, VU, L, 2)                                                    \
DC_TILE(NAME##_t1, ATTR, T, V, VU, L, 1)                                                    \
ATTR static void NAME(ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr, const int32_t* __restrict off, \
                      const T* __restrict wp, const T* __restrict bias,                     \
                      const T* __restrict src, T* __restrict out, ptrdiff_t ldo) {          \
    ptrdiff_t q0 = 0;                                                                       \
    for (; q0 + DC_NV * L <= Qr; q0 += DC_NV * L)                                           \
        NAME##_t3(M, K, off, wp, bias, src + q0, out + q0, ldo);                            \
    if (Qr - q0 >= 2 * L)                                                                   \
        NAME##_t2(M, K, off, wp, bias, src + q0, out + q0, ldo);                            \
    else if (Qr - q0 >= L)                                                                  \
        NAME##_t1(M, K, off, wp, bias, src + q0, out + q0, ldo);                            \
}

/* part[m][k][:L] += the L lane sums of d[m][q] * src[off[k] + q] over q < Qr, for m0 <= m <
   m0 + DB (rows of d ldd apart) and k < Kr (a multiple of DC_KR): one tile row of dc_dw. Qr:
   whole vectors, or (AVX-512, whose dw vectors are twice the forward's, to which the grid
   is rounded) a last half vector, read into a zeroed one (nothing read past Qr). */
#define DC_DW_ROWS(NAME, ATTR, T, V, VU, L, DB, HALF)                                           \
ATTR static inline void NAME(ptrdiff_t m0, ptrdiff_t Kr, ptrdiff_t Qr,                      \
                             const int32_t* __restrict off, const T* __restrict d,          \
                             ptrdiff_t ldd, const T* __restrict src, T* __restrict part) {  \
    for (ptrdiff_t k0 = 0; k0 < Kr; k0 += DC_KR) {                                          \
        V acc[DC_KR][DB];                                                                   \
        const T* __restrict sk[DC_KR];                                                      \
        for (int c = 0; c < DC_KR; c++) {                                                   \
            sk[c] = src + off[k0 + c];                                                      \
            for (int r = 0; r < DB; r++)                                                    \
                acc[c][r] = (V){0};                                                         \
        }                                                                                   \
        const T* __restrict dm = d + m0 * ldd;                                              \
        ptrdiff_t q = 0;                                                                    \
        for (; q + L <= Qr; q += L) {                                                       \
            V dv[DB];                                                                       \
            for (int r = 0; r < DB; r++)                                                    \
                dv[r] = *(const VU*)(dm + r * ldd + q);                                     \
            for (int c = 0; c < DC_KR; c++) {                                               \
                V sv = *(const VU*)(sk[c] + q);                                             \
                DC_IN_REGISTER(sv);                                                         \
                for (int r = 0; r < DB; r++)                                                \
                    acc[c][r] += sv * dv[r];                                                \
            }                                                                               \
        }                                                                                   \
        if (q < Qr) { /* the last half vector, zeros above */                               \
            V dv[DB];                                                                       \
            for (int r = 0; r < DB; r++)                                                    \
                dv[r] = HALF(V, dm + r * ldd + q);                                               \
            for (int c = 0; c < DC_KR; c++) {                                               \
                const V sv = HALF(V, sk[c] + q);                                                 \
                for (int r = 0; r < DB; r++)                                                \
                    acc[c][r] += sv * dv[r];                                                \
            }                                                                               \
        }                                                                                   \
        for (int c = 0; c < DC_KR; c++)                                                     \
            for (int r = 0; r < DB; r++)                                                    \
                *(VU*)(part + ((m0 + r) * Kr + k0 + c) * L) += acc[c][r];                   \
    }                                                                                       \
}

/* The tile of DC_TILE at NV vectors of positions anywhere in the grid, vector v at
   q[v] (src and out read and written there): dc_gemm_rows's, which skips the grid's
   columns past Wo. The same sums, in the same order, as DC_TILE's. */
#define DC_TILEV(NAME, ATTR, T, V, VU, L, NV)                                               \
ATTR static inline void NAME(ptrdiff_t M, ptrdiff_t K, const int32_t* __restrict off,      \
                             const T* __restrict wp, const T* __restrict bias,             \
                             const T* __restrict s, const ptrdiff_t* q,                     \
                             T* __restrict out, ptrdiff_t ldo) {                            \
    const ptrdiff_t tiles = (M + DC_FR - 1) / DC_FR;                                        \
    ptrdiff_t at[NV];                                                                       \
    for (int v = 0; v < NV; v++)                                                            \
        at[v] = q[v];                                                                       \
    DC_TILES(T, V, VU, NV, at[v])                                                           \
}

/* dc_gemm's out[m][q] for the grid's positions q = oh*Wq + ow, oh < Ho, ow < Wo only
   (Wo >= L): each output row in ceil(Wo / L) vectors, the last ending at Wo (it computes
   some values twice, the same), DC_NV vectors a tile, across rows. The forward's choice
   where that is fewer vectors than the whole grid (dc_gemm_out): LeNet's conv2 (12 x 12 ->
   8 x 8, Wq 12) 8 vectors a channel for 12. Every value the same sum, in the same order. */
#define DC_GEMM_ROWS(NAME, ATTR, T, V, VU, L)                                               \
DC_TILEV(NAME##_t3, ATTR, T, V, VU, L, DC_NV)                                               \
DC_TILEV(NAME##_t2, ATTR, T, V, VU, L, 2)                                                   \
DC_TILEV(NAME##_t1, ATTR, T, V, VU, L, 1)                                                   \
ATTR static void NAME(ptrdiff_t M, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t Wq,   \
                      const int32_t* __restrict off, const T* __restrict wp,               \
                      const T* __restrict bias, const T* __restrict src,                   \
                      T* __restrict out, ptrdiff_t ldo) {                                   \
    const ptrdiff_t per = (Wo + L - 1) / L, total = Ho * per;                               \
    for (ptrdiff_t i = 0; i < total; i += DC_NV) {                                          \
        ptrdiff_t q[DC_NV];                                                                 \
        const ptrdiff_t nv = total - i < DC_NV ? total - i : DC_NV;                         \
        for (ptrdiff_t v = 0; v < nv; v++) {                                                \
            const ptrdiff_t ow = (i + v) % per * L;                                         \
            q[v] = (i + v) / per * Wq + (ow + L <= Wo ? ow : Wo - L);                       \
        }                                                                                   \
        if (nv == DC_NV)                                                                    \
            NAME##_t3(M, K, off, wp, bias, src, q, out, ldo);                               \
        else if (nv == 2)                                                                   \
            NAME##_t2(M, K, off, wp, bias, src, q, out, ldo);                               \
        else                                                                                \
            NAME##_t1(M, K, off, wp, bias, src, q, out, ldo);                               \
    }                                                                                       \
}

#if DN_X86
#include <immintrin.h>
/* dc_gemm_rows for float on AVX-512: its vectors of 8 positions two to a 16-float register
   (each half loaded where it lies and stored back there), so that a multiply-add does 16:
   the same values as the AVX2 variant's, each the same sum in the same order (its 8-wide
   vectors, its k loop), twice as many a multiply-add. Vectors q[2v], q[2v + 1] of NV pairs;
   two tiles of DC_FR filters at once (8 x NV accumulators of AVX-512's 32 registers: LeNet's
   conv2 per sample 32.0 us against 37.7 with one tile, single thread, best of 2,000). */
#define DC_TILE16_CH(NAME, NV, CH, WHOLE)                                                   \
DN_TARGET_AVX512 static inline void NAME(ptrdiff_t t, ptrdiff_t M, ptrdiff_t K,             \
                                              const int32_t* __restrict off,                \
                                              const float* __restrict wp,                   \
                                              const float* __restrict bias,                 \
                                              const float* __restrict s,                    \
                                              const ptrdiff_t* lo, const ptrdiff_t* hi,     \
                                              float* __restrict out, ptrdiff_t ldo) {       \
    const float* __restrict w0 = wp + t * K * DC_FR;                                        \
    const float* __restrict w1 = w0 + K * DC_FR; /* the next tile's (CH 8) */               \
    dn_f16 acc[CH][NV];                                                                     \
    for (int r = 0; r < CH; r++) {                                                          \
        const float b0 = bias ? bias[t * DC_FR + r] : 0.0f;                                 \
        for (int v = 0; v < NV; v++)                                                        \
            acc[r][v] = (dn_f16){0} + b0;                                                   \
    }                                                                                       \
    DC_UNROLL                                                                               \
    for (ptrdiff_t k = 0; k < K; k++, w0 += DC_FR, w1 += DC_FR) {                           \
        const float* __restrict sk = s + off[k];                                            \
        dn_f16 x[NV];                                                                       \
        for (int v = 0; v < NV; v++)                                                        \
            x[v] = WHOLE ? (dn_f16)_mm512_loadu_ps(sk + lo[v])                              \
                         : (dn_f16)_mm512_insertf64x4(                                      \
                _mm512_castpd256_pd512(_mm256_loadu_pd((const double*)(sk + lo[v]))),      \
                _mm256_loadu_pd((const double*)(sk + hi[v])), 1);                           \
        for (int r = 0; r < CH; r++) {                                                      \
            const dn_f16 wr = (dn_f16){0} + (r < DC_FR ? w0[r] : w1[r - DC_FR]);            \
            for (int v = 0; v < NV; v++)                                                    \
                acc[r][v] += wr * x[v];                                                     \
        }                                                                                   \
    }                                                                                       \
    const ptrdiff_t rows = M - t * DC_FR < CH ? M - t * DC_FR : CH;                         \
    for (ptrdiff_t r = 0; r < rows; r++)                                                    \
        for (int v = 0; v < NV; v++) {                                                      \
            float* o = out + (t * DC_FR + r) * ldo;                                         \
            const __m512d a = (__m512d)acc[r][v];                                           \
            if (WHOLE) {                                                                    \
                _mm512_storeu_pd((double*)(o + lo[v]), a);                                  \
                continue;                                                                   \
            }                                                                               \
            _mm256_storeu_pd((double*)(o + lo[v]), _mm512_castpd512_pd256(a));              \
            _mm256_storeu_pd((double*)(o + hi[v]), _mm512_extractf64x4_pd(a, 1));           \
        }                                                                                   \
}
#define DC_TILE16(NAME, NV, WHOLE)                                                          \
DC_TILE16_CH(NAME##_8, NV, 2 * DC_FR, WHOLE)                                                \
DC_TILE16_CH(NAME##_4, NV, DC_FR, WHOLE)                                                    \
DN_TARGET_AVX512 static inline void NAME(ptrdiff_t M, ptrdiff_t K, const int32_t* __restrict off, \
                                         const float* __restrict wp,                       \
                                         const float* __restrict bias,                     \
                                         const float* __restrict s, const ptrdiff_t* q,    \
                                         float* __restrict out, ptrdiff_t ldo) {           \
    const ptrdiff_t tiles = (M + DC_FR - 1) / DC_FR;                                        \
    ptrdiff_t lo[NV], hi[NV], t = 0;                                                        \
    for (int v = 0; v < NV; v++) {                                                          \
        lo[v] = q[2 * v];                                                                   \
        hi[v] = q[2 * v + 1];                                                               \
    }                                                                                       \
    for (; t + 1 < tiles; t += 2) /* two tiles of filters at once: 8 x NV accumulators */   \
        NAME##_8(t, M, K, off, wp, bias, s, lo, hi, out, ldo);                              \
    if (t < tiles)                                                                          \
        NAME##_4(t, M, K, off, wp, bias, s, lo, hi, out, ldo);                              \
}
#define DC_NV16 3 /* dc_gemm_rows16: pairs of vectors per tile */
DC_TILE16(dc_gemm_rows16_t3, DC_NV16, 0)
DC_TILE16(dc_gemm_rows16_t2, 2, 0)
DC_TILE16(dc_gemm_rows16_t1, 1, 0)
/* rows of whole 16-float vectors (Wo a multiple of 16: each pair lies in one row, its halves
   adjacent): one 16-float load and store for the pair, no insert (dc_rows_on 3). Single
   thread, CPU time, batch 64, alternating with the pairs, 2 x 21 rounds, load 6: resnet20's
   16-channel 32 x 32 forward 1.07-1.09x, its stem (3 -> 16) 1.07-1.17x; the same bits */
DC_TILE16(dc_gemm_rows16w_t3, DC_NV16, 1)
DC_TILE16(dc_gemm_rows16w_t2, 2, 1)
DC_TILE16(dc_gemm_rows16w_t1, 1, 1)

/* dc_gemm_rows_f_avx2's product (its vectors of 8 positions, in the same order) in pairs. */
DN_TARGET_AVX512 static void dc_gemm_rows16(ptrdiff_t M, ptrdiff_t K, ptrdiff_t Ho, ptrdiff_t Wo,
                                            ptrdiff_t Wq, const int32_t* __restrict off,
                                            const float* __restrict wp,
                                            const float* __restrict bias,
                                            const float* __restrict src, float* __restrict out,
                                            ptrdiff_t ldo) {
    const ptrdiff_t per = (Wo + 7) / 8, total = Ho * per;
    for (ptrdiff_t i = 0; i < total; i += 2 * DC_NV16) {
        ptrdiff_t q[2 * DC_NV16];
        const ptrdiff_t n = total - i < 2 * DC_NV16 ? total - i : 2 * DC_NV16;
        for (ptrdiff_t v = 0; v < 2 * DC_NV16; v++) {
            const ptrdiff_t j = i + (v < n ? v : n - 1); /* an odd last: its vector twice */
            const ptrdiff_t ow = j % per * 8;
            q[v] = j / per * Wq + (ow + 8 <= Wo ? ow : Wo - 8);
        }
        if (Wo % 16 == 0 && dc_rows_on > 2) {
            if (n > 4)
                dc_gemm_rows16w_t3(M, K, off, wp, bias, src, q, out, ldo);
            else if (n > 2)
                dc_gemm_rows16w_t2(M, K, off, wp, bias, src, q, out, ldo);
            else
                dc_gemm_rows16w_t1(M, K, off, wp, bias, src, q, out, ldo);
        } else if (n > 4)
            dc_gemm_rows16_t3(M, K, off, wp, bias, src, q, out, ldo);
        else if (n > 2)
            dc_gemm_rows16_t2(M, K, off, wp, bias, src, q, out, ldo);
        else
            dc_gemm_rows16_t1(M, K, off, wp, bias, src, q, out, ldo);
    }
}
#endif

/* dc_dw: part[m][k][:L] += the L lane sums of d[m][q] * src[off[k] + q] over q < Qr (whole
   vectors, or on AVX-512 a last half one), for m < Mr (a multiple of DC_DB; rows of d ldd
   apart) and k < Kr (a multiple of DC_KR); the lanes are summed later, in order. Tiles of
   WIDE channels (a multiple of DC_DB), the rest in tiles of DC_DB. */
#define DC_DW(NAME, ATTR, T, V, VU, L, WIDE, HALF)                                          \
DC_DW_ROWS(NAME##_wide, ATTR, T, V, VU, L, WIDE, HALF)                                      \
DC_DW_ROWS(NAME##_rows, ATTR, T, V, VU, L, DC_DB, HALF)                                     \
ATTR static void NAME(ptrdiff_t Mr, ptrdiff_t Kr, ptrdiff_t Qr, const int32_t* __restrict off, \
                      const T* __restrict d, ptrdiff_t ldd, const T* __restrict src,        \
                      T* __restrict part) {                                                 \
    ptrdiff_t m0 = 0;                                                                       \
    for (; m0 + (WIDE) <= Mr; m0 += (WIDE))                                                 \
        NAME##_wide(m0, Kr, Qr, off, d, ldd, src, part);                                    \
    for (; m0 < Mr; m0 += DC_DB)                                                            \
        NAME##_rows(m0, Kr, Qr, off, d, ldd, src, part);                                    \
}

/* dc_dwt: part[k][m] += sum over oh < Ho, ow < Wo of src[off[k] + oh*Wq + ow] * dT[oh*Wo + ow][m]
   for m < Mp (a multiple of 2L; dT's rows Mp apart, zeros past the filters) and k < Kr (a
   multiple of DC_KT2): dw vectorised along the output channels (dout transposed), each tap's
   source value broadcast. Tiles of 4 vectors of channels x DC_KT2 / 2 taps, then 2 x DC_KT2
   (24 accumulators, the part's tile loaded at its start and stored at its end: the sums run
   over the samples in order, then the positions in order, with no lanes to add later). Why:
   dc_dw loads a gradient vector per channel and a source vector per tap for every 16
   positions and adds its lanes' partial sums per sample; here 2 (4) gradient vectors and 12
   (6) broadcasts feed 24 multiply-adds, on the output's positions alone (no grid columns past
   Wo). Measured single-thread against dc_dw (AVX-512, 16 lanes): 32 channels at 14 x 14
   1.4x, 32 -> 64 at 8 x 8 2.6x; 16 channels (one vector, a broadcast per multiply-add) 0.6x:
   ops/direct.py uses_dwt keeps those on dc_dw. */
#define DC_KT2 12
#define DC_DWT_TILE(NAME, ATTR, T, V, VU, L, MV, KT)                                        \
ATTR static inline void NAME(ptrdiff_t m0, ptrdiff_t Mp, ptrdiff_t Kr, ptrdiff_t Ho,       \
                             ptrdiff_t Wo, ptrdiff_t Wq, const int32_t* __restrict off,    \
                             const T* __restrict dT, const T* __restrict src,              \
                             T* __restrict part) {                                          \
    for (ptrdiff_t k0 = 0; k0 < Kr; k0 += KT) {                                             \
        V acc[KT][MV];                                                                      \
        const T* __restrict sk[KT];                                                         \
        for (int c = 0; c < KT; c++) {                                                      \
            sk[c] = src + off[k0 + c];                                                      \
            for (int v = 0; v < MV; v++)                                                    \
                acc[c][v] = *(const VU*)(part + (k0 + c) * Mp + m0 + v * L);                \
        }                                                                                   \
        const T* __restrict dq = dT + m0;                                                   \
        for (ptrdiff_t oh = 0; oh < Ho; oh++) {                                             \
            for (ptrdiff_t q = oh * Wq; q < oh * Wq + Wo; q++, dq += Mp) {                  \
                V dv[MV];                                                                   \
                for (int v = 0; v < MV; v++) {                                              \
                    dv[v] = *(const VU*)(dq + v * L);                                       \
                    DC_IN_REGISTER(dv[v]);                                                  \
                }                                                                           \
                for (int c = 0; c < KT; c++) {                                              \
                    const T s = sk[c][q];                                                   \
                    for (int v = 0; v < MV; v++)                                            \
                        acc[c][v] += s * dv[v];                                             \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (int c = 0; c < KT; c++)                                                        \
            for (int v = 0; v < MV; v++)                                                    \
                *(VU*)(part + (k0 + c) * Mp + m0 + v * L) = acc[c][v];                      \
    }                                                                                       \
}
#define DC_DWT(NAME, ATTR, T, V, VU, L)                                                     \
DC_DWT_TILE(NAME##_4, ATTR, T, V, VU, L, 4, DC_KT2 / 2)                                     \
DC_DWT_TILE(NAME##_2, ATTR, T, V, VU, L, 2, DC_KT2)                                         \
ATTR static void NAME(ptrdiff_t Mp, ptrdiff_t Kr, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t Wq, \
                      const int32_t* __restrict off, const T* __restrict dT,                \
                      const T* __restrict src, T* __restrict part) {                        \
    ptrdiff_t m0 = 0;                                                                       \
    for (; m0 + 4 * L <= Mp; m0 += 4 * L)                                                   \
        NAME##_4(m0, Mp, Kr, Ho, Wo, Wq, off, dT, src, part);                               \
    for (; m0 < Mp; m0 += 2 * L)                                                            \
        NAME##_2(m0, Mp, Kr, Ho, Wo, Wq, off, dT, src, part);                               \
}

/* v = max(v, 0) for one value of type T (IS: the signed integer of its size), branch-free
   (relu's sign test mispredicts on real data) and keeping NaN, as np.maximum does. */
#define DC_RELU1(T, IS, v)                                                                  \
    do {                                                                                    \
        IS u_;                                                                              \
        memcpy(&u_, &(v), sizeof(T));                                                       \
        u_ &= (IS)0 - (IS)!((v) < 0);                                                       \
        memcpy(&(v), &u_, sizeof(T));                                                       \
    } while (0)

/* The relu mask of a vector (DC_RELU1's, lane by lane). */
#define DC_RELUV(V, I, v) ((V)((I)(v) & ~(I)((v) < (V){0})))

/* One output value: out[k] = val (+ res[k] if res), then DC_RELU1 if relu: the vectors'
   single add and mask, so a row's values come out the same whichever way they went. */
#define DC_ONE(T, IS, val, res, k, relu, out)                                               \
    do {                                                                                    \
        T one_ = (val);                                                                     \
        if (res)                                                                            \
            one_ = one_ + (res)[k];                                                         \
        if (relu)                                                                           \
            DC_RELU1(T, IS, one_);                                                          \
        (out)[k] = one_;                                                                    \
    } while (0)

/* out[m][oh][ow] = grid[m][oh*Wq + ow] (+ res[m][oh][ow] if res), then max(., 0) if relu,
   for m0 <= m < m1, oh < Ho, ow < Wo (rows of grid Qr apart): dc_gemm's grid read out into
   the conv's output while in cache. relu is a bit mask, not a jump (conv outputs' signs are
   random: a jump is mispredicted every other value), and keeps NaN, as np.maximum does. A
   row of at least L values is whole vectors, the last one ending at the row's end (it
   writes some values again, the same: out is neither grid nor res); a shorter row goes
   value by value, by the same steps. */
#define DC_ROWS(NAME, ATTR, T, V, VU, L, I, IS)                                             \
ATTR static inline V NAME##_one(const T* __restrict row, const T* __restrict res, int relu) { \
    V v = *(const VU*)row;                                                                  \
    if (res)                                                                                \
        v = v + *(const VU*)res;                                                            \
    if (relu)                                                                               \
        v = DC_RELUV(V, I, v);                                                              \
    return v;                                                                               \
}                                                                                           \
ATTR static void NAME(const T* __restrict g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0,      \
                      ptrdiff_t m1, ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res,     \
                      int relu, T* __restrict out) {                                        \
    for (ptrdiff_t m = m0; m < m1; m++)                                                     \
        for (ptrdiff_t oh = 0; oh < Ho; oh++) {                                             \
            const T* __restrict row = g + m * Qr + oh * Wq;                                 \
            const ptrdiff_t o = (m * Ho + oh) * Wo;                                         \
            const T* __restrict r = res ? res + o : NULL;                                   \
            if (Wo >= L) {                                                                  \
                for (ptrdiff_t ow = 0; ow < Wo; ow += L) {                                  \
                    const ptrdiff_t at = ow + L <= Wo ? ow : Wo - L;                        \
                    *(VU*)(out + o + at) = NAME##_one(row + at, r ? r + at : NULL, relu);   \
                }                                                                           \
                continue;                                                                   \
            }                                                                               \
            for (ptrdiff_t ow = 0; ow < Wo; ow++)                                           \
                DC_ONE(T, IS, row[ow], r, ow, relu, out + o);                               \
        }                                                                                   \
}

/* The pooled form of dc_rows: out[m][p][r] (Hp x Wp) = the max over the kh x kw window at
   row p*sh, column r*sw of the conv output (grid + res), then max(., 0) if relu; windows
   that do not overlap (sh >= kh, sw >= kw), so each window row's maximum over the window's
   rows overwrites its first row, in the grid (in vectors), then the row is pooled across
   (2-wide windows of stride 2, as LeNet's, in vectors too: even against odd values).
   A NaN wins its window (as in the pooling kernels) and relu keeps it; selects are bit
   masks. */
#if defined(__GNUC__) && !defined(__clang__)
#define DC_SHUFFLE 1 /* GCC's __builtin_shuffle; clang's spelling differs: its values one by one */
#define DC_SHUF(a, b, mask) __builtin_shuffle(a, b, mask)
#else
#define DC_SHUFFLE 0
#define DC_SHUF(a, b, mask) (a)
#endif
#define DC_POOL(NAME, ATTR, T, V, VU, L, I, IS, EVEN, ODD)                                  \
ATTR static void NAME(T* __restrict g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0, ptrdiff_t m1, \
                      ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res, int relu, int kh, \
                      int kw, int sh, int sw, ptrdiff_t Hp, ptrdiff_t Wp, T* __restrict out) { \
    const ptrdiff_t n = Wp * sw;                                                            \
    for (ptrdiff_t m = m0; m < m1; m++)                                                     \
        for (ptrdiff_t oh = 0; oh < Hp; oh++) {                                             \
            T* __restrict top = g + m * Qr + oh * sh * Wq;                                  \
            const ptrdiff_t o = (m * Ho + oh * sh) * Wo;                                    \
            for (int i = 0; i < kh; i++) {                                                  \
                const T* __restrict row = top + i * Wq;                                     \
                const T* __restrict rr = res ? res + o + i * Wo : NULL;                     \
                ptrdiff_t ow = 0;                                                           \
                for (; ow + L <= n; ow += L) {                                              \
                    V c = *(const VU*)(row + ow);                                           \
                    if (rr)                                                                 \
                        c = c + *(const VU*)(rr + ow);                                      \
                    if (i) {                                                                \
                        const V t = *(VU*)(top + ow);                                       \
                        const I gt = (I)(c > t) | (I)(c != c);                              \
                        c = (V)(((I)c & gt) | ((I)t & ~gt));                                \
                    }                                                                       \
                    *(VU*)(top + ow) = c;                                                   \
                }                                                                           \
                for (; ow < n; ow++) {                                                      \
                    T c = row[ow];                                                          \
                    if (rr)                                                                 \
                        c = c + rr[ow];                                                     \
                    if (i) {                                                                \
                        IS gt = (IS)0 - (IS)((c > top[ow]) | (c != c)), a, b;               \
                        memcpy(&a, &c, sizeof(T));                                          \
                        memcpy(&b, top + ow, sizeof(T));                                    \
                        a = (a & gt) | (b & ~gt);                                           \
                        memcpy(&c, &a, sizeof(T));                                          \
                    }                                                                       \
                    top[ow] = c;                                                            \
                }                                                                           \
            }                                                                               \
            T* __restrict dst = out + (m * Hp + oh) * Wp;                                   \
            ptrdiff_t ow = 0;                                                               \
            if (DC_SHUFFLE && kw == 2 && sw == 2) /* 2-wide windows: even vs odd values */  \
                for (; ow + L <= Wp; ow += L) {                                             \
                    const V a = *(VU*)(top + 2 * ow), b = *(VU*)(top + 2 * ow + L);        \
                    const V e = DC_SHUF(a, b, EVEN), c = DC_SHUF(a, b, ODD);                \
                    const I gt = (I)(c > e) | (I)(c != c);                                  \
                    V v = (V)(((I)c & gt) | ((I)e & ~gt));                                  \
                    if (relu)                                                               \
                        v = DC_RELUV(V, I, v);                                              \
                    *(VU*)(dst + ow) = v;                                                   \
                }                                                                           \
            for (; ow < Wp; ow++) {                                                         \
                T v = top[ow * sw];                                                         \
                for (int j = 1; j < kw; j++) {                                              \
                    const T c = top[ow * sw + j];                                           \
                    IS gt = (IS)0 - (IS)((c > v) | (c != c)), a, b;                         \
                    memcpy(&a, &c, sizeof(T));                                              \
                    memcpy(&b, &v, sizeof(T));                                              \
                    a = (a & gt) | (b & ~gt);                                               \
                    memcpy(&v, &a, sizeof(T));                                              \
                }                                                                           \
                if (relu)                                                                   \
                    DC_RELU1(T, IS, v);                                                     \
                dst[ow] = v;                                                                \
            }                                                                               \
        }                                                                                   \
}

/* dst[r][:n] = src[r][:n] for r < rows (rows lds and ldd values apart): a split conv's
   planes fill at width stride 1 (direct_split.pxi), a row in vectors, the last one ending at
   the row's end (writing some values again, the same), not a memcpy call per row (28 floats:
   the call cost more than the copy); a row shorter than L value by value. */
#define DC_COPY(NAME, ATTR, T, VU, L)                                                       \
ATTR static void NAME(const T* __restrict src, ptrdiff_t lds, ptrdiff_t rows, ptrdiff_t n,   \
                      T* __restrict dst, ptrdiff_t ldd) {                                   \
    for (ptrdiff_t r = 0; r < rows; r++, src += lds, dst += ldd) {                          \
        if (n < L) {                                                                        \
            for (ptrdiff_t i = 0; i < n; i++)                                               \
                dst[i] = src[i];                                                            \
            continue;                                                                       \
        }                                                                                   \
        for (ptrdiff_t i = 0; i < n; i += L) {                                              \
            const ptrdiff_t at = i + L <= n ? i : n - L;                                    \
            *(VU*)(dst + at) = *(const VU*)(src + at);                                      \
        }                                                                                   \
    }                                                                                       \
}

/* dc_dw's half vector at the grid's end, HALF(V, p): on AVX-512 a masked load (zeros above,
   nothing read past); the other variants' grids are whole vectors (never called) */
#define DC_NO_HALF(V, p) ((V){0})
#define DC_HALF_F16(V, p) ((V)_mm512_maskz_loadu_ps(0x00ff, (p)))
#define DC_HALF_D8(V, p) ((V)_mm512_maskz_loadu_pd(0x0f, (p)))
typedef int32_t dc_i4 __attribute__((vector_size(16)));
typedef int64_t dc_l2 __attribute__((vector_size(16)));
DC_GEMM(dc_gemm_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_COPY(dc_copy_f_portable, , float, dn_f4_u, 4)
DC_COPY(dc_copy_d_portable, , double, dn_d2_u, 2)
DC_GEMM(dc_gemm_d_portable, , double, dn_d2, dn_d2_u, 2)
DC_DW(dc_dw_f_portable, , float, dn_f4, dn_f4_u, 4, DC_DB, DC_NO_HALF)
DC_DW(dc_dw_d_portable, , double, dn_d2, dn_d2_u, 2, DC_DB, DC_NO_HALF)
DC_DWT(dc_dwt_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_DWT(dc_dwt_d_portable, , double, dn_d2, dn_d2_u, 2)
DC_GEMM_ROWS(dc_gemm_rows_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_GEMM_ROWS(dc_gemm_rows_d_portable, , double, dn_d2, dn_d2_u, 2)
DC_ROWS(dc_rows_f_portable, , float, dn_f4, dn_f4_u, 4, dc_i4, uint32_t)
DC_ROWS(dc_rows_d_portable, , double, dn_d2, dn_d2_u, 2, dc_l2, uint64_t)
DC_POOL(dc_pool_f_portable, , float, dn_f4, dn_f4_u, 4, dc_i4, uint32_t, ((dc_i4){0, 2, 4, 6}),
        ((dc_i4){1, 3, 5, 7}))
DC_POOL(dc_pool_d_portable, , double, dn_d2, dn_d2_u, 2, dc_l2, uint64_t, ((dc_l2){0, 2}),
        ((dc_l2){1, 3}))
#if DN_X86
typedef int32_t dc_i8 __attribute__((vector_size(32)));
typedef int64_t dc_l4 __attribute__((vector_size(32)));
DC_GEMM(dc_gemm_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_GEMM(dc_gemm_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DC_GEMM_ROWS(dc_gemm_rows_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_GEMM_ROWS(dc_gemm_rows_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DC_COPY(dc_copy_f_avx2, DN_TARGET_AVX2, float, dn_f8_u, 8)
DC_COPY(dc_copy_d_avx2, DN_TARGET_AVX2, double, dn_d4_u, 4)
DC_COPY(dc_copy_f_avx512, DN_TARGET_AVX512, float, dn_f16_u, 16)
typedef int32_t dc_i16 __attribute__((vector_size(64)));
typedef int64_t dc_l8 __attribute__((vector_size(64)));
DC_ROWS(dc_rows_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, dc_i16, uint32_t)
DC_ROWS(dc_rows_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8, dc_l8, uint64_t)
DC_COPY(dc_copy_d_avx512, DN_TARGET_AVX512, double, dn_d8_u, 8)
DC_DW(dc_dw_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, DC_DB, DC_NO_HALF)
DC_DW(dc_dw_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, DC_DB, DC_NO_HALF)
/* dw alone has an AVX-512 variant (16 float lanes, 24 accumulators in tiles of 6 channels
   x 4 taps): 1.13-1.6x AVX2's on grids of 224-1088 positions, 0.82x on 72 (ops/direct.py
   DW_WIDE_MIN_GRID keeps those on AVX2); dc_gemm's AVX-512 tiles: DC_GEMM512 below */
DC_DW(dc_dw_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, DC_DW_WIDE, DC_HALF_F16)
DC_DW(dc_dw_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8, DC_DW_WIDE, DC_HALF_D8)
DC_DWT(dc_dwt_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_DWT(dc_dwt_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DC_DWT(dc_dwt_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16)
DC_DWT(dc_dwt_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8)
DC_ROWS(dc_rows_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t)
DC_ROWS(dc_rows_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t)
DC_POOL(dc_pool_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t,
        ((dc_i8){0, 2, 4, 6, 8, 10, 12, 14}), ((dc_i8){1, 3, 5, 7, 9, 11, 13, 15}))
DC_POOL(dc_pool_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t,
        ((dc_l4){0, 2, 4, 6}), ((dc_l4){1, 3, 5, 7}))

/* dc_gemm on AVX-512: 32 registers hold tiles of DC_FR channels x DC_NV512 vectors of 16
   floats (24 accumulators, 6 loaded vectors, a broadcast), then the grid's last 1-5 such
   vectors in narrower tiles and, as Qr is a multiple of AVX2's 8 lanes only (the planes'
   geometry is AVX2's), a last half vector of 8. Each output value is the same sum in the same
   order as in the AVX2 tiles (bias, then the taps in k order, one multiply-add each): the
   results are bitwise the AVX2 variant's (ISA 1 runs those: the A/B). Measured in process,
   alternating, batch 64, 2 threads, load 6-7: the 16- and 32-channel 3x3 convs' forward
   1.56-1.74x faster, their backward (dx's products) 1.23-1.31x; training steps (9 rounds)
   resnet20 1.30x, resnet_small 1.26x, convnet_deep 1.16x. Tiles of 3 or 4 vectors ran within
   3% of 6 (resnet_small's batch-1 convs: 1.4-1.5x the AVX2 tiles). */
#define DC_NV512 6
#define DC_GEMM512(NAME, T, V, VU, L, VH, VHU)                                              \
DC_TILE(NAME##_t6, DN_TARGET_AVX512, T, V, VU, L, 6)                                        \
DC_TILE(NAME##_t5, DN_TARGET_AVX512, T, V, VU, L, 5)                                        \
DC_TILE(NAME##_t4, DN_TARGET_AVX512, T, V, VU, L, 4)                                        \
DC_TILE(NAME##_t3, DN_TARGET_AVX512, T, V, VU, L, 3)                                        \
DC_TILE(NAME##_t2, DN_TARGET_AVX512, T, V, VU, L, 2)                                        \
DC_TILE(NAME##_t1, DN_TARGET_AVX512, T, V, VU, L, 1)                                        \
DC_TILE(NAME##_h, DN_TARGET_AVX512, T, VH, VHU, L / 2, 1)                                   \
DN_TARGET_AVX512 static void NAME(ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr,                    \
                                  const int32_t* __restrict off, const T* __restrict wp,    \
                                  const T* __restrict bias, const T* __restrict src,        \
                                  T* __restrict out, ptrdiff_t ldo) {                       \
    ptrdiff_t q0 = 0;                                                                       \
    for (; q0 + DC_NV512 * L <= Qr; q0 += DC_NV512 * L)                                     \
        NAME##_t6(M, K, off, wp, bias, src + q0, out + q0, ldo);                            \
    const ptrdiff_t left = (Qr - q0) / L;                                                   \
    switch (left) {                                                                         \
    case 5: NAME##_t5(M, K, off, wp, bias, src + q0, out + q0, ldo); break;                 \
    case 4: NAME##_t4(M, K, off, wp, bias, src + q0, out + q0, ldo); break;                 \
    case 3: NAME##_t3(M, K, off, wp, bias, src + q0, out + q0, ldo); break;                 \
    case 2: NAME##_t2(M, K, off, wp, bias, src + q0, out + q0, ldo); break;                 \
    case 1: NAME##_t1(M, K, off, wp, bias, src + q0, out + q0, ldo); break;                 \
    default: break;                                                                         \
    }                                                                                       \
    q0 += left * L;                                                                         \
    if (Qr - q0 >= L / 2)                                                                   \
        NAME##_h(M, K, off, wp, bias, src + q0, out + q0, ldo);                             \
}
DC_GEMM512(dc_gemm_f_avx512, float, dn_f16, dn_f16_u, 16, dn_f8, dn_f8_u)
DC_GEMM512(dc_gemm_d_avx512, double, dn_d8, dn_d8_u, 8, dn_d4, dn_d4_u)
#endif

/* The vector width (values) of variant isa for T, which the planes' geometry (Qr) is rounded
   to: AVX2's for AVX-512 too (dc_gemm's AVX-512 tiles end on a half vector, dc_gemm_rows16
   pairs AVX2's vectors; dc_dw, direct_oc.h's tiles and Winograd's grids have their own,
   dc_wide_lanes; dc_pool runs as AVX2). */
static ptrdiff_t dc_lanes(int isa, int is_double) {
#if DN_X86
    if (isa >= DN_AVX2)
        return is_double ? 4 : 8;
#endif
    return is_double ? 2 : 4;
}

/* The vector width (values) of the kernels with 16-float AVX-512 variants for variant isa and
   T: dc_dw's (its partial sums' lanes), direct_oc.h's tiles (Mp is a multiple of it) and the
   Winograd grids' (their tile positions are rounded up to it). */
static ptrdiff_t dc_wide_lanes(int isa, int is_double) {
#if DN_X86
    if (isa >= DN_AVX512)
        return is_double ? 8 : 16;
#endif
    return dc_lanes(isa, is_double);
}

#if DN_X86
#define DC_PICK(NAME, ARGS)                                                                 \
    if (isa >= DN_AVX2) {                                                                   \
        NAME##_avx2 ARGS;                                                                   \
        return;                                                                             \
    }                                                                                       \
    NAME##_portable ARGS;
/* DC_PICK for a kernel with an AVX-512 variant (dc_gemm, dc_copy, dc_rows, dc_dw; direct_oc.h's
   and the Winograd grids) */
#define DC_PICK512(NAME, ARGS)                                                              \
    if (isa >= DN_AVX512) {                                                                 \
        NAME##_avx512 ARGS;                                                                 \
        return;                                                                             \
    }                                                                                       \
    DC_PICK(NAME, ARGS)
#else
#define DC_PICK(NAME, ARGS) NAME##_portable ARGS;
#define DC_PICK512(NAME, ARGS) NAME##_portable ARGS;
#endif

/* dc_gemm_out's float rows on AVX-512: dc_gemm_rows16, its vectors two to a register */
#if DN_X86
#define DC_ROWS16_f(...)                                                                    \
    if (isa >= DN_AVX512 && dc_rows_on > 1) {                                               \
        dc_gemm_rows16(__VA_ARGS__);                                                        \
        return;                                                                             \
    }
#else
#define DC_ROWS16_f(...)
#endif
#define DC_ROWS16_d(...)


#define DC_DISPATCH(T, SUF)                                                                 \
static void dc_gemm_##SUF(int isa, ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr, const int32_t* off, \
                          const T* wp, const T* bias, const T* src, T* out, ptrdiff_t ldo) { \
    DC_PICK512(dc_gemm_##SUF, (M, K, Qr, off, wp, bias, src, out, ldo))                     \
}                                                                                           \
static void dc_copy_##SUF(int isa, const T* src, ptrdiff_t lds, ptrdiff_t rows, ptrdiff_t n, \
                          T* dst, ptrdiff_t ldd) {                                          \
    DC_PICK512(dc_copy_##SUF, (src, lds, rows, n, dst, ldd))                                \
}                                                                                           \
/* dc_gemm's product, for the forward the output rows alone (dc_gemm_rows) where that is  \
   fewer vectors than the whole grid of Qr positions (Wo 0: the grid, as dx's products). */  \
static void dc_gemm_out_##SUF(int isa, ptrdiff_t M, ptrdiff_t K, ptrdiff_t Qr, ptrdiff_t Ho, \
                              ptrdiff_t Wo, ptrdiff_t Wq, const int32_t* off, const T* wp,  \
                              const T* bias, const T* src, T* out, ptrdiff_t ldo) {        \
    const ptrdiff_t L = dc_lanes(isa, sizeof(T) == 8);                                      \
    if (dc_rows_on && Wo >= L && Ho * ((Wo + L - 1) / L) < Qr / L) {                         \
        DC_ROWS16_##SUF(M, K, Ho, Wo, Wq, off, wp, bias, src, out, ldo)                     \
        DC_PICK(dc_gemm_rows_##SUF, (M, K, Ho, Wo, Wq, off, wp, bias, src, out, ldo))       \
        return;                                                                             \
    }                                                                                       \
    DC_PICK512(dc_gemm_##SUF, (M, K, Qr, off, wp, bias, src, out, ldo))                     \
}                                                                                           \
static void dc_dw_##SUF(int isa, ptrdiff_t Mr, ptrdiff_t Kr, ptrdiff_t Qr, const int32_t* off, \
                        const T* d, ptrdiff_t ldd, const T* src, T* part) {                 \
    DC_PICK512(dc_dw_##SUF, (Mr, Kr, Qr, off, d, ldd, src, part))                           \
}                                                                                           \
/* Mp: a multiple of 2 * dc_wide_lanes(isa) */                                              \
static void dc_dwt_##SUF(int isa, ptrdiff_t Mp, ptrdiff_t Kr, ptrdiff_t Ho, ptrdiff_t Wo,    \
                         ptrdiff_t Wq, const int32_t* off, const T* dT, const T* src,       \
                         T* part) {                                                         \
    DC_PICK512(dc_dwt_##SUF, (Mp, Kr, Ho, Wo, Wq, off, dT, src, part))                      \
}                                                                                           \
static void dc_rows_##SUF(int isa, const T* g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0,     \
                          ptrdiff_t m1, ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu,  \
                          T* out) {                                                         \
    if (Wo * (ptrdiff_t)sizeof(T) < 64) { /* rows narrower than a 64-byte vector: AVX2's */  \
        DC_PICK(dc_rows_##SUF, (g, Qr, Wq, m0, m1, Ho, Wo, res, relu, out))                 \
    } else {                                                                                \
        DC_PICK512(dc_rows_##SUF, (g, Qr, Wq, m0, m1, Ho, Wo, res, relu, out))              \
    }                                                                                       \
}                                                                                           \
static void dc_pool_##SUF(int isa, T* g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0, ptrdiff_t m1, \
                          ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, int kh, int kw, \
                          int sh, int sw, ptrdiff_t Hp, ptrdiff_t Wp, T* out) {             \
    DC_PICK(dc_pool_##SUF, (g, Qr, Wq, m0, m1, Ho, Wo, res, relu, kh, kw, sh, sw, Hp, Wp, out)) \
}
DC_DISPATCH(float, f)
DC_DISPATCH(double, d)

/* dc_transpose_f: dst[p*Mp + m] = src[m*P + p] for m < M, p < P (dout transposed for dc_dwt),
   on AVX-512 by 16 x 16 blocks in registers: 16 row loads, four stages of 16 two-vector
   shuffles (stage b swaps bit b of the row and column indices), 16 row stores; the channels
   and positions past the last whole block one by one. The scalar transpose (direct_backward.pxi)
   took 0.18x dc_dwt's time on convnet_deep's 32-channel 28 x 28 conv. Returns 0 where no such
   variant runs (the caller transposes). */
#if DN_X86 && DC_SHUFFLE
#define DC_TR_MASK(...) ((dc_i16){__VA_ARGS__})
#define DC_TR_STAGE(r, bit, MA, MB)                                                         \
    for (int i = 0; i < 16; i++)                                                            \
        if (!(i & (bit))) {                                                                 \
            const dn_f16 a = r[i], b = r[i | (bit)];                                        \
            r[i] = __builtin_shuffle(a, b, MA);                                             \
            r[i | (bit)] = __builtin_shuffle(a, b, MB);                                     \
        }
DN_TARGET_AVX512 static void dc_transpose_f_avx512(const float* __restrict src, ptrdiff_t M,
                                                   ptrdiff_t P, float* __restrict dst,
                                                   ptrdiff_t Mp) {
    const ptrdiff_t M16 = M / 16 * 16, P16 = P / 16 * 16;
    for (ptrdiff_t p0 = 0; p0 < P16; p0 += 16) {
        for (ptrdiff_t m0 = 0; m0 < M16; m0 += 16) {
            dn_f16 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = *(const dn_f16_u*)(src + (m0 + i) * P + p0);
            DC_TR_STAGE(r, 1, DC_TR_MASK(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                        DC_TR_MASK(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
            DC_TR_STAGE(r, 2, DC_TR_MASK(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                        DC_TR_MASK(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
            DC_TR_STAGE(r, 4, DC_TR_MASK(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                        DC_TR_MASK(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
            DC_TR_STAGE(r, 8, DC_TR_MASK(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                        DC_TR_MASK(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
            for (int i = 0; i < 16; i++)
                *(dn_f16_u*)(dst + (p0 + i) * Mp + m0) = r[i];
        }
        for (ptrdiff_t m = M16; m < M; m++)
            for (ptrdiff_t p = p0; p < p0 + 16; p++)
                dst[p * Mp + m] = src[m * P + p];
    }
    for (ptrdiff_t p = P16; p < P; p++)
        for (ptrdiff_t m = 0; m < M; m++)
            dst[p * Mp + m] = src[m * P + p];
}
#endif
static int dc_transpose_f(int isa, const float* src, ptrdiff_t M, ptrdiff_t P, float* dst,
                          ptrdiff_t Mp) {
#if DN_X86 && DC_SHUFFLE
    if (isa >= DN_AVX512) {
        dc_transpose_f_avx512(src, M, P, dst, Mp);
        return 1;
    }
#endif
    (void)src; (void)M; (void)P; (void)dst; (void)Mp; (void)isa;
    return 0;
}
#endif
