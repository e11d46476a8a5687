/* Loops over contiguous rows for the fused conv + relu + max-pool (dagnet/_kernels/convpool.pyx).

   dn_spmm: Y[j] (+)= sum_c coef[c] * X[idx[c]] over the entries c of row j of a sparse matrix
   stored by rows (CSR), X and Y dense with rows of n values: the backward's two sparse
   products, dw | db (j = filter, X = the patch rows) and the column gradient (j = conv output,
   X = the filters).
   dn_pool_rows: the max-pool of one sample stored channels-last.

   How dn_spmm is blocked, and why:
   - like a GEMM, each block of Y[j] stays in registers while every chosen row of X adds to it:
     one load and one multiply-add per value. One axpy per row (two loads, a multiply-add and
     a store per value) measured 1.8x slower on LeNet's conv2.
   - the column blocks are the outer loop: a block of X of every row (LeNet's conv2: 64 rows x
     32 floats = 8 KB) stays in L1 while all the j read it; walking whole rows per j streamed
     all of X (128 KB) from L2 once per filter.
   - the vectors are as wide as the registers of the instruction set that runs (4 floats for
     SSE2, 8 for AVX2, 16 for AVX-512), with fused multiply-adds where the CPU has them. One
     source, instantiated per width: GCC's target_clones compiles one vector type for every
     clone, and a 16-float type in the AVX2 clone was split into halves that went through the
     stack, with separate multiplies and adds (no FMA in "avx2"): 5 GFLOP/s on an AMD EPYC
     with AVX2, 3x slower than OpenBLAS's dense GEMMs on the same sums.
   The variant is an argument (dn_isa names them); dn_best_isa tells the best this CPU runs
   (x86-64 with GCC or clang; elsewhere only the portable DN_PORTABLE). Every variant sums each
   value in the same order; they differ in rounding only by fused multiply-adds.

   dn_pool_rows keeps GCC's target_clones: it is plain loops over channels, which GCC
   vectorises at each clone's own width. */
#ifndef DAGNET_ROWOPS_H
#define DAGNET_ROWOPS_H
#include "isa.h"

/* Y[j][:n] = (Y[j][:n] if accumulate, else 0) + sum over c in [start[j], start[j + 1]) of
   coef[c] * X[idx[c]][:n], j < m; rows ldx and ldy values apart, at any float boundary.
   V is a vector of L values of T (VU the same, unaligned).

   Blocks of 8 vectors: a multiply-add takes 4 cycles and 2 start per cycle, so the sum over
   c, a chain of dependent multiply-adds per vector, needs 8 chains in flight to keep both
   units busy (4 ran at half speed on LeNet's conv2). What is left after them, fewer than 8L
   values, is one more block of as many vectors as it takes, the last one ending at n where n
   is no multiple of L: of that one, only the values past the whole vectors are stored. As
   smaller blocks and value by value, the rest were short chains one after the other: a third
   of the time for n = 501. */
/* where vector u of a block at i starts, from i: the last one of a TAIL block ends at n */
#define DN_SPMM_AT(L, U, TAIL, u) ((TAIL) && (u) == (U) - 1 ? n - L - i : (u) * L)
#define DN_SPMM_BLOCK(T, V, VU, L, U, TAIL)                                                 \
    for (j = 0; j < m; j++) {                                                               \
        T* y = Y + j * ldy + i;                                                             \
        V a[U];                                                                             \
        for (u = 0; u < U; u++)                                                             \
            a[u] = accumulate ? *(const VU*)(y + DN_SPMM_AT(L, U, TAIL, u)) : (V){0};       \
        for (c = start[j]; c < start[j + 1]; c++) {                                         \
            const T* x = X + (ptrdiff_t)idx[c] * ldx + i;                                   \
            const T k = coef[c];                                                            \
            for (u = 0; u < U; u++)                                                         \
                a[u] += k * *(const VU*)(x + DN_SPMM_AT(L, U, TAIL, u));                    \
        }                                                                                   \
        for (u = 0; u < U - TAIL; u++)                                                      \
            *(VU*)(y + u * L) = a[u];                                                   \
        if (TAIL) {                                                                         \
            union { V v; T t[L]; } last = {a[U - 1]};                                       \
            for (u = L - n % L; u < L; u++)                                                 \
                y[n - L - i + u] = last.t[u];                                                   \
        }                                                                                   \
    }

/* the block of the last U vectors (TAIL: the last one ends at n) */
#define DN_SPMM_REST(T, V, VU, L, TAIL)                                                     \
    switch ((n - i + L - 1) / L) {                                                          \
    case 1: DN_SPMM_BLOCK(T, V, VU, L, 1, TAIL) break;                                      \
    case 2: DN_SPMM_BLOCK(T, V, VU, L, 2, TAIL) break;                                      \
    case 3: DN_SPMM_BLOCK(T, V, VU, L, 3, TAIL) break;                                      \
    case 4: DN_SPMM_BLOCK(T, V, VU, L, 4, TAIL) break;                                      \
    case 5: DN_SPMM_BLOCK(T, V, VU, L, 5, TAIL) break;                                      \
    case 6: DN_SPMM_BLOCK(T, V, VU, L, 6, TAIL) break;                                      \
    case 7: DN_SPMM_BLOCK(T, V, VU, L, 7, TAIL) break;                                      \
    case 8: DN_SPMM_BLOCK(T, V, VU, L, 8, TAIL) break;                                      \
    }

