"""Element-wise special functions numpy lacks (erf, for the erf op and the exact gelu): the
compiled kernel (the C library's erf/erff), or a vectorised numpy twin where the kernels are
not built.  x: any shape, float32/float64 -> like x."""
from __future__ import annotations

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
    x = np.asarray(x)
    if _special_ext is None or x.dtype.kind != "f":
        return erf_numpy(x, out)
    flat = np.ascontiguousarray(x).reshape(-1)
    res = out if out is not None and out.flags.c_contiguous else np.empty(x.shape, x.dtype)
    threads = max(1, min(kernels.NUM_THREADS, flat.size // ERF_VALUES_PER_THREAD))
    _special_ext.erf(flat, res.reshape(-1), threads)
    if out is not None and res is not out:
        out[...] = res
        return out
    return res


# erf(x) = x * P(x^2) / Q(x^2) for |x| <= 0.46875 (highest power first)
_A = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
      3.77485237685302021e2, 3.20937758913846947e3)
_B = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
      2.84423683343917062e3)
# erfc(x) = exp(-x^2) * P(x) / Q(x) for 0.46875 < x <= 4
_C = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
      6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
      1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_D = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
      1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
      3.43936767414372164e3, 1.23033935480374942e3)
# erfc(x) = exp(-x^2) / x * (1/sqrt(pi) + P(1/x^2) / (x^2 Q(1/x^2))) for x > 4
_P = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
      1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_Q = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRT_PI_INV = 0.56418958354775628695
#: 2 / sqrt(pi): erf's derivative is this times exp(-x^2)
TWO_OVER_SQRT_PI = 1.1283791670955125739


def _poly(coeffs, x):
    y = np.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        y *= x
        y += c
    return y


def _exp_neg_square(y):
    """exp(-y^2) without losing digits to the rounding of y^2: Cody splits y = hi + lo with
    hi a multiple of 1/16, so hi^2 is exact."""
    hi = np.trunc(y * 16.0) / 16.0
    return np.exp(-hi * hi) * np.exp(-(y - hi) * (y + hi))


def erf_numpy(x, out=None):
    """erf in numpy alone (where the kernels are not built): W. J. Cody's rational Chebyshev
    approximations ("Rational Chebyshev approximations for the error function", Math. Comp. 23,
    1969; his CALERF's coefficients), ~1e-16 in float64 on the whole line: erf itself near 0,
    erfc elsewhere, from which erf follows without cancellation; float32 is computed in
    float64 and rounded once."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    v = x.astype(np.float64)
    y = np.abs(v)
    res = np.empty_like(v)
    small = y <= 0.46875
    if small.any():
        s = y[small] ** 2
        res[small] = v[small] * _poly(_A, s) / _poly(_B, s)
    mid = ~small & (y <= 4.0)
    if mid.any():
        ym = y[mid]
        erfc = _exp_neg_square(ym) * _poly(_C, ym) / _poly(_D, ym)
        res[mid] = np.copysign(1.0 - erfc, v[mid])
    big = y > 4.0
    if big.any():
        yb = np.minimum(y[big], 27.0)  # erfc underflows to 0 beyond ~26.5
        s = 1.0 / (yb * yb)
        erfc = _exp_neg_square(yb) * (_SQRT_PI_INV - s * _poly(_P, s) / _poly(_Q, s)) / yb
        res[big] = np.copysign(1.0 - erfc, v[big])
    nan = np.isnan(v)
    if nan.any():
        res[nan] = np.nan
    if out is None:
        return res.astype(dtype, copy=False)
    out[...] = res
    return out
