/* Global average pooling's means, one function for both places that compute them: the
   inference program's head (infer.pyx gap_concat) and a batch-1 chain's convs, whose items
   average the channels they have just written (direct_split.pxi SplitChain). Both must give
   the same bits (a sample's scores do not depend on the batch size or on which call pooled
   them): one source, compiled alike into both extensions, and kept whole (noipa: no copy
   specialised on a caller's constants, whose vectorisation could order the sums otherwise);
   the variant for the widest vectors the CPU runs, the same in both.

   dst[c] = (the L values src[c * L ...] summed in double) / L, rounded once to the type.
   The sums start from the values themselves, never from a zero (an all -0.0 channel, and
   L = 1's copy, keep their sign): L < DN_GAP_LANES in order; else DN_GAP_LANES partial sums
   (lane k: values k, k + 16, ...; the tail after them added to the lanes in order), then
   the lanes added pairwise (16 -> 8 -> 4 -> 2 -> 1). Independent lanes, where the loop
   before them (one running sum per channel) waited on each add. */
#ifndef DAGNET_GAP_H
#define DAGNET_GAP_H
#include <stddef.h>
#include "isa.h"

#define DN_GAP_LANES 16

#if defined(__GNUC__) && !defined(__clang__)
#define DN_GAP_KEEP __attribute__((noipa))
#else
#define DN_GAP_KEEP __attribute__((noinline))
#endif

#define DN_GAP_BODY(T)                                                                       \
    for (ptrdiff_t c = 0; c < C; c++) {                                                      \
        const T* s = src + c * L;                                                            \
        double acc[DN_GAP_LANES], v;                                                         \
        ptrdiff_t j, k, w;                                                                   \
        if (L < DN_GAP_LANES) {                                                              \
            v = s[0];                                                                        \
            for (j = 1; j < L; j++)                                                          \
                v += s[j];                                                                   \
            dst[c] = (T)(v / (double)L);                                                     \
            continue;                                                                        \
        }                                                                                    \
        for (k = 0; k < DN_GAP_LANES; k++)                                                   \
            acc[k] = s[k];                                                                   \
        for (j = DN_GAP_LANES; j + DN_GAP_LANES <= L; j += DN_GAP_LANES)                     \
            for (k = 0; k < DN_GAP_LANES; k++)                                               \
                acc[k] += s[j + k];                                                          \
        for (k = 0; j + k < L; k++)                                                          \
            acc[k] += s[j + k];                                                              \
        for (w = DN_GAP_LANES / 2; w > 0; w /= 2)                                            \
            for (k = 0; k < w; k++)                                                          \
                acc[k] += acc[k + w];                                                        \
        dst[c] = (T)(acc[0] / (double)L);                                                    \
    }

#define DN_GAP_VARIANT(T, SUF, TARGET)                                                       \
    DN_GAP_KEEP TARGET static void dn_means_##SUF(const T* src, ptrdiff_t C, ptrdiff_t L,    \
                                                  T* dst) {                                 \
        DN_GAP_BODY(T)                                                                       \
    }
DN_GAP_VARIANT(float, f_base, )
DN_GAP_VARIANT(double, d_base, )
#if DN_X86
DN_GAP_VARIANT(float, f_avx2, DN_TARGET_AVX2)
DN_GAP_VARIANT(double, d_avx2, DN_TARGET_AVX2)
DN_GAP_VARIANT(float, f_avx512, DN_TARGET_AVX512)
DN_GAP_VARIANT(double, d_avx512, DN_TARGET_AVX512)
#endif

/* The variant this CPU runs best (dn_best_isa, asked once): both extensions pick the same. */
static int dn_gap_isa(void) {
    static int isa = -1;
    if (isa < 0)
        isa = dn_best_isa();
    return isa;
}

static void dn_means_f(const float* src, ptrdiff_t C, ptrdiff_t L, float* dst) {
#if DN_X86
    int isa = dn_gap_isa();
    if (isa == DN_AVX512)
        return dn_means_f_avx512(src, C, L, dst);
    if (isa == DN_AVX2)
        return dn_means_f_avx2(src, C, L, dst);
#endif
    dn_means_f_base(src, C, L, dst);
}

static void dn_means_d(const double* src, ptrdiff_t C, ptrdiff_t L, double* dst) {
#if DN_X86
    int isa = dn_gap_isa();
    if (isa == DN_AVX512)
        return dn_means_d_avx512(src, C, L, dst);
    if (isa == DN_AVX2)
        return dn_means_d_avx2(src, C, L, dst);
#endif
    dn_means_d_base(src, C, L, dst);
}
#endif