#define DN_SPMM(NAME, ATTR, T, V, VU, L)                                                    \
ATTR static void NAME(ptrdiff_t n, ptrdiff_t m, const int32_t* __restrict start,           \
                      const int32_t* __restrict idx, const T* __restrict coef,              \
                      const T* __restrict X, ptrdiff_t ldx, T* __restrict Y, ptrdiff_t ldy, \
                      int accumulate) {                                                     \
    ptrdiff_t i = 0, j, c, u;                                                               \
    for (; i + 8 * L <= n; i += 8 * L)                                                      \
        DN_SPMM_BLOCK(T, V, VU, L, 8, 0)                                                    \
    if (i == n)                                                                             \
        return;                                                                             \
    if (n % L == 0) {                                                                       \
        DN_SPMM_REST(T, V, VU, L, 0)                                                        \
    } else if (n >= L) {                                                                    \
        DN_SPMM_REST(T, V, VU, L, 1)                                                        \
    } else {                                                                                \
        for (j = 0; j < m; j++)  /* n < L: value by value */                                \
            for (u = 0; u < n; u++) {                                                       \
                T a0 = accumulate ? Y[j * ldy + u] : 0;                                     \
                for (c = start[j]; c < start[j + 1]; c++)                                   \
                    a0 += coef[c] * X[(ptrdiff_t)idx[c] * ldx + u];                         \
                Y[j * ldy + u] = a0;                                                        \
            }                                                                               \
    }                                                                                       \
}

DN_SPMM(dn_spmm_f_portable, , float, dn_f4, dn_f4_u, 4)
DN_SPMM(dn_spmm_d_portable, , double, dn_d2, dn_d2_u, 2)
#if DN_X86
DN_SPMM(dn_spmm_f_avx2, DN_TARGET_AVX2, float, dn_f8, dn_f8_u, 8)
DN_SPMM(dn_spmm_d_avx2, DN_TARGET_AVX2, double, dn_d4, dn_d4_u, 4)
DN_SPMM(dn_spmm_f_avx512, DN_TARGET_AVX512, float, dn_f16, dn_f16_u, 16)
DN_SPMM(dn_spmm_d_avx512, DN_TARGET_AVX512, double, dn_d8, dn_d8_u, 8)
#endif

/* dn_spmm in the variant isa (one this CPU runs: dn_best_isa or below) */
#define DN_SPMM_DISPATCH(NAME, T)                                                           \
static void NAME(int isa, ptrdiff_t n, ptrdiff_t m, const int32_t* start, const int32_t* idx, \
                 const T* coef, const T* X, ptrdiff_t ldx, T* Y, ptrdiff_t ldy,             \
                 int accumulate) {                                                          \
    DN_SPMM_CASES(NAME)                                                                     \
    NAME##_portable(n, m, start, idx, coef, X, ldx, Y, ldy, accumulate);                    \
}
#if DN_X86
#define DN_SPMM_CASES(NAME)                                                                 \
    if (isa == DN_AVX512) {                                                                 \
        NAME##_avx512(n, m, start, idx, coef, X, ldx, Y, ldy, accumulate);                  \
        return;                                                                             \
    }                                                                                       \
    if (isa == DN_AVX2) {                                                                   \
        NAME##_avx2(n, m, start, idx, coef, X, ldx, Y, ldy, accumulate);                    \
        return;                                                                             \
    }
#else
#define DN_SPMM_CASES(NAME)
#endif
DN_SPMM_DISPATCH(dn_spmm_f, float)
DN_SPMM_DISPATCH(dn_spmm_d, double)

/* Patch rows and their adjoint, one sample (convpool.pyx's im2row and row2im).

   dn_im2row: row oh*wo + ow of rows (R values apart) gets x[c, oh*sh + i - ph, ow*sw + j - pw]
   (C, H, W) at column (c*kh + i)*kw + j, 0 in the padding.
   dn_row2im: dx (C, H, W) = the adjoint: each row's first C*kh*kw values (rows ld apart)
   summed back into their pixels, the padding's dropped.
   Each copies or adds kw values at a time; for kw = 3, 5 and 7 that count is a constant, so
   the compiler makes each a few vector moves instead of a loop whose length it must test
   (LeNet's conv2 moves 6,400 runs of 5 values per sample each way). */
