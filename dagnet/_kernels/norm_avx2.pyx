# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""norm.pyx built for AVX2 and FMA (8 floats, 4 doubles a vector): setup.py's ISA_FLAGS; kernels.py
takes it where the CPU runs it (ROW_ISA). The baseline build's loops convert to double and
sum two values a vector, and its statistics were compute-bound: 2x the time of this build."""
include "norm.pyx"
