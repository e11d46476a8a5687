/* Winograd F(4x4, 3x3): an inference conv of 3x3 kernels at stride 1 in 36 products per
   4x4 block of outputs instead of 144 taps (4x fewer multiplies than the direct conv, against
   F(2x2, 3x3)'s 2.25x: winograd.h), for dagnet/_kernels/winograd.pxi.

   Each 4x4 block of outputs (a "tile") comes from the 6x6 block of the padded input under
   it: V = B^T d B per input channel, M[xi] = sum_c U[xi][m][c] * V[xi][c] for the 36
   positions xi, Y = A^T M A + bias, with (Lavin & Gray's points 0, +-1, +-2)
       B^T = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0  4 -4 -1 1 0;
              0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0  4  0 -5 0 1],
       A^T = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1],
   and U = G g G^T computed once in float64 (ops/winograd.py packed4). Both transforms run
   in their factorised form (WG4_BT, WG4_AT: shared sums and differences, then one scaled
   add each): 12 operations per column of 6 where the matrices take 20.

   The input: the sample's stride-4 phase planes, plane (c, rh, rw)[a][b] = xpad[c][4a + rh]
   [4b + rw], Hq x Wq each (Hq = ceil(Ho / 4) + 1, Wq = ceil(Wo / 4) + 1, zeros past the
   padded input). Tile (th, tw)'s value (i, j) is plane (c, i%4, j%4) at p + (i/4)*Wq + j/4,
   p = th*Wq + tw: a vector of L tiles is a vector of positions, loaded whole (winograd.h's
   scheme at stride 4). wg4_planes writes them a padded row at a time, 4L values split into
   their 4 phases by two rounds of shuffles (GCC).

   Per block of NV vectors of positions: the input transform of every channel into
   vb[xi][c][NV*L]; per tile of WG_FR output channels the 36 products [WG_FR x C] x
   [C x NV*L] in NV*WG_FR accumulators into mb, then the inverse transform into the output
   phase grid y[m][a*4 + b][p]; wg4_out reads y out into the conv's output (4 phases of a row
   interleaved by shuffles) with + skip and relu (a bit mask: NaN stays NaN), or the blocks
   do it themselves where wg_fuses (wg4_grid_out). Every output is
   the same sums in the same order whatever the batch, its split or the thread count.

   Rounding: the transforms' coefficients reach 8 (A^T) and 5 (B^T) and G's 1/6, 1/24 are
   not exact in binary: the error bound is the transforms on magnitudes (tests/ops/
   test_winograd.py), several times F(2x2)'s. NaN and Inf: a tile's outputs are sums over its
   whole 6x6 input, where exact arithmetic cancels the values outside an output's window; a
   NaN or Inf input makes NaN every output of the tiles that read it, not only those whose
   3x3 window holds it (a superset, as in every Winograd conv; F(2x2)'s matrices happen to
   keep it exact). */
#ifndef DAGNET_WINOGRAD4_H
#define DAGNET_WINOGRAD4_H
#include "winograd.h"

#define WG4_NV 3 /* vectors of positions per block at most (wg4_grid) */

/* t0..t5 = B^T (d0..d5), factorised */
#define WG4_BT(V, d0, d1, d2, d3, d4, d5, t)                                                \
    do {                                                                                    \
        const V e42_ = (d4) - (d2), e31_ = (d3) - (d1);                                     \
        (t)[0] = e42_ + 4 * ((d0) - (d2));                                         \
        (t)[1] = ((d3) + (d4)) - 4 * ((d1) + (d2));                                         \
        (t)[2] = ((d4) - (d3)) + 4 * ((d1) - (d2));                                         \
        (t)[3] = e42_ + 2 * e31_;                                                           \
        (t)[4] = e42_ - 2 * e31_;                                                           \
        (t)[5] = ((d5) - (d3)) + 4 * ((d1) - (d3));                                         \
    } while (0)

/* y0..y3 = A^T (m0..m5), factorised */
#define WG4_AT(V, m, y)                                                                     \
    do {                                                                                    \
        const V s12_ = (m)[1] + (m)[2], d12_ = (m)[1] - (m)[2];                             \
        const V s34_ = (m)[3] + (m)[4], d34_ = (m)[3] - (m)[4];                             \
        (y)[0] = ((m)[0] + s12_) + s34_;                                                    \
        (y)[1] = d12_ + 2 * d34_;                                                           \
        (y)[2] = s12_ + 4 * s34_;                                                           \
        (y)[3] = (d12_ + 8 * d34_) + (m)[5];                                                \
    } while (0)

