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
   tap DC_NV loads and DC_FR broadcasts feed 12 multiply-adds (the grid's last 1 or 2 vectors:
   a narrower tile). The weights are packed per tile of DC_FR channels (k-major, zero rows
   past M), so they stream in order. An inference conv's output pass (dc_rows, dc_pool: +
   skip, relu, pool) reads the grid out in vectors while it is in cache. dc_dw keeps DC_KR
   taps x DC_DB channels (12 accumulators, 3 loaded gradient vectors, one loaded source
   vector) while q runs over the sample's grid.
   Every sum runs in a fixed order, the same for any thread count. Inference's strided convs
   run direct_oc.h's kernels instead (vectorised along output channels: no phase planes, no
   grid columns past Wo; the same sums in the same order), ops/direct.py uses_oc says which. */
#ifndef DAGNET_DIRECT_H
#define DAGNET_DIRECT_H
#include <string.h>

#include "isa.h"

#define DC_FR 4 /* dc_gemm: output channels per tile */
#define DC_NV 3 /* dc_gemm: vectors of positions per tile (the tails: 2 or 1) */
#if defined(__GNUC__) && !defined(__clang__)
#define DC_UNROLL _Pragma("GCC unroll 4")
#else
#define DC_UNROLL
#endif
#define DC_KR 4 /* dc_dw: taps per tile */
#define DC_DB 3 /* dc_dw: channels per tile */

/* out[m][q0 + q] for m < M (rows ldo apart), q < NV*L: the tiles of DC_FR channels x NV
   vectors of positions at q0 (src and out already moved there). */
#define DC_TILE(NAME, ATTR, T, V, VU, L, NV)                                                \
ATTR static inline void NAME(ptrdiff_t M, ptrdiff_t K, const int32_t* __restrict off,      \
                             const T* __restrict wp, const T* __restrict bias,             \
                             const T* __restrict s, T* __restrict out, ptrdiff_t ldo) {    \
    const ptrdiff_t tiles = (M + DC_FR - 1) / DC_FR;                                        \
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
                x[v] = *(const VU*)(sk + v * L);                                            \
            for (int r = 0; r < DC_FR; r++) {                                               \
                const V wr = (V){0} + w[r];                                                 \
                for (int v = 0; v < NV; v++)                                                \
                    acc[r][v] += wr * x[v];                                                 \
            }                                                                               \
        }                                                                                   \
        const ptrdiff_t rows = M - t * DC_FR < DC_FR ? M - t * DC_FR : DC_FR;               \
        for (ptrdiff_t r = 0; r < rows; r++)                                                \
            for (int v = 0; v < NV; v++)                                                    \
                *(VU*)(out + (t * DC_FR + r) * ldo + v * L) = acc[r][v];                    \
    }                                                                                       \
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

typedef int32_t dc_i4 __attribute__((vector_size(16)));
typedef int64_t dc_l2 __attribute__((vector_size(16)));
DC_GEMM(dc_gemm_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_GEMM(dc_gemm_d_portable, , double, dn_d2, dn_d2_u, 2)
DC_DW(dc_dw_f_portable, , float, dn_f4, dn_f4_u, 4)
DC_DW(dc_dw_d_portable, , double, dn_d2, dn_d2_u, 2)
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
DC_DW(dc_dw_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DC_DW(dc_dw_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DC_ROWS(dc_rows_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t)
DC_ROWS(dc_rows_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t)
DC_POOL(dc_pool_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t,
        ((dc_i8){0, 2, 4, 6, 8, 10, 12, 14}), ((dc_i8){1, 3, 5, 7, 9, 11, 13, 15}))
DC_POOL(dc_pool_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t,
        ((dc_l4){0, 2, 4, 6}), ((dc_l4){1, 3, 5, 7}))
#endif

/* The vector width (values) of variant isa for T; AVX-512 runs the AVX2 variant (16 wide
   tiles would need other tile shapes) here; Winograd's grids and direct_oc.h's tiles have
   16-wide variants of their own (wg_lanes, oc_width). */
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
}                                                                                           \
static void dc_rows_##SUF(int isa, const T* g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0,     \
                          ptrdiff_t m1, ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu,  \
                          T* out) {                                                         \
    DC_PICK(dc_rows_##SUF, (g, Qr, Wq, m0, m1, Ho, Wo, res, relu, out))                     \
}                                                                                           \
static void dc_pool_##SUF(int isa, T* g, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t m0, ptrdiff_t m1, \
                          ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, int kh, int kw, \
                          int sh, int sw, ptrdiff_t Hp, ptrdiff_t Wp, T* out) {             \
    DC_PICK(dc_pool_##SUF, (g, Qr, Wq, m0, m1, Ho, Wo, res, relu, kh, kw, sh, sw, Hp, Wp, out)) \
}
DC_DISPATCH(float, f)
DC_DISPATCH(double, d)
#endif
