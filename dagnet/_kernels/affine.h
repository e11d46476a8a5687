/* A fully connected layer at a small batch: y = x @ w + b (relu), one block of columns at a
   time, for the inference program's split among the caller and the helper threads
   (direct.pyx affine_small, helpers.h).

   Why: at batch 1 the layer is a matrix-vector product that reads w once (LeNet's fc1:
   800 x 500 floats, 1.6 MB) and does two flops per value read: its time is the time to
   stream w, and one core streams it at half the rate two do. BLAS's GEMV runs it on one
   thread (OpenBLAS's threads are held at 1 in dagnet's process, procenv.py). Each block of
   DN_AF_CB columns is a separate item: w's rows (D, M) are read as D strips of the block,
   one sample after the other (the block's strips, D * DN_AF_CB values, stay in L2 for the
   next sample). A column's sum runs over the rows in order and in the same code whichever
   thread takes its block: the numbers do not depend on the thread count. */
#ifndef DAGNET_AFFINE_H
#define DAGNET_AFFINE_H
#include <stddef.h>
#include "isa.h"

#define DN_AF_CB 64 /* columns per item: 8 AVX2 registers of floats */

/* y[j0:j1) of one sample: x (D,), w (D, M) row-major, b (M,), y (M,) */
#define DN_AFFINE_BODY(T)                                                                    \
    T acc[DN_AF_CB];                                                                         \
    ptrdiff_t nb = j1 - j0, i, j;                                                            \
    for (j = 0; j < DN_AF_CB; j++)                                                           \
        acc[j] = 0;                                                                          \
    if (nb == DN_AF_CB) { /* a whole block: a bound the compiler unrolls into registers */  \
        for (i = 0; i < D; i++) {                                                            \
            const T xi = x[i], *wr = w + i * M + j0;                                         \
            for (j = 0; j < DN_AF_CB; j++)                                                   \
                acc[j] += xi * wr[j];                                                        \
        }                                                                                    \
    } else {                                                                                 \
        for (i = 0; i < D; i++) {                                                            \
            const T xi = x[i], *wr = w + i * M + j0;                                         \
            for (j = 0; j < nb; j++)                                                         \
                acc[j] += xi * wr[j];                                                        \
        }                                                                                    \
    }                                                                                        \
    for (j = 0; j < nb; j++) {                                                               \
        T v = acc[j] + b[j0 + j];                                                            \
        y[j0 + j] = relu && v < 0 ? (T)0 : v; /* NaN and -0.0 pass, as np.maximum's */      \
    }

DN_CLONES static void dn_affine_f(const float* x, ptrdiff_t D, const float* w, ptrdiff_t M,
                                  const float* b, ptrdiff_t j0, ptrdiff_t j1, int relu,
                                  float* y) {
    DN_AFFINE_BODY(float)
}

DN_CLONES static void dn_affine_d(const double* x, ptrdiff_t D, const double* w, ptrdiff_t M,
                                  const double* b, ptrdiff_t j0, ptrdiff_t j1, int relu,
                                  double* y) {
    DN_AFFINE_BODY(double)
}
#endif
