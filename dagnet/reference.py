"""Loop-based reference ops: the ground truth the fast kernels are tested against.

Written to be read and checked by hand, not to be fast: every function is a direct loop over
the definition. Shapes are NCHW: x (N, C, H, W), conv weights w (F, C, kh, kw), bias b (F,).
`stride` and `pad` are an int or a (height, width) pair; an output has
Ho = 1 + (H + 2*ph - kh) // sh rows (a stride that does not tile the input drops the rest).

Convolution, as in every deep-learning framework, is cross-correlation:
    out[n, f, i, j] = b[f] + sum_{c, u, v} xpad[n, c, i*sh + u, j*sw + v] * w[f, c, u, v]
and it can be read two ways, both written out here:
  (a) `conv_forward`: each output is the dot product of the filter with one input patch;
  (b) `conv_forward_scatter`: each input value scatters itself, times the flipped filter, onto
      the outputs it touches (the signal-processing convolution with the flipped filter).
Their backward passes, also two ways:
  `conv_backward` walks the loops of (a) in reverse: each output's gradient flows back to its
      patch (dx) and its filter (dw);
  `conv_backward_as_convolutions`: dx = full convolution of the upstream gradient with the
      flipped filter (pad k - p - 1; the stride becomes zeros between dout's entries),
      dw = convolution of the input with the upstream gradient.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops.base import as_pair


def _pad(x, pad, value=0.0):
    """x (N, C, H, W) with pad rows/columns of `value` on each side."""
    ph, pw = pad
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _out_size(x_shape, ksize, stride, pad):
    """(Ho, Wo) = 1 + (H + 2P - K) // S per axis."""
    return tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(x_shape[2:], ksize, stride, pad))


# -- convolution ---------------------------------------------------------------------------
def conv_forward(x, w, b, stride=1, pad=0):
    """View (a): output = filter . patch + bias.  -> out (N, F, Ho, Wo)."""
    stride, pad = as_pair(stride), as_pair(pad)
    (n_, _, _, _), (f_, _, kh, kw) = x.shape, w.shape
    (sh, sw), (ho, wo) = stride, _out_size(x.shape, (kh, kw), stride, pad)
    xp = _pad(x, pad)
    out = np.zeros((n_, f_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for f in range(f_):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]  # (C, kh, kw)
                    out[n, f, i, j] = np.sum(patch * w[f]) + b[f]
    return out


def conv_forward_scatter(x, w, b, stride=1, pad=0):
    """View (b): each input value adds value * flipped filter onto its outputs.  -> (N, F, Ho, Wo).

    Work at stride 1, then keep every s-th output: a stride only skips outputs.
    """
    stride, pad = as_pair(stride), as_pair(pad)
    (n_, c_, _, _), (f_, _, kh, kw) = x.shape, w.shape
    (sh, sw), (ho, wo) = stride, _out_size(x.shape, (kh, kw), stride, pad)
    xp = _pad(x, pad)
    hp, wp = xp.shape[2:]
    w_flip = w[:, :, ::-1, ::-1]
    full = np.zeros((n_, f_, hp - kh + 1, wp - kw + 1), dtype=x.dtype)  # the stride-1 outputs
    for n in range(n_):
        for c in range(c_):
            for y in range(hp):
                for z in range(wp):
                    # input (y, z) meets filter tap (y - oy, z - oz) of output (oy, oz), i.e.
                    # the flipped tap (u, v) of output (y - kh + 1 + u, z - kw + 1 + v)
                    for u in range(kh):
                        for v in range(kw):
                            oy, oz = y - kh + 1 + u, z - kw + 1 + v
                            if 0 <= oy < full.shape[2] and 0 <= oz < full.shape[3]:
                                full[n, :, oy, oz] += xp[n, c, y, z] * w_flip[:, c, u, v]
    return full[:, :, ::sh, ::sw][:, :, :ho, :wo] + b[None, :, None, None]


def conv_backward(dout, x, w, stride=1, pad=0):
    """Backward of view (a), loop by loop.  dout: (N, F, Ho, Wo) -> (dx, dw, db)."""
    stride, pad = as_pair(stride), as_pair(pad)
    (n_, f_, ho, wo), (_, _, kh, kw), (sh, sw), (ph, pw) = dout.shape, w.shape, stride, pad
    xp = _pad(x, pad)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(n_):
        for f in range(f_):
            for i in range(ho):
                for j in range(wo):
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    # out[n, f, i, j] = sum(patch * w[f]) + b[f]: each factor gets the other
                    dxp[n, :, rows, cols] += w[f] * dout[n, f, i, j]
                    dw[f] += xp[n, :, rows, cols] * dout[n, f, i, j]
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_backward_as_convolutions(dout, x, w, stride=1, pad=0):
    """Backward as two convolutions.  dout: (N, F, Ho, Wo) -> (dx, dw, db).

    dx: put dout's entries s apart (s - 1 zeros between them), pad k - p - 1 on each side
        (more at the bottom/right if a floored stride dropped input rows/columns), and slide
        the flipped filter, F and C axes swapped, over it at stride 1.
    dw: slide dout[:, f] (entries s apart) over the padded input channel c, summed over n.
    """
    stride, pad = as_pair(stride), as_pair(pad)
    (n_, f_, ho, wo), (_, c_, kh, kw), (sh, sw), (ph, pw) = dout.shape, w.shape, stride, pad
    h, w_in = x.shape[2:]
    # The dilated, padded dout: a stride-1 convolution of it with a kh x kw filter gives H x W.
    spread = np.zeros((n_, f_, h + kh - 1, w_in + kw - 1), dtype=dout.dtype)
    for i in range(ho):
        for j in range(wo):
            y, z = (kh - 1 - ph) + i * sh, (kw - 1 - pw) + j * sw
            if 0 <= y < spread.shape[2] and 0 <= z < spread.shape[3]:  # else it hit the padding
                spread[:, :, y, z] = dout[:, :, i, j]
    w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw)
    dx = conv_forward(spread, w_flip, np.zeros(c_, dtype=w.dtype))
    xp = _pad(x, pad)
    dw = np.zeros_like(w)
    for f in range(f_):
        for c in range(c_):
            for u in range(kh):
                for v in range(kw):
                    seen = xp[:, c, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw]
                    dw[f, c, u, v] = np.sum(seen * dout[:, f])
    return dx, dw, dout.sum(axis=(0, 2, 3))


