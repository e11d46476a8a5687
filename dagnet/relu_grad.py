"""relu's input gradient from its output: dout where y > 0, else +0.0 (torch's
threshold_backward, but for a NaN y: torch passes dout there, here it gives 0 as dagnet's
batchnorm + relu kernels always have), for every op that applies relu's mask (relu, the fused conv/affine/
batchnorm + relu steps, the residual join).

A select, not the product dout * (y > 0): the product gives -0.0 where a negative dout meets a
dead unit and NaN where an infinite one does, and under the kernels' -ffast-math a compiled
product turns into a select anyway, so the two paths would disagree. Here both paths select:
the compiled kernel (special.pyx relu_grad: one pass, a compare and an AND per vector, no bool
temporary; 1.6-1.9x the product's two passes at 0.4-1.6M float32 values) where the arrays lie as
(A, B, P) with contiguous rows of P (a conv's GEMM-layout gradient does), numpy's same AND
elsewhere; the two are bitwise equal, signed zeros and NaN included.
"""
from __future__ import annotations

import numpy as np

try:
    from dagnet._kernels import special as _special_ext
except ImportError:  # kernels.py has warned already
    _special_ext = None

#: the compiled kernel on (ab_flag.py flips it: dagnet.relu_grad.KERNEL)
KERNEL = True


def relu_grad(dout, y, out=None):
    """dout where y > 0, else +0.0 (a NaN y gives 0; a NaN dout passes where y > 0).
    dout, y: arrays of one shape and float dtype; out: an array like them to write into (may be
    dout). Returns out, or a new array."""
    if KERNEL and _special_ext is not None and dout.dtype == y.dtype \
            and dout.dtype in (np.float32, np.float64) and dout.shape == y.shape:
        res = np.empty(dout.shape, dout.dtype) if out is None else out
        d3, y3, o3 = _rows(dout), _rows(y), _rows(res)
        if d3 is not None and y3 is not None and o3 is not None and res.flags.writeable:
            _special_ext.relu_grad(d3, y3, o3)
            return res
    return relu_grad_numpy(dout, y, out)


def relu_grad_numpy(dout, y, out=None):
    """relu_grad in numpy alone, the same bits: y > 0 as a whole-word mask ANDed into dout's
    bits (np.where and copyto's where= branch on the mask: 4-5x slower on random signs)."""
    dout = np.asarray(dout)
    u = np.dtype(f"u{dout.itemsize}")
    res = np.empty(dout.shape, dout.dtype) if out is None else out
    mask = np.negative(np.greater(y, 0).view(np.uint8), dtype=u)  # 1 -> all ones
    np.bitwise_and(dout.view(u), mask, out=res.view(u))
    return res


def _rows(a):
    """a as an (A, B, P) view whose P axis is contiguous (the kernel's layout), or None where
    that would take a copy."""
    if a.ndim < 1 or a.size == 0:
        return None
    s = a.shape
    shape = (1, 1, s[0]) if a.ndim == 1 else (1, *s) if a.ndim == 2 else \
        (s[0], s[1], int(np.prod(s[2:])))
    v = a.view()
    try:
        v.shape = shape  # raises where the view cannot be made
    except AttributeError:
        return None
    return v if v.strides[2] == v.itemsize else None