/* One block of NV vectors of positions at q0 for all M channels: src the sample's planes
   (C channels of 16 planes, HW values each, rows Wq apart), u the transformed filters
   (36 x tiles x C x WG_FR), bias tiles*WG_FR values; vb (36*C*NV*L), mb (36*WG_FR*NV*L)
   scratch; y: (tiles*WG_FR, 16, Qr) output phase grid. */
#define WG4_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, STORE)                                     \
ATTR static inline void NAME(ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq,          \
                             ptrdiff_t Qr, ptrdiff_t q0, const T* __restrict src,           \
                             const T* __restrict u, const T* __restrict bias,               \
                             T* __restrict vb, T* __restrict mb, T* __restrict y,           \
                             const wg_epi* ep) {                                            \
    enum { B = NV * L };                                                                    \
    const ptrdiff_t tiles = (M + WG_FR - 1) / WG_FR;                                        \
    for (ptrdiff_t c = 0; c < C; c++) {                                                     \
        const T* __restrict s = src + c * 16 * HW + q0;                                     \
        for (int v = 0; v < NV; v++) {                                                      \
            V t[6][6];                                                                      \
            for (int j = 0; j < 6; j++) {                                                   \
                V d[6];                                                                     \
                for (int i = 0; i < 6; i++)                                                 \
                    d[i] = *(const VU*)(s + ((i & 3) * 4 + (j & 3)) * HW + (i >> 2) * Wq +  \
                                        (j >> 2) + v * L);                                  \
                V col[6];                                                                   \
                WG4_BT(V, d[0], d[1], d[2], d[3], d[4], d[5], col);                         \
                for (int i = 0; i < 6; i++)                                                 \
                    t[i][j] = col[i];                                                       \
            }                                                                               \
            for (int i = 0; i < 6; i++) {                                                   \
                V row[6];                                                                   \
                WG4_BT(V, t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], row);       \
                for (int j = 0; j < 6; j++)                                                 \
                    *(VU*)(vb + ((i * 6 + j) * C + c) * B + v * L) = row[j];                \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    for (ptrdiff_t tl = 0; tl < tiles; tl++) {                                              \
        WG_PRODUCTS(T, V, VU, L, NV, 36, C, tiles, tl, u, vb, mb);                          \
        for (int r = 0; r < WG_FR; r++) {                                                   \
            const T b0 = bias[tl * WG_FR + r];                                              \
            T* __restrict yo = y + (tl * WG_FR + r) * 16 * Qr + q0;                         \
            for (int v = 0; v < NV; v++) {                                                  \
                V s[4][6];                                                                  \
                for (int j = 0; j < 6; j++) {                                               \
                    V m[6], col[4];                                                         \
                    for (int i = 0; i < 6; i++)                                             \
                        m[i] = *(const VU*)(mb + ((i * 6 + j) * WG_FR + r) * B + v * L);    \
                    WG4_AT(V, m, col);                                                      \
                    for (int a = 0; a < 4; a++)                                             \
                        s[a][j] = col[a];                                                   \
                }                                                                           \
                for (int a = 0; a < 4; a++) {                                               \
                    V o[4];                                                                 \
                    WG4_AT(V, s[a], o);                                                     \
                    STORE(T, V, VU, L, o, b0, a, yo, Qr, v, tl * WG_FR + r, q0, Wq, ep);   \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

/* A block's outputs o[b] + b0 of phase row a into the output phase grid y (wg4_out reads
   it out) */
#define WG4_STORE_Y(T, V, VU, L, o, b0, a, yo, Qr, v, m, q0, Wq, ep)                        \
    for (int b_ = 0; b_ < 4; b_++)                                                          \
        *(VU*)((yo) + ((a) * 4 + b_) * (Qr) + (v) * (L)) = (o)[b_] + (b0)
#define WG4_BLOCK(NAME, ATTR, T, V, VU, L, NV) WG4_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, WG4_STORE_Y)

/* y (tiles*WG_FR, 16, Qr) of one sample: the grid's Qr / L vectors of positions in blocks
   of WG4_NV (3: 12 accumulators cover the multiply-adds' latency) and 2, a lone vector only
   when the grid has one (vb, mb: WG4_NV vectors' worth). */
#define WG4_WHOLE(n) ((n) > 4 || (n) == 3) /* 4 left: two blocks of 2 */
#define WG4_GRID(NAME, ATTR, T, V, VU, L) \
    WG_DRIVE(NAME, ATTR, T, V, VU, L, WG4_BLOCK, WG4_NV, WG4_WHOLE)

/* out[m][oh][ow] = y[m][(oh%4)*4 + ow%4][(oh/4)*Wq + ow/4] (+ res, relu), m < M, oh < Ho,
   ow < Wo: per row, L values of each of its 4 phase rows interleaved into 4L outputs by two
   rounds of shuffles (GCC; I01/I23 pair values, P0/P1 pairs of pairs), stored as whole
   vectors, also past the row's end (into the rows after it, which are written later, by
   the same thread), value by value only where a vector would end past the sample's output.
   y must have L values readable past its last row. */
#define WG4_OUT(NAME, ATTR, T, V, VU, L, I, IS, I01, I23, P0, P1)                           \
ATTR static void NAME(const T* __restrict y, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t M,        \
                      ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res, int relu,         \
                      T* __restrict out) {                                                  \
    const ptrdiff_t total = M * Ho * Wo;                                                    \
    for (ptrdiff_t m = 0; m < M; m++)                                                       \
        for (ptrdiff_t oh = 0; oh < Ho; oh++) {                                             \
            const T* __restrict y0 = y + (m * 16 + (oh & 3) * 4) * Qr + (oh >> 2) * Wq;     \
            const ptrdiff_t o = (m * Ho + oh) * Wo;                                         \
            const T* __restrict r = res ? res + o : NULL;                                   \
            T* __restrict dst = out + o;                                                    \
            ptrdiff_t ow = 0;                                                               \
            if (DC_SHUFFLE)                                                                 \
                for (; ow < Wo; ow += 4 * L) {                                              \
                    const ptrdiff_t b = ow >> 2;                                            \
                    const V a0 = *(const VU*)(y0 + b), a1 = *(const VU*)(y0 + Qr + b);      \
                    const V a2 = *(const VU*)(y0 + 2 * Qr + b);                             \
                    const V a3 = *(const VU*)(y0 + 3 * Qr + b);                             \
                    const V lo01 = DC_SHUF(a0, a1, I01), hi01 = DC_SHUF(a0, a1, I23);       \
                    const V lo23 = DC_SHUF(a2, a3, I01), hi23 = DC_SHUF(a2, a3, I23);       \
                    V q[4] = {DC_SHUF(lo01, lo23, P0), DC_SHUF(lo01, lo23, P1),              \
                              DC_SHUF(hi01, hi23, P0), DC_SHUF(hi01, hi23, P1)};             \
                    for (int k = 0; k < 4 && ow + k * L < Wo; k++) {                        \
                        const ptrdiff_t at = ow + k * L;                                    \
                        V a = q[k];                                                         \
                        if (o + at + L <= total) {                                          \
                            if (r)                                                          \
                                a = a + *(const VU*)(r + at);                               \
                            if (relu)                                                       \
                                a = DC_RELUV(V, I, a);                                      \
                            *(VU*)(dst + at) = a;                                           \
                        } else {                                                            \
                            for (ptrdiff_t e = at; e < Wo; e++)                             \
                                DC_ONE(T, IS, a[e - at], r, e, relu, dst);                 \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
            for (; ow < Wo; ow++)                                                           \
                DC_ONE(T, IS, y0[(ow & 3) * Qr + (ow >> 2)], r, ow, relu, dst);            \
        }                                                                                   \
}

/* src (S values) = the sample x (C, H, W) padded by (ph, pw) as stride-4 phase planes, then
   zeros. pad (4*Hq rows of RW = 4*(Wq + L) values): a channel padded, its zeros written here
   once and its interior per channel, whole before its rows are split (a vector load of
   values just stored stalls); the phases of L values at a time split from 4 vectors by
   shuffles (D1A/D1B: values 4k + (0, 1) and 4k + (2, 3) of two vectors; D2A/D2B: the first
   or second L/2 of two of those), a row's part vector value by value. */
#define WG4_PLANES(NAME, ATTR, T, V, VU, L, D1A, D1B, D2A, D2B)                             \
ATTR static void NAME(const T* __restrict x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,          \
                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t Hq, ptrdiff_t Wq,                \
                      T* __restrict src, ptrdiff_t S, T* __restrict pad) {                  \
    const ptrdiff_t HW = Hq * Wq, RW = 4 * (Wq + L);                                        \
    /* 4*Hq >= H + 2ph + 2, 4*Wq >= W + 2pw + 2: the tiles' reach */                        \
    memset(pad, 0, 4 * Hq * RW * sizeof(T));                                                \
    for (ptrdiff_t c = 0; c < C; c++) {                                                     \
        for (ptrdiff_t ih = 0; ih < H; ih++)                                                \
            memcpy(pad + (ih + ph) * RW + pw, x + (c * H + ih) * W, W * sizeof(T));         \
        for (ptrdiff_t a4 = 0; a4 < 4 * Hq; a4++) {                                         \
            T* __restrict p = src + (c * 16 + (a4 & 3) * 4) * HW + (a4 >> 2) * Wq;          \
            const T* __restrict row = pad + a4 * RW;                                        \
            ptrdiff_t b = 0;                                                                \
            if (DC_SHUFFLE && L >= 4)                                                       \
                for (; b + L <= Wq; b += L) {                                               \
                    const T* q = row + 4 * b;                                               \
                    const V v0 = *(const VU*)q, v1 = *(const VU*)(q + L);                   \
                    const V v2 = *(const VU*)(q + 2 * L), v3 = *(const VU*)(q + 3 * L);     \
                    const V e01 = DC_SHUF(v0, v1, D1A), e23 = DC_SHUF(v0, v1, D1B);         \
                    const V f01 = DC_SHUF(v2, v3, D1A), f23 = DC_SHUF(v2, v3, D1B);         \
                    *(VU*)(p + b) = DC_SHUF(e01, f01, D2A);                                 \
                    *(VU*)(p + HW + b) = DC_SHUF(e01, f01, D2B);                            \
                    *(VU*)(p + 2 * HW + b) = DC_SHUF(e23, f23, D2A);                        \
                    *(VU*)(p + 3 * HW + b) = DC_SHUF(e23, f23, D2B);                        \
                }                                                                           \
            for (; b < Wq; b++)                                                             \
                for (int rw = 0; rw < 4; rw++)                                              \
                    p[rw * HW + b] = row[4 * b + rw];                                       \
        }                                                                                   \
    }                                                                                       \
    memset(src + 16 * C * HW, 0, (S - 16 * C * HW) * sizeof(T));                            \
}

WG4_GRID(wg4_grid_f_portable, , float, dn_f4, dn_f4_u, 4)
WG4_GRID(wg4_grid_d_portable, , double, dn_d2, dn_d2_u, 2)
WG4_OUT(wg4_out_f_portable, , float, dn_f4, dn_f4_u, 4, dc_i4, uint32_t, ((dc_i4){0, 4, 1, 5}),
        ((dc_i4){2, 6, 3, 7}), ((dc_i4){0, 1, 4, 5}), ((dc_i4){2, 3, 6, 7}))
WG4_OUT(wg4_out_d_portable, , double, dn_d2, dn_d2_u, 2, dc_l2, uint64_t, ((dc_l2){0, 2}),
        ((dc_l2){1, 3}), ((dc_l2){0, 1}), ((dc_l2){2, 3}))
WG4_PLANES(wg4_planes_f_portable, , float, dn_f4, dn_f4_u, 4, ((dc_i4){0, 4, 1, 5}),
           ((dc_i4){2, 6, 3, 7}), ((dc_i4){0, 1, 4, 5}), ((dc_i4){2, 3, 6, 7}))
/* (two lanes: the phases value by value; the masks are not used) */
WG4_PLANES(wg4_planes_d_portable, , double, dn_d2, dn_d2_u, 2, ((dc_l2){0, 2}),
           ((dc_l2){1, 3}), ((dc_l2){0, 2}), ((dc_l2){1, 3}))
#if DN_X86
WG4_GRID(wg4_grid_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
WG4_GRID(wg4_grid_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
WG4_OUT(wg4_out_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t,
        ((dc_i8){0, 8, 1, 9, 2, 10, 3, 11}), ((dc_i8){4, 12, 5, 13, 6, 14, 7, 15}),
        ((dc_i8){0, 1, 8, 9, 2, 3, 10, 11}), ((dc_i8){4, 5, 12, 13, 6, 7, 14, 15}))
WG4_OUT(wg4_out_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t,
        ((dc_l4){0, 4, 1, 5}), ((dc_l4){2, 6, 3, 7}), ((dc_l4){0, 1, 4, 5}),
        ((dc_l4){2, 3, 6, 7}))
WG4_PLANES(wg4_planes_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8,
           ((dc_i8){0, 4, 8, 12, 1, 5, 9, 13}), ((dc_i8){2, 6, 10, 14, 3, 7, 11, 15}),
           ((dc_i8){0, 1, 2, 3, 8, 9, 10, 11}), ((dc_i8){4, 5, 6, 7, 12, 13, 14, 15}))
WG4_PLANES(wg4_planes_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, ((dc_l4){0, 4, 1, 5}),
           ((dc_l4){2, 6, 3, 7}), ((dc_l4){0, 1, 4, 5}), ((dc_l4){2, 3, 6, 7}))
#endif

#if DN_X86
WG_GRID16(wg4_grid_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, WG4_BLOCK)
WG_GRID16(wg4_grid_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8, WG4_BLOCK)

/* The read-out fused into the grid's blocks (wg4_grid_out; float, AVX-512, grids of Wq = 8:
   winograd.h's wg_grid_out has the why): the 4 phase vectors of a phase row a interleaved
   by wg4_out's two rounds of shuffles into 4 vectors of 16 outputs (rows 4 th + a and
   4 (th + 1) + a, columns 0-15 and 16-31), + skip, relu, stored under a mask of the row's
   columns (wg4_out's pass: 0.11 of the 16-channel 28 x 28 conv's 0.51 ms a chunk of 16;
   fused, the conv 1.04-1.09x faster, resnet_small's eval program at batch 256 1.05x less
   CPU). */
#define WG4_P0 ((dc_i16){0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23})
#define WG4_P1 ((dc_i16){8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31})
#define WG4_STORE_OUT16(T, V, VU, L, o, b0, a, yo, Qr, v, m, q0, Wq, ep)                    \
    do {                                                                                    \
        (void)(yo);                                                                         \
        if ((m) < (ep)->M) {                                                                \
            const V o0_ = (o)[0] + (b0), o1_ = (o)[1] + (b0);                               \
            const V o2_ = (o)[2] + (b0), o3_ = (o)[3] + (b0);                               \
            const V lo01_ = DC_SHUF(o0_, o1_, WG_I01), hi01_ = DC_SHUF(o0_, o1_, WG_I23); \
            const V lo23_ = DC_SHUF(o2_, o3_, WG_I01), hi23_ = DC_SHUF(o2_, o3_, WG_I23); \
            const V q_[4] = {DC_SHUF(lo01_, lo23_, WG4_P0), DC_SHUF(lo01_, lo23_, WG4_P1),   \
                             DC_SHUF(hi01_, hi23_, WG4_P0), DC_SHUF(hi01_, hi23_, WG4_P1)};  \
            const ptrdiff_t th_ = ((q0) + (v) * (L)) / (Wq), Ho_ = (ep)->Ho, Wo_ = (ep)->Wo; \
            for (int k_ = 0; k_ < 4; k_++) {                                                \
                const ptrdiff_t oh_ = 4 * (th_ + (k_ >> 1)) + (a), col_ = (k_ & 1) * (L);   \
                if (oh_ >= Ho_ || col_ >= Wo_)                                              \
                    continue;                                                               \
                const ptrdiff_t at_ = ((m) * Ho_ + oh_) * Wo_ + col_;                       \
                const __mmask16 km_ = (__mmask16)(Wo_ - col_ >= (L) ? 0xFFFFu                \
                                                  : (1u << (Wo_ - col_)) - 1);              \
                WG_PUT16(V, q_[k_], at_, km_, ep);                                          \
            }                                                                               \
        }                                                                                   \
    } while (0)
#define WG4_BLOCK_OUT(NAME, ATTR, T, V, VU, L, NV) \
    WG4_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, WG4_STORE_OUT16)
WG_GRID16(wg4_grid_out_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, WG4_BLOCK_OUT)
#endif

WG_GRID_OUT(wg4_grid_out_f) /* winograd.h */

#define WG4_DISPATCH(T, SUF)                                                                \
static void wg4_grid_##SUF(int isa, ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq,   \
                           ptrdiff_t Qr, const T* src, const T* u, const T* bias, T* vb,    \
                           T* mb, T* y) {                                                   \
    DC_PICK512(wg4_grid_##SUF, (M, C, HW, Wq, Qr, src, u, bias, vb, mb, y, NULL))              \
}                                                                                           \
static void wg4_out_##SUF(int isa, const T* y, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t M,      \
                          ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, T* out) {     \
    DC_PICK(wg4_out_##SUF, (y, Qr, Wq, M, Ho, Wo, res, relu, out))                          \
}                                                                                           \
static void wg4_planes_##SUF(int isa, const T* x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,     \
                             ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t Hq, ptrdiff_t Wq, T* src, \
                             ptrdiff_t S, T* pad) {                                      \
    DC_PICK(wg4_planes_##SUF, (x, C, H, W, ph, pw, Hq, Wq, src, S, pad))                 \
}
WG4_DISPATCH(float, f)
WG4_DISPATCH(double, d)
#endif
