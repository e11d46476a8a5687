"""Element-wise special functions numpy lacks (erf): the compiled kernel, or Python's math.erf
per value where the kernels are not built.  x: any shape, float32/float64 -> like x."""
from __future__ import annotations

import math

import numpy as np

from dagnet import kernels

try:
    from dagnet._kernels import special as _special_ext
except ImportError:  # kernels.py has warned already
    _special_ext = None

#: below this many values erf runs on one thread (waking the others costs more than it saves)
ERF_VALUES_PER_THREAD = 32768


def erf(x, out=None):
    """erf element-wise, x's shape and float dtype. out: an array like x."""
    if _special_ext is None:
        return erf_numpy(x, out)
    flat = np.ascontiguousarray(x).reshape(-1)
    res = out if out is not None and out.flags.c_contiguous else np.empty(x.shape, x.dtype)
    threads = max(1, min(kernels.NUM_THREADS, flat.size // ERF_VALUES_PER_THREAD))
    _special_ext.erf(flat, res.reshape(-1), threads)
    if out is not None and res is not out:
        out[...] = res
        return out
    return res


def erf_numpy(x, out=None):
    """erf without the compiled kernels: Python's math.erf per value (correct, ~50x slower)."""
    res = np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    if out is None:
        return res
    out[...] = res
    return out
