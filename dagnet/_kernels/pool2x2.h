/* 2x2 stride-2 max-pool forward and its gradient on float planes, four windows a step on SSE2
   (the x86-64 baseline the wheel is built for). The scalar loops they replace (pool.pyx
   _max_2x2_plane, _unpool_2x2_plane) ran at ~3x a copy's time on convnet_deep's 32-channel
   28 x 28 planes: the stride-2 reads and writes kept GCC from vectorising them.

   The same numbers as the scalar loops, bit for bit: the max is taken in the same order
   (b over a, then c, then d, each only when strictly greater: ties keep the first), the index
   is that order's, and the gradient is dout's bits where the index matches, +0.0 elsewhere
   (an AND with the comparison's mask, as branchless.h's dn_keep_f). The forward ignores NaN
   and says whether a window held one, so the caller redoes that plane with the loop that
   propagates it. Without SSE2 (not x86-64) the functions return 0 / do nothing and the
   caller keeps its scalar loops: DN_POOL2X2 says which. */
#ifndef DAGNET_POOL2X2_H
#define DAGNET_POOL2X2_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#define DN_POOL2X2 1

/* windows ow .. ow + 3 of one output row (r0, r1: its two input rows); NaNs ORed into *bad */
static inline void dn_max2x2_4(const float* r0, const float* r1, float* o, uint8_t* g,
                               ptrdiff_t ow, __m128* bad) {
    const __m128i one = _mm_set1_epi32(1), two = _mm_set1_epi32(2), three = _mm_set1_epi32(3);
    __m128 p0 = _mm_loadu_ps(r0 + 2 * ow), p1 = _mm_loadu_ps(r0 + 2 * ow + 4);
    __m128 q0 = _mm_loadu_ps(r1 + 2 * ow), q1 = _mm_loadu_ps(r1 + 2 * ow + 4);
    __m128 a = _mm_shuffle_ps(p0, p1, _MM_SHUFFLE(2, 0, 2, 0));  /* even columns */
    __m128 b = _mm_shuffle_ps(p0, p1, _MM_SHUFFLE(3, 1, 3, 1));  /* odd columns */
    __m128 c = _mm_shuffle_ps(q0, q1, _MM_SHUFFLE(2, 0, 2, 0));
    __m128 d = _mm_shuffle_ps(q0, q1, _MM_SHUFFLE(3, 1, 3, 1));
    *bad = _mm_or_ps(*bad, _mm_or_ps(_mm_cmpunord_ps(a, b), _mm_cmpunord_ps(c, d)));
    /* maxps(u, v) is u > v ? u : v: the scalar loop's `u if u > v else v` */
    __m128 t = _mm_cmpgt_ps(b, a);
    __m128 m = _mm_max_ps(b, a);
    __m128i k = _mm_and_si128(_mm_castps_si128(t), one);
    __m128i s = _mm_castps_si128(_mm_cmpgt_ps(c, m));
    k = _mm_or_si128(_mm_and_si128(s, two), _mm_andnot_si128(s, k));
    m = _mm_max_ps(c, m);
    s = _mm_castps_si128(_mm_cmpgt_ps(d, m));
    k = _mm_or_si128(_mm_and_si128(s, three), _mm_andnot_si128(s, k));
    m = _mm_max_ps(d, m);
    _mm_storeu_ps(o + ow, m);
    k = _mm_packs_epi32(k, k);
    k = _mm_packus_epi16(k, k);
    int32_t k4 = _mm_cvtsi128_si32(k);
    memcpy(g + ow, &k4, 4);
}

/* out, arg (ho x wo) from the plane x (rows W floats apart); returns 1 if a window holds a
   NaN (out and arg are then not the op's: redo the plane), else 0. */
static inline int dn_max2x2_f(const float* x, float* out, uint8_t* arg, ptrdiff_t W,
                              ptrdiff_t ho, ptrdiff_t wo) {
    __m128 bad = _mm_setzero_ps();
    int sbad = 0;
    for (ptrdiff_t oh = 0; oh < ho; oh++) {
        const float* r0 = x + 2 * oh * W;
        const float* r1 = r0 + W;
        float* o = out + oh * wo;
        uint8_t* g = arg + oh * wo;
        ptrdiff_t ow = 0;
        for (; ow + 4 <= wo; ow += 4)
            dn_max2x2_4(r0, r1, o, g, ow, &bad);
        if (ow < wo && wo >= 4) {  /* the last four again, overlapping: the same values */
            dn_max2x2_4(r0, r1, o, g, wo - 4, &bad);
            ow = wo;
        }
        for (; ow < wo; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1], m;
            int k, t;
            sbad |= (a != a) | (b != b) | (c != c) | (d != d);
            k = b > a;
            m = b > a ? b : a;
            t = c > m;
            k += t * (2 - k);
            m = c > m ? c : m;
            t = d > m;
            k += t * (3 - k);
            m = d > m ? d : m;
            o[ow] = m;
            g[ow] = (uint8_t)k;
        }
    }
    return sbad | (_mm_movemask_ps(bad) != 0);
}

