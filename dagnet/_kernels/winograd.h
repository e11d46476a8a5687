/* Winograd F(2x2, 3x3): an inference conv of 3x3 kernels at stride 1 in 16 small products
   instead of 9 taps per output (2.25x fewer multiplies), for dagnet/_kernels/winograd.pxi.

   Each 2x2 block of outputs (a "tile") is computed from the 4x4 block of the padded input
   under it: V = B^T d B (per input channel), M[xi] = sum_c U[xi][m][c] * V[xi][c] for each
   of the 16 positions xi of the 4x4 transform, Y = A^T M A + bias (the 2x2 outputs), with
       B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1],
   and U = G g G^T the filters' transform (G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]),
   computed once in float64 when the program binds (ops/winograd.py packed).

   The input: the sample's stride-2 phase planes (direct.h's planes with sh = sw = 2, laid
   out by wg_planes): plane (c, rh, rw)[a][b] = xpad[c][2a + rh][2b + rw], Hq x Wq
   each. Tile (th, tw)'s value (i, j) is xpad[2th + i][2tw + j] = plane (c, i%2, j%2) at
   p + (i/2)*Wq + j/2 with p = th*Wq + tw: every one of the 16 values of every tile is the
   planes at a fixed offset from the tile's flat position p. So a vector of tiles is a vector
   of positions p, loaded whole, as the direct kernel's taps are; the grid's last column
   (tw = Wq - 1, past the tiles) is computed and never read out, as there.

   Per block of NV vectors of positions (in L1, or L2 at 16 lanes): the input transform of every channel
   into vb[xi][c][NV*L]; per tile of WG_FR output channels, the 16 products [WG_FR x C] x
   [C x NV*L], each in NV*WG_FR accumulators (direct.h's dc_gemm tile), into mb[xi][r][NV*L];
   then the inverse transform into the output phase grid y[m][a*2 + b][p] (+ bias). No
   transformed tensor larger than a block exists. wg_out then reads y out into the conv's
   output (a row's even and odd columns interleaved in vectors) with the epilogue: + skip,
   relu keeping NaN. Every output is the same sums in the same order whatever the batch,
   its split or the thread count: a position's block and lane depend on the geometry alone.

   Measured (one thread, resnet_small's shapes, hot caches): the products run at ~88% of
   the FMA peak and take half the time; the input transform, the planes and the read-out
   the rest. Hence 32 channels gain and 16 do not (ops/winograd.py uses_wino): the
   transforms are shared by the channels. F(4x4, 3x3) (winograd4.h) halves the products on
   28 x 28 and runs the 16-channel convs there, but not on 14 x 14 (its 4 x 4 tiles cover
   16 x 16 outputs there, a 1.3x waste, and the grid's extra column 1.25x).

   AVX-512 runs the transforms and products (wg_grid, wg4_grid) on 16-wide vectors, the grid
   rounded up to them (direct.h dc_wide_lanes); the block buffers start on 64-byte boundaries (winograd.pxi
   _at64). Measured (one thread, batch 64, resnet_small's shapes, alternating): 16-wide over
   8-wide 1.08x on the 16-channel F(4x4) convs, 1.22x on the 32-channel F(2x2) ones. */
#ifndef DAGNET_WINOGRAD_H
#define DAGNET_WINOGRAD_H
#include "direct.h"

#define WG_FR 4 /* output channels per tile of the products */

/* Where a grid block that reads its outputs out itself writes them (wg_grid_out,
   winograd4.h's wg4_grid_out: the conv's output with its epilogue); NULL for the blocks
   that write the output phase grid y. */
typedef struct {
    void* out;       /* (M, Ho, Wo) of the sample */
    const void* res; /* the skip added to it, or NULL */
    int relu;
    ptrdiff_t M, Ho, Wo;
} wg_epi;
#define WG_NV 3 /* vectors of positions per block (the grid's tail: 2 or 1) */

/* The transformed products of one block, for either tile size: for each of the POINTS
   transform positions xi and the WG_FR channels of filter tile tl,
   mb[xi][r] (NV*L values) = sum over c < C of u[xi][tl][c][r] * vb[xi][c] (u: POINTS x tiles
   x C x WG_FR, vb: POINTS x C x NV*L). The channel loop is the block's whole work: its
   WG_FR x NV accumulators stay in registers. */
