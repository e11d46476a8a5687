/* The instruction sets dagnet's hand-blocked kernels are built for, and their vector types
   (rowops.h: the fused conv + relu + max-pool's sums; direct.h: the direct convolution).

   Each kernel is one source instantiated per variant (a function per vector width with its
   target attribute), and the caller passes the variant: dn_best_isa tells the best this CPU
   runs (x86-64 with GCC or clang; elsewhere only the portable DN_PORTABLE). A vector type as
   wide as the variant's registers: GCC's target_clones compiles one vector type for every
   clone, and a 16-float type in an AVX2 clone was split into halves through the stack. */
#ifndef DAGNET_ISA_H
#define DAGNET_ISA_H
#include <stddef.h>
#include <stdint.h>

enum dn_isa { DN_PORTABLE = 0, DN_AVX2 = 1, DN_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DN_X86 1
#define DN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define DN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define DN_X86 0
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DN_CLONES
#endif

/* The best variant this CPU runs (the OS saving the wide registers included: the compiler's
   runtime checks XGETBV). */
static int dn_best_isa(void) {
#if DN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return DN_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return DN_AVX2;
#endif
    return DN_PORTABLE;
}

#define DN_VECTORS(T, B, NAME) typedef T NAME __attribute__((vector_size(B)));              \
    typedef T NAME##_u __attribute__((vector_size(B), aligned(sizeof(T))));
DN_VECTORS(float, 16, dn_f4)
DN_VECTORS(double, 16, dn_d2)
#if DN_X86
DN_VECTORS(float, 32, dn_f8)
DN_VECTORS(double, 32, dn_d4)
DN_VECTORS(float, 64, dn_f16)
DN_VECTORS(double, 64, dn_d8)
#endif
#endif