/* dn_max2x2_f's numbers where no window holds a NaN, else those of pool.pyx's _max_plane,
   the loop that propagates it (the last NaN in a window wins, as in PyTorch): for callers
   outside pool.pyx (direct.pyx's read-out pools its grid with it). */
static inline void dn_pool2x2_f(const float* x, float* out, uint8_t* arg, ptrdiff_t W,
                                ptrdiff_t ho, ptrdiff_t wo) {
    if (!dn_max2x2_f(x, out, arg, W, ho, wo))
        return;
    for (ptrdiff_t oh = 0; oh < ho; oh++)
        for (ptrdiff_t ow = 0; ow < wo; ow++) {
            const float* r = x + 2 * oh * W + 2 * ow;
            float m = r[0];
            int k = 0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    float v = r[i * W + j];
                    if ((v > m) | (v != v)) {
                        m = v;
                        k = 2 * i + j;
                    }
                }
            out[oh * wo + ow] = m;
            arg[oh * wo + ow] = (uint8_t)k;
        }
}

/* one dx row's cells 2 ow .. 2 ow + 7 from windows ow .. ow + 3 (left, right: the indices
   of the row's two cells in a window) */
static inline void dn_unpool2x2_4(const float* g, const uint8_t* k, float* row, ptrdiff_t ow,
                                  __m128i left, __m128i right) {
    const __m128i zero = _mm_setzero_si128();
    __m128 gv = _mm_loadu_ps(g + ow);
    int32_t k4;
    memcpy(&k4, k + ow, 4);
    __m128i kv = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(k4), zero), zero);
    __m128 v0 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(kv, left)), gv);
    __m128 v1 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(kv, right)), gv);
    _mm_storeu_ps(row + 2 * ow, _mm_unpacklo_ps(v0, v1));
    _mm_storeu_ps(row + 2 * ow + 4, _mm_unpackhi_ps(v0, v1));
}

/* dx (H x W plane) from dout and arg (ho x wo): each window's dout at its argmax, +0.0 at its
   other three cells and at the cells no window covers (a floored tiling's last row, column). */
static inline void dn_unpool2x2_f(const float* dout, const uint8_t* arg, float* dx, ptrdiff_t H,
                                  ptrdiff_t W, ptrdiff_t ho, ptrdiff_t wo) {
    for (ptrdiff_t oh = 0; oh < ho; oh++) {
        const float* g = dout + oh * wo;
        const uint8_t* k = arg + oh * wo;
        for (int i = 0; i < 2; i++) {
            float* row = dx + (2 * oh + i) * W;
            const __m128i left = _mm_set1_epi32(2 * i), right = _mm_set1_epi32(2 * i + 1);
            ptrdiff_t ow = 0;
            for (; ow + 4 <= wo; ow += 4)
                dn_unpool2x2_4(g, k, row, ow, left, right);
            if (ow < wo && wo >= 4) {  /* the last four again, overlapping: the same values */
                dn_unpool2x2_4(g, k, row, wo - 4, left, right);
                ow = wo;
            }
            for (; ow < wo; ow++) {
                uint32_t u, m0 = (uint32_t)0 - (uint32_t)(k[ow] == 2 * i),
                         m1 = (uint32_t)0 - (uint32_t)(k[ow] == 2 * i + 1);
                float v;
                memcpy(&u, g + ow, 4);
                u &= m0;
                memcpy(&v, &u, 4);
                row[2 * ow] = v;
                memcpy(&u, g + ow, 4);
                u &= m1;
                memcpy(&v, &u, 4);
                row[2 * ow + 1] = v;
            }
            if (2 * wo < W)
                memset(row + 2 * wo, 0, (size_t)(W - 2 * wo) * sizeof(float));
        }
    }
    if (2 * ho < H)
        memset(dx + 2 * ho * W, 0, (size_t)(H - 2 * ho) * (size_t)W * sizeof(float));
}
#else
#define DN_POOL2X2 0
static inline void dn_pool2x2_f(const float* x, float* out, uint8_t* arg, ptrdiff_t W,
                                ptrdiff_t ho, ptrdiff_t wo) {}
static inline int dn_max2x2_f(const float* x, float* out, uint8_t* arg, ptrdiff_t W,
                              ptrdiff_t ho, ptrdiff_t wo) { return 0; }
static inline void dn_unpool2x2_f(const float* dout, const uint8_t* arg, float* dx, ptrdiff_t H,
                                  ptrdiff_t W, ptrdiff_t ho, ptrdiff_t wo) {}
#endif
#endif