#define WG_PRODUCTS(T, V, VU, L, NV, POINTS, C, tiles, tl, u, vb, mb)                       \
    do {                                                                                    \
        enum { PB = (NV) * (L) };                                                           \
        for (int xi = 0; xi < (POINTS); xi++) {                                             \
            const T* __restrict w = u + (xi * tiles + tl) * C * WG_FR;                      \
            const T* __restrict x = vb + xi * C * PB;                                       \
            V acc[WG_FR][NV];                                                               \
            for (int r = 0; r < WG_FR; r++)                                                 \
                for (int v = 0; v < NV; v++)                                                \
                    acc[r][v] = (V){0};                                                     \
            DC_UNROLL                                                                       \
            for (ptrdiff_t c = 0; c < C; c++, w += WG_FR, x += PB) {                        \
                V xv[NV];                                                                   \
                for (int v = 0; v < NV; v++)                                                \
                    xv[v] = *(const VU*)(x + v * L);                                        \
                for (int r = 0; r < WG_FR; r++) {                                           \
                    const V wr = (V){0} + w[r];                                             \
                    for (int v = 0; v < NV; v++)                                            \
                        acc[r][v] += wr * xv[v];                                            \
                }                                                                           \
            }                                                                               \
            for (int r = 0; r < WG_FR; r++)                                                 \
                for (int v = 0; v < NV; v++)                                                \
                    *(VU*)(mb + (xi * WG_FR + r) * PB + v * L) = acc[r][v];                 \
        }                                                                                   \
    } while (0)

/* One block of NV vectors of positions at q0 for all M channels: src the sample's planes
   (C channels of 4 planes, HW values each, rows Wq apart), u the transformed filters
   (16 x tiles x C x WG_FR), bias tiles*WG_FR values; vb (16*C*NV*L), mb (16*WG_FR*NV*L)
   scratch; y: (tiles*WG_FR, 4, Qr) output phase grid. */