# -- pooling -------------------------------------------------------------------------------
def _pool_geometry(x_shape, size, stride, pad):
    size = as_pair(size)
    stride = size if stride is None else as_pair(stride)
    pad = as_pair(pad)
    return size, stride, pad, _out_size(x_shape, size, stride, pad)


def maxpool_forward(x, size, stride=None, pad=0):
    """Max over each window, padding -inf.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""
    (kh, kw), (sh, sw), pad, (ho, wo) = _pool_geometry(x.shape, size, stride, pad)
    xp = _pad(x, pad, -np.inf)
    out = np.zeros((*x.shape[:2], ho, wo), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].max()
    return out


def maxpool_backward(dout, x, size, stride=None, pad=0):
    """Each window's gradient goes to its max; on ties, the first in row-major order."""
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _pool_geometry(x.shape, size, stride, pad)
    xp = _pad(x, (ph, pw), -np.inf)
    dxp = np.zeros_like(xp)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(ho):
                for j in range(wo):
                    k = np.argmax(xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])  # first max
                    dxp[n, c, i * sh + k // kw, j * sw + k % kw] += dout[n, c, i, j]
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]


def avgpool_forward(x, size, stride=None, pad=0):
    """Mean over each window, zero padding counted.  x: (N, C, H, W) -> (N, C, Ho, Wo)."""
    (kh, kw), (sh, sw), pad, (ho, wo) = _pool_geometry(x.shape, size, stride, pad)
    xp = _pad(x, pad)
    out = np.zeros((*x.shape[:2], ho, wo), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].mean()
    return out


def avgpool_backward(dout, x, size, stride=None, pad=0):
    """Each window spreads dout / (kh*kw) evenly over its cells."""
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _pool_geometry(x.shape, size, stride, pad)
    dxp = np.zeros_like(_pad(x, (ph, pw)))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(ho):
                for j in range(wo):
                    dxp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[n, c, i, j] / (kh * kw)
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]


# -- special functions -------------------------------------------------------------------------
def erf(x):
    """erf(x) value by value with Python's math.erf (double precision), in x's dtype."""
    import math

    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        out[i] = math.erf(float(x[i]))
    return out


# -- per-example normalisations, LRN, embedding ---------------------------------------------------
def standardise_rows(rows, eps):
    """Each row minus its mean, over its (biased) std: xhat (R, m), value by value."""
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        m = rows.shape[1]
        mean = sum(float(v) for v in rows[r]) / m
        var = sum((float(v) - mean) ** 2 for v in rows[r]) / m
        for i in range(m):
            out[r, i] = (rows[r, i] - mean) / np.sqrt(var + eps)
    return out


def standardise_rows_backward(g, rows, eps):
    """dx of standardise_rows through each row's Jacobian J[i, j] = d xhat_i / d x_j, written
    out: (delta_ij - 1/m - xhat_i xhat_j / m) / std.  g, rows: (R, m) -> (R, m)."""
    dx = np.empty_like(rows)
    xhat = standardise_rows(rows, eps)
    m = rows.shape[1]
    for r in range(rows.shape[0]):
        std = np.sqrt(np.var(rows[r]) + eps)
        jac = (np.eye(m) - 1 / m - np.outer(xhat[r], xhat[r]) / m) / std
        dx[r] = jac.T @ g[r]
    return dx


def lrn(x, size, alpha, beta, bias):
    """ONNX's LRN with its window [c - floor((size-1)/2), c + ceil((size-1)/2)], loop by loop.
    x: (N, C, ...) -> like x."""
    y = np.empty_like(x)
    c_count = x.shape[1]
    for n in range(x.shape[0]):
        for c in range(c_count):
            lo, hi = max(0, c - (size - 1) // 2), min(c_count - 1, c + size // 2)
            sq = sum(x[n, k] ** 2 for k in range(lo, hi + 1))
            y[n, c] = x[n, c] / (bias + alpha / size * sq) ** beta
    return y


def embedding_backward(dout, ids, rows):
    """The table's gradient, one looked-up position at a time.  -> (rows, D)."""
    dw = np.zeros((rows, dout.shape[-1]), dtype=dout.dtype)
    for pos in np.ndindex(ids.shape):
        dw[ids[pos]] += dout[pos]
    return dw