#define DN_PATCH_WALK(KW, BODY)                                                             \
    for (ptrdiff_t c = 0; c < C; c++)                                                       \
        for (ptrdiff_t i = i0; i < i1; i++) {                                               \
            ptrdiff_t const tap = (c * kh + i) * kw, pix = (c * H + top + i) * W + left;    \
            BODY(KW)                                                                        \
        }
#define DN_COPY_RUN(KW) for (ptrdiff_t j = 0; j < KW; j++) d[tap + j] = src[pix + j];
#define DN_ADD_RUN(KW) for (ptrdiff_t j = 0; j < KW; j++) dst[pix + j] += s[tap + j];
/* the walk for one window whose kw taps are all inside the width, kw a constant if it can be */
#define DN_BY_KW(BODY)                                                                      \
    switch (kw) {                                                                           \
    case 3: DN_PATCH_WALK(3, BODY) break;                                                   \
    case 5: DN_PATCH_WALK(5, BODY) break;                                                   \
    case 7: DN_PATCH_WALK(7, BODY) break;                                                   \
    default: DN_PATCH_WALK(kw, BODY)                                                        \
    }

#define DN_IM2ROW(NAME, T)                                                                  \
static void NAME(const T* __restrict src, T* __restrict rows, ptrdiff_t R, ptrdiff_t C,    \
                 ptrdiff_t H, ptrdiff_t W, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,        \
                 ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t ho, ptrdiff_t wo) {    \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                                 \
        const ptrdiff_t top = oh * sh - ph;                                                 \
        const ptrdiff_t i0 = top < 0 ? -top : 0, i1 = top + kh > H ? H - top : kh;         \
        for (ptrdiff_t ow = 0; ow < wo; ow++) {                                             \
            const ptrdiff_t left = ow * sw - pw;                                            \
            const ptrdiff_t j0 = left < 0 ? -left : 0, j1 = left + kw > W ? W - left : kw; \
            T* __restrict d = rows + (oh * wo + ow) * R;                                    \
            if (i0 > 0 || i1 < kh || j0 > 0 || j1 < kw || j1 <= j0) {                      \
                /* a window in the padding: zeros, then what lies inside */                 \
                for (ptrdiff_t t = 0; t < C * kh * kw; t++)                                 \
                    d[t] = 0;                                                               \
                for (ptrdiff_t c = 0; c < C; c++)                                           \
                    for (ptrdiff_t i = i0; i < i1; i++)                                     \
                        for (ptrdiff_t j = j0; j < j1; j++)                                 \
                            d[(c * kh + i) * kw + j] = src[(c * H + top + i) * W + left + j]; \
                continue;                                                                   \
            }                                                                               \
            DN_BY_KW(DN_COPY_RUN)                                                           \
        }                                                                                   \
    }                                                                                       \
}

/* Neighbouring windows overlap, and adding them one after the other made every add wait for
   the previous one's store (about 2x slower on LeNet's conv2): the pixels of an output row go
   in `step` interleaved passes, and the windows within one pass do not overlap. */
#define DN_ROW2IM(NAME, T)                                                                  \
static void NAME(const T* __restrict dcols, ptrdiff_t ld, T* __restrict dst, ptrdiff_t C,  \
                 ptrdiff_t H, ptrdiff_t W, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,        \
                 ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t ho, ptrdiff_t wo) {    \
    const ptrdiff_t step = (kw + sw - 1) / sw;                                              \
    for (ptrdiff_t t = 0; t < C * H * W; t++)                                               \
        dst[t] = 0;                                                                         \
    for (ptrdiff_t oh = 0; oh < ho; oh++) {                                                 \
        const ptrdiff_t top = oh * sh - ph;                                                 \
        const ptrdiff_t i0 = top < 0 ? -top : 0, i1 = top + kh > H ? H - top : kh;         \
        for (ptrdiff_t phase = 0; phase < step; phase++)                                    \
            for (ptrdiff_t ow = phase; ow < wo; ow += step) {                               \
                const ptrdiff_t left = ow * sw - pw;                                        \
                const ptrdiff_t j0 = left < 0 ? -left : 0;                                  \
                const ptrdiff_t j1 = left + kw > W ? W - left : kw;                         \
                const T* __restrict s = dcols + (oh * wo + ow) * ld;                        \
                if (j0 > 0 || j1 < kw) {                                                    \
                    for (ptrdiff_t c = 0; c < C; c++)                                       \
                        for (ptrdiff_t i = i0; i < i1; i++)                                 \
                            for (ptrdiff_t j = j0; j < j1; j++)                             \
                                dst[(c * H + top + i) * W + left + j] += s[(c * kh + i) * kw + j]; \
                    continue;                                                               \
                }                                                                           \
                DN_BY_KW(DN_ADD_RUN)                                                        \
            }                                                                               \
    }                                                                                       \
}

DN_IM2ROW(dn_im2row_f, float)
DN_IM2ROW(dn_im2row_d, double)
DN_ROW2IM(dn_row2im_f, float)
DN_ROW2IM(dn_row2im_d, double)

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