#define WG_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, STORE)                                      \
ATTR static inline void NAME(ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq,          \
                             ptrdiff_t Qr, ptrdiff_t q0, const T* __restrict src,           \
                             const T* __restrict u, const T* __restrict bias,               \
                             T* __restrict vb, T* __restrict mb, T* __restrict y,           \
                             const wg_epi* ep) {                                            \
    enum { B = NV * L };                                                                    \
    const ptrdiff_t tiles = (M + WG_FR - 1) / WG_FR;                                        \
    (void)ep;                                                                               \
    for (ptrdiff_t c = 0; c < C; c++) {                                                     \
        const T* __restrict s = src + c * 4 * HW + q0;                                      \
        for (int v = 0; v < NV; v++) {                                                      \
            V d[4][4], t[4][4];                                                             \
            for (int i = 0; i < 4; i++)                                                     \
                for (int j = 0; j < 4; j++)                                                 \
                    d[i][j] = *(const VU*)(s + ((i & 1) * 2 + (j & 1)) * HW +               \
                                            (i >> 1) * Wq + (j >> 1) + v * L);              \
            for (int j = 0; j < 4; j++) {                                                   \
                t[0][j] = d[0][j] - d[2][j];                                                \
                t[1][j] = d[1][j] + d[2][j];                                                \
                t[2][j] = d[2][j] - d[1][j];                                                \
                t[3][j] = d[1][j] - d[3][j];                                                \
            }                                                                               \
            for (int i = 0; i < 4; i++) {                                                   \
                T* __restrict o = vb + ((i * 4) * C + c) * B + v * L;                       \
                *(VU*)(o) = t[i][0] - t[i][2];                                               \
                *(VU*)(o + C * B) = t[i][1] + t[i][2];                                       \
                *(VU*)(o + 2 * C * B) = t[i][2] - t[i][1];                                   \
                *(VU*)(o + 3 * C * B) = t[i][1] - t[i][3];                                   \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    for (ptrdiff_t tl = 0; tl < tiles; tl++) {                                              \
        WG_PRODUCTS(T, V, VU, L, NV, 16, C, tiles, tl, u, vb, mb);                          \
        for (int r = 0; r < WG_FR; r++) {                                                   \
            const T b0 = bias[tl * WG_FR + r];                                              \
            T* __restrict yo = y + (tl * WG_FR + r) * 4 * Qr + q0;                          \
            for (int v = 0; v < NV; v++) {                                                  \
                V m[16], s0[4], s1[4];                                                      \
                for (int xi = 0; xi < 16; xi++)                                             \
                    m[xi] = *(const VU*)(mb + (xi * WG_FR + r) * B + v * L);                 \
                for (int j = 0; j < 4; j++) {                                               \
                    s0[j] = (m[j] + m[4 + j]) + m[8 + j];                                   \
                    s1[j] = (m[4 + j] - m[8 + j]) - m[12 + j];                              \
                }                                                                           \
                const V p[4] = {((s0[0] + s0[1]) + s0[2]) + b0, ((s0[1] - s0[2]) - s0[3]) + b0, \
                                ((s1[0] + s1[1]) + s1[2]) + b0, ((s1[1] - s1[2]) - s1[3]) + b0}; \
                STORE(T, V, VU, L, p, yo, Qr, v, tl * WG_FR + r, q0, Wq, ep);               \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

/* A block's 4 output phases p (row phase * 2 + column phase) into the output phase grid y
   (wg_out reads it out) */
#define WG_STORE_Y(T, V, VU, L, p, yo, Qr, v, m, q0, Wq, ep)                                \
    for (int i_ = 0; i_ < 4; i_++)                                                          \
        *(VU*)((yo) + i_ * (Qr) + (v) * (L)) = (p)[i_]
#define WG_BLOCK(NAME, ATTR, T, V, VU, L, NV) WG_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, WG_STORE_Y)

/* The grid drivers of either tile size (BLOCK: WG_BLOCK or winograd4.h's WG4_BLOCK): y of one
   sample, the grid's Qr / L vectors of positions in blocks of NB vectors while BIG(n) holds of
   the n vectors left, then of 2, a lone vector last (vb, mb: NB vectors' worth). Each size's
   schedule (BIG) was measured on its own. */
#define WG_DRIVE(NAME, ATTR, T, V, VU, L, BLOCK, NB, BIG)                                   \
BLOCK(NAME##_bn, ATTR, T, V, VU, L, NB)                                                     \
BLOCK(NAME##_b2, ATTR, T, V, VU, L, 2)                                                      \
BLOCK(NAME##_b1, ATTR, T, V, VU, L, 1)                                                      \
ATTR static void NAME(ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq, ptrdiff_t Qr,   \
                      const T* __restrict src, const T* __restrict u,                       \
                      const T* __restrict bias, T* __restrict vb, T* __restrict mb,         \
                      T* __restrict y, const wg_epi* ep) {                                  \
    ptrdiff_t q0 = 0, n = Qr / L;                                                           \
    for (; BIG(n); n -= NB, q0 += NB * L)                                                   \
        NAME##_bn(M, C, HW, Wq, Qr, q0, src, u, bias, vb, mb, y, ep);                       \
    for (; n >= 2; n -= 2, q0 += 2 * L)                                                     \
        NAME##_b2(M, C, HW, Wq, Qr, q0, src, u, bias, vb, mb, y, ep);                       \
    if (n)                                                                                  \
        NAME##_b1(M, C, HW, Wq, Qr, q0, src, u, bias, vb, mb, y, ep);                       \
}

/* y (tiles*WG_FR, 4, Qr) of one sample: blocks of WG_NV vectors, then one of 2 or 1. */
#define WG_WHOLE(n) ((n) >= WG_NV)
#define WG_GRID(NAME, ATTR, T, V, VU, L) \
    WG_DRIVE(NAME, ATTR, T, V, VU, L, WG_BLOCK, WG_NV, WG_WHOLE)

/* out[m][oh][ow] = y[m][(oh%2)*2 + ow%2][(oh/2)*Wq + ow/2] (+ res[m][oh][ow] if res), then
   max(., 0) if relu (a bit mask: NaN stays NaN), for m < M, oh < Ho, ow < Wo. A row of at
   least L outputs is whole vectors, each L/2 even and L/2 odd columns interleaved by a
   shuffle (GCC), the last one ending at the row's end (or one before it, starting on an
   even column; it writes some values again, the same: out is neither y nor res); the rest
   value by value (the same single add and mask: the same values). y must have L values
   readable past its last row. */
#define WG_OUT(NAME, ATTR, T, V, VU, L, I, IS, LO)                                          \
ATTR static void NAME(const T* __restrict y, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t M,        \
                      ptrdiff_t Ho, ptrdiff_t Wo, const T* __restrict res, int relu,         \
                      T* __restrict out) {                                                  \
    const ptrdiff_t last = (Wo - L) & ~(ptrdiff_t)1;                                        \
    for (ptrdiff_t m = 0; m < M; m++)                                                       \
        for (ptrdiff_t oh = 0; oh < Ho; oh++) {                                             \
            const T* __restrict ye = y + (m * 4 + (oh & 1) * 2) * Qr + (oh >> 1) * Wq;      \
            const T* __restrict yo = ye + Qr;                                               \
            const ptrdiff_t o = (m * Ho + oh) * Wo;                                         \
            const T* __restrict r = res ? res + o : NULL;                                   \
            T* __restrict dst = out + o;                                                    \
            ptrdiff_t ow = 0;                                                               \
            if (DC_SHUFFLE && Wo >= L) {                                                    \
                for (; ow < Wo - 1; ow += L) {                                              \
                    const ptrdiff_t at = ow <= last ? ow : last;                            \
                    V a = DC_SHUF(*(const VU*)(ye + at / 2), *(const VU*)(yo + at / 2), LO); \
                    if (r)                                                                  \
                        a = a + *(const VU*)(r + at);                                       \
                    if (relu)                                                               \
                        a = DC_RELUV(V, I, a);                                              \
                    *(VU*)(dst + at) = a;                                                   \
                }                                                                           \
                ow = last + L;                                                              \
            }                                                                               \
            for (; ow < Wo; ow++)                                                           \
                DC_ONE(T, IS, (ow & 1 ? yo : ye)[ow >> 1], r, ow, relu, dst);               \
        }                                                                                   \
}

/* Values of WG_PLANES's padded channel (2 Hq x 2 Wq: a phase vector at b reads 2L values
   from 2b): larger channels take the path after it. */
#define WG_PAD 2048

/* dst[0:n] = src[0:n] in whole vectors, the last one ending at n (writing some values again,
   the same), or value by value below one vector: memcpy's call cost more than a short row
   (the planes of resnet_small's 14 x 14 and 28 x 28 inputs). */
#define DC_COPY_ROW(T, VU, L, dst, src, n)                                                  \
    do {                                                                                    \
        T* __restrict d_ = (dst);                                                           \
        const T* __restrict s_ = (src);                                                     \
        const ptrdiff_t n_ = (n);                                                           \
        if (n_ >= (L))                                                                      \
            for (ptrdiff_t k0_ = 0; k0_ < n_; k0_ += (L)) {                                 \
                const ptrdiff_t k_ = k0_ + (L) <= n_ ? k0_ : n_ - (L);                      \
                *(VU*)(d_ + k_) = *(const VU*)(s_ + k_);                                    \
            }                                                                               \
        else                                                                                \
            for (ptrdiff_t k_ = 0; k_ < n_; k_++)                                           \
                d_[k_] = s_[k_];                                                            \
    } while (0)

/* src (S values) = the sample x (C, H, W) padded by (ph, pw) as stride-2 phase planes
   (plane (c, rh, rw)[a][b] = xpad[c][2a + rh][2b + rw], Hq x Wq each), then zeros: what
   direct.pyx _planes_one writes for sh = sw = 2, the phases of a row split in vectors (the
   even or odd values of two loaded vectors, by a shuffle, GCC) instead of value by value. */
#define WG_PLANES(NAME, ATTR, T, V, VU, L, EVEN, ODD)                                       \
ATTR static void NAME(const T* __restrict x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,          \
                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t Hq, ptrdiff_t Wq,                \
                      T* __restrict src, ptrdiff_t S) {                                     \
    const ptrdiff_t HW = Hq * Wq;                                                           \
    if (DC_SHUFFLE && Wq >= L && 4 * Hq * Wq <= WG_PAD && ph + H <= 2 * Hq &&               \
        pw + W <= 2 * Wq) {                                                                 \
        /* each channel padded in a buffer (its borders zero once), then every row's two    \
           phases split from it: a row split right after it was copied waited on the       \
           copy's stores (1.25x slower) */                                                  \
        T pad[WG_PAD] __attribute__((aligned(64)));                                         \
        const ptrdiff_t RW = 2 * Wq;                                                        \
        memset(pad, 0, 2 * Hq * RW * sizeof(T));                                            \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            for (ptrdiff_t ih = 0; ih < H; ih++)                                            \
                DC_COPY_ROW(T, VU, L, pad + (ih + ph) * RW + pw, x + (c * H + ih) * W, W);  \
            for (ptrdiff_t a2 = 0; a2 < 2 * Hq; a2++) {                                     \
                T* __restrict p = src + (c * 4 + (a2 & 1) * 2) * HW + (a2 >> 1) * Wq;       \
                const T* __restrict row = pad + a2 * RW;                                    \
                for (ptrdiff_t b0 = 0; b0 < Wq; b0 += L) {                                  \
                    const ptrdiff_t b = b0 + L <= Wq ? b0 : Wq - L;                         \
                    const V e = *(const VU*)(row + 2 * b), o = *(const VU*)(row + 2 * b + L); \
                    *(VU*)(p + b) = DC_SHUF(e, o, EVEN);                                    \
                    *(VU*)(p + HW + b) = DC_SHUF(e, o, ODD);                                \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        memset(src + 4 * C * HW, 0, (S - 4 * C * HW) * sizeof(T));                          \
        return;                                                                             \
    }                                                                                       \
    for (ptrdiff_t c = 0; c < C; c++)                                                       \
        for (ptrdiff_t a2 = 0; a2 < 2 * Hq; a2++)                                           \
            for (int rw = 0; rw < 2; rw++) {                                                \
                T* __restrict p = src + (c * 4 + (a2 & 1) * 2 + rw) * HW + (a2 >> 1) * Wq;  \
                const ptrdiff_t ih = a2 - ph, s = rw - pw;                                  \
                if (ih < 0 || ih >= H) {                                                    \
                    memset(p, 0, Wq * sizeof(T));                                           \
                    continue;                                                               \
                }                                                                           \
                const T* __restrict row = x + (c * H + ih) * W;                             \
                /* the plane's columns b with 0 <= 2b + s < W */                            \
                ptrdiff_t lo = s < 0 ? (1 - s) / 2 : 0;                                     \
                ptrdiff_t hi = W - 1 - s >= 0 ? (W - 1 - s) / 2 + 1 : 0;                    \
                if (hi > Wq)                                                                \
                    hi = Wq;                                                                \
                if (lo > hi)                                                                \
                    lo = hi;                                                                \
                for (ptrdiff_t b = 0; b < lo; b++)                                          \
                    p[b] = 0;                                                               \
                for (ptrdiff_t b = hi; b < Wq; b++)                                         \
                    p[b] = 0;                                                               \
                ptrdiff_t b = lo;                                                           \
                /* L values at b from 2L loaded at 2b + s (the evens) or, where the last odd \
                   one lies past the row, at 2b + s - 1 (the odds); the last vector ends at  \
                   hi (writing some values again, the same) */                              \
                if (DC_SHUFFLE && hi - lo >= L)                                             \
                    for (ptrdiff_t b0 = lo; b0 < hi; b0 += L) {                             \
                        const ptrdiff_t at = b0 + L <= hi ? b0 : hi - L;                    \
                        const T* q = row + 2 * at + s;                                      \
                        if (2 * (at + L) + s <= W)                                          \
                            *(VU*)(p + at) = DC_SHUF(*(const VU*)q, *(const VU*)(q + L), EVEN); \
                        else if (2 * at + s >= 1)                                           \
                            *(VU*)(p + at) = DC_SHUF(*(const VU*)(q - 1), *(const VU*)(q - 1 + L), \
                                                     ODD);                                  \
                        else                                                                \
                            break;                                                          \
                        b = at + L;                                                         \
                    }                                                                       \
                for (; b < hi; b++)                                                         \
                    p[b] = row[2 * b + s];                                                  \
            }                                                                               \
    memset(src + 4 * C * HW, 0, (S - 4 * C * HW) * sizeof(T));                              \
}

WG_GRID(wg_grid_f_portable, , float, dn_f4, dn_f4_u, 4)
WG_GRID(wg_grid_d_portable, , double, dn_d2, dn_d2_u, 2)
WG_OUT(wg_out_f_portable, , float, dn_f4, dn_f4_u, 4, dc_i4, uint32_t, ((dc_i4){0, 4, 1, 5}))
WG_OUT(wg_out_d_portable, , double, dn_d2, dn_d2_u, 2, dc_l2, uint64_t, ((dc_l2){0, 2}))
WG_PLANES(wg_planes_f_portable, , float, dn_f4, dn_f4_u, 4, ((dc_i4){0, 2, 4, 6}),
          ((dc_i4){1, 3, 5, 7}))
WG_PLANES(wg_planes_d_portable, , double, dn_d2, dn_d2_u, 2, ((dc_l2){0, 2}), ((dc_l2){1, 3}))
#if DN_X86
WG_GRID(wg_grid_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
WG_GRID(wg_grid_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
WG_OUT(wg_out_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8, dc_i8, uint32_t,
       ((dc_i8){0, 8, 1, 9, 2, 10, 3, 11}))
WG_OUT(wg_out_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, dc_l4, uint64_t,
       ((dc_l4){0, 4, 1, 5}))
WG_PLANES(wg_planes_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8,
          ((dc_i8){0, 2, 4, 6, 8, 10, 12, 14}), ((dc_i8){1, 3, 5, 7, 9, 11, 13, 15}))
WG_PLANES(wg_planes_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4, ((dc_l4){0, 2, 4, 6}),
          ((dc_l4){1, 3, 5, 7}))
#endif

/* AVX-512 (32 registers of 16 floats): the transforms and products of either tile size
   on 16-wide vectors, in blocks of up to WG_NV16 vectors (WG_FR x 4 = 16 accumulators);
   resnet_small's grids are 4 such vectors (56 positions rounded up to 64: the 8-wide
   variant's 7 vectors took 1.75x the vector operations). The planes and the read-out stay
   8-wide (their vectors do not depend on the grid's). */
#define WG_NV16 4
#if DN_X86
#define WG_WHOLE16(n) ((n) >= WG_NV16)
#define WG_GRID16(NAME, ATTR, T, V, VU, L, BLOCK) \
    WG_DRIVE(NAME, ATTR, T, V, VU, L, BLOCK, WG_NV16, WG_WHOLE16)
WG_GRID16(wg_grid_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, WG_BLOCK)
WG_GRID16(wg_grid_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8, WG_BLOCK)

/* The read-out fused into the grid's blocks (wg_grid_out, winograd4.h's wg4_grid_out; float,
   AVX-512, grids of Wq = 8: a vector of 16 positions is two whole tile rows, resnet_small's
   14 x 14 and 28 x 28 outputs): a row phase's 2 column phases interleaved (WG_I01: tile
   row th, WG_I23: th + 1) into the output rows, + skip, relu, stored under a mask of the
   row's columns; the output phase grid y is never written or read back. wg_out's
   operations, but the compiler schedules the block's transforms and products anew
   (-ffast-math): outputs 1-2 ulps off the unfused path's, within the same bound. */
#define WG_I01 ((dc_i16){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define WG_I23 ((dc_i16){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
/* x (V of 16 floats) + skip, relu, into the row of out at `at` under mask km */
#define WG_PUT16(V, x, at, km, ep)                                                          \
    do {                                                                                    \
        V x_ = (x);                                                                         \
        if ((ep)->res)                                                                      \
            x_ = x_ + (V)_mm512_maskz_loadu_ps(km, (const float*)(ep)->res + (at));         \
        if ((ep)->relu)                                                                     \
            x_ = DC_RELUV(V, dc_i16, x_);                                                   \
        _mm512_mask_storeu_ps((float*)(ep)->out + (at), km, (__m512)x_);                   \
    } while (0)
#define WG_STORE_OUT16(T, V, VU, L, p, yo, Qr, v, m, q0, Wq, ep)                            \
    do {                                                                                    \
        (void)(yo);                                                                         \
        if ((m) < (ep)->M) {                                                                \
            const ptrdiff_t th_ = ((q0) + (v) * (L)) / (Wq), Ho_ = (ep)->Ho, Wo_ = (ep)->Wo; \
            const __mmask16 km_ = (__mmask16)((1u << Wo_) - 1); /* Wo_ <= 16 */            \
            for (int a_ = 0; a_ < 2; a_++) {                                                \
                const V lo_ = DC_SHUF((p)[2 * a_], (p)[2 * a_ + 1], WG_I01);                \
                const V hi_ = DC_SHUF((p)[2 * a_], (p)[2 * a_ + 1], WG_I23);                \
                if (2 * th_ + a_ < Ho_)                                                     \
                    WG_PUT16(V, lo_, ((m) * Ho_ + 2 * th_ + a_) * Wo_, km_, ep);            \
                if (2 * th_ + 2 + a_ < Ho_)                                                 \
                    WG_PUT16(V, hi_, ((m) * Ho_ + 2 * th_ + 2 + a_) * Wo_, km_, ep);        \
            }                                                                               \
        }                                                                                   \
    } while (0)
#define WG_BLOCK_OUT(NAME, ATTR, T, V, VU, L, NV) \
    WG_BLOCK_E(NAME, ATTR, T, V, VU, L, NV, WG_STORE_OUT16)
WG_GRID16(wg_grid_out_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16, WG_BLOCK_OUT)
#endif

/* Whether wg_grid_out (wg4_grid_out) runs a grid of Wq positions a row, else wg_grid then
   wg_out (wg4_grid, wg4_out). */
static int wg_fuses(int isa, int is_double, ptrdiff_t Wq) {
    return DN_X86 && isa >= DN_AVX512 && !is_double && 2 * Wq == 16;
}

/* NAME: the grid of one sample with its read-out (+ res if res, relu) into out (M, Ho, Wo),
   where wg_fuses, on NAME_avx512's blocks (wg_grid_out_f, winograd4.h's wg4_grid_out_f) */
#if DN_X86
#define WG_X86_ONLY(call) call
#else
#define WG_X86_ONLY(call) /* never called: wg_fuses is false */
#endif
#define WG_GRID_OUT(NAME)                                                                   \
static void NAME(int isa, ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq,             \
                 ptrdiff_t Qr, const float* src, const float* u, const float* bias,         \
                 float* vb, float* mb, float* y, ptrdiff_t Ho, ptrdiff_t Wo,                \
                 const float* res, int relu, float* out) {                                  \
    WG_X86_ONLY(NAME##_avx512(M, C, HW, Wq, Qr, src, u, bias, vb, mb, y,                    \
                              &(const wg_epi){out, res, relu, M, Ho, Wo}));                 \
}
WG_GRID_OUT(wg_grid_out_f)

/* Positions of the grid's largest block (the block buffers' vb and mb width). */
static ptrdiff_t wg_block(int isa, int is_double) {
    return dc_wide_lanes(isa, is_double) * (DN_X86 && isa >= DN_AVX512 ? WG_NV16 : WG_NV);
}

#define WG_DISPATCH(T, SUF)                                                                 \
static void wg_grid_##SUF(int isa, ptrdiff_t M, ptrdiff_t C, ptrdiff_t HW, ptrdiff_t Wq,    \
                          ptrdiff_t Qr, const T* src, const T* u, const T* bias, T* vb,     \
                          T* mb, T* y) {                                                    \
    DC_PICK512(wg_grid_##SUF, (M, C, HW, Wq, Qr, src, u, bias, vb, mb, y, NULL))               \
}                                                                                           \
static void wg_out_##SUF(int isa, const T* y, ptrdiff_t Qr, ptrdiff_t Wq, ptrdiff_t M,       \
                         ptrdiff_t Ho, ptrdiff_t Wo, const T* res, int relu, T* out) {      \
    DC_PICK(wg_out_##SUF, (y, Qr, Wq, M, Ho, Wo, res, relu, out))                           \
}                                                                                           \
static void wg_planes_##SUF(int isa, const T* x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,      \
                            ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t Hq, ptrdiff_t Wq, T* src,  \
                            ptrdiff_t S) {                                                  \
    DC_PICK(wg_planes_##SUF, (x, C, H, W, ph, pw, Hq, Wq, src, S))                          \
}
WG_DISPATCH(float, f)
WG_DISPATCH(double, d)
#endif
