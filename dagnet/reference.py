"""Loop-based reference ops: the ground truth the fast kernels are tested against.

Written to be read and checked by hand, not to be fast: every function is a direct loop over
the definition. Shapes are NCHW: x (N, C, H, W), conv weights w (F, C/groups, kh, kw), bias
b (F,). `stride` and `dilation` are an int or a (height, width) pair, `pad` an int, a pair or
(top, left, bottom, right); an output has Ho = 1 + (H + top + bottom - (kh - 1)*dh - 1) // sh
rows (a stride that does not tile the input drops the rest; a pool's ceil_mode keeps a last
partial window that starts inside the input or its top padding).

Convolution, as in every deep-learning framework, is cross-correlation:
    out[n, f, i, j] = b[f] + sum_{c, u, v} xpad[n, g*C/G + c, i*sh + u*dh, j*sw + v*dw]
                                           * w[f, c, u, v]      (g = f // (F/G), the group)
and it can be read two ways, both written out here (the second for dense, ungrouped convs):
  (a) `conv_forward`: each output is the dot product of the filter with one input patch;
  (b) `conv_forward_scatter`: each input value scatters itself, times the flipped filter, onto
      the outputs it touches (the signal-processing convolution with the flipped filter).
Their backward passes, also two ways:
  `conv_backward` walks the loops of (a) in reverse: each output's gradient flows back to its
      patch (dx) and its filter (dw);
  `conv_backward_as_convolutions`: dx = full convolution of the upstream gradient with the
      flipped filter (pad k - p - 1; the stride becomes zeros between dout's entries),
      dw = convolution of the input with the upstream gradient.
The transposed convolution is (a)'s backward for dx run forward: each input pixel scatters
itself times the filter onto the output (`conv_transpose_forward`).
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


def _pads4(pad):
    """An int, (h, w) or (top, left, bottom, right) as the four."""
    if isinstance(pad, (list, tuple)) and len(pad) == 4:
        return tuple(pad)
    ph, pw = as_pair(pad)
    return ph, pw, ph, pw


def _extent(size, k, s, begin, end, d, ceil_mode=False):
    """Windows along one axis: floor((L + begin + end - span) / s) + 1, or with ceil_mode the
    ceiling, less a last window that would start in the end padding."""
    room = size + begin + end - (k - 1) * d - 1
    if not ceil_mode:
        return room // s + 1
    out = int(np.ceil(room / s)) + 1
    return out - 1 if (out - 1) * s >= size + begin else out


def _sizes(x_shape, ksize, stride, pads, dil, ceil_mode=False):
    return tuple(_extent(x_shape[2 + a], ksize[a], stride[a], pads[a], pads[2 + a], dil[a],
                         ceil_mode) for a in range(2))


def _pad_to(x, pads, value, reach):
    """x padded by (top, left) before and, after, up to `reach` (H', W') cells in all."""
    after = [max(0, r - p - s) for r, p, s in zip(reach, pads[:2], x.shape[2:])]
    return np.pad(x, ((0, 0), (0, 0), (pads[0], after[0]), (pads[1], after[1])),
                  constant_values=value)


# -- convolution ---------------------------------------------------------------------------
def conv_forward(x, w, b, stride=1, pad=0, dilation=1, groups=1):
    """View (a): output = filter . patch + bias.  -> out (N, F, Ho, Wo)."""
    (sh, sw), (dh, dw), pads = as_pair(stride), as_pair(dilation), _pads4(pad)
    (n_, _, _, _), (f_, cg, kh, kw) = x.shape, w.shape
    ho, wo = _sizes(x.shape, (kh, kw), (sh, sw), pads, (dh, dw))
    xp = _pad_to(x, pads, 0.0, ((ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1))
    out = np.zeros((n_, f_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for f in range(f_):
            c0 = f // (f_ // groups) * cg  # the first input channel of f's group
            for i in range(ho):
                for j in range(wo):
                    patch = xp[n, c0:c0 + cg, i * sh:i * sh + (kh - 1) * dh + 1:dh,
                               j * sw:j * sw + (kw - 1) * dw + 1:dw]  # (C/G, kh, kw)
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


def conv_backward(dout, x, w, stride=1, pad=0, dilation=1, groups=1):
    """Backward of view (a), loop by loop.  dout: (N, F, Ho, Wo) -> (dx, dw, db)."""
    (sh, sw), (dh, dw_), pads = as_pair(stride), as_pair(dilation), _pads4(pad)
    (n_, f_, ho, wo), (_, cg, kh, kw) = dout.shape, w.shape
    xp = _pad_to(x, pads, 0.0, ((ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw_ + 1))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(n_):
        for f in range(f_):
            c0 = f // (f_ // groups) * cg
            for i in range(ho):
                for j in range(wo):
                    at = (n, slice(c0, c0 + cg), slice(i * sh, i * sh + (kh - 1) * dh + 1, dh),
                          slice(j * sw, j * sw + (kw - 1) * dw_ + 1, dw_))
                    # out[n, f, i, j] = sum(patch * w[f]) + b[f]: each factor gets the other
                    dxp[at] += w[f] * dout[n, f, i, j]
                    dw[f] += xp[at] * dout[n, f, i, j]
    dx = dxp[:, :, pads[0]:pads[0] + x.shape[2], pads[1]:pads[1] + x.shape[3]]
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


def conv_transpose_forward(x, w, b, stride=1, pad=0, output_padding=0, dilation=1, groups=1):
    """Each input value times the filter, added onto the output at stride spacing:
    out[n, g*F/G + f, i*sh - top + u*dh, j*sw - left + v*dw] += x[n, c, i, j] * w[c, f, u, v]
    (c in group g).  x: (N, C, H, W), w: (C, F/G, kh, kw) -> (N, F, Ho, Wo),
    Ho = (H - 1)*sh - top - bottom + (kh - 1)*dh + 1 + output_padding."""
    (sh, sw), (dh, dw), (oph, opw) = as_pair(stride), as_pair(dilation), as_pair(output_padding)
    pads = _pads4(pad)
    (n_, c_, h, w_in), (_, fg, kh, kw) = x.shape, w.shape
    ho = (h - 1) * sh - pads[0] - pads[2] + (kh - 1) * dh + 1 + oph
    wo = (w_in - 1) * sw - pads[1] - pads[3] + (kw - 1) * dw + 1 + opw
    cg = c_ // groups
    # the full output before cropping the pads: top/left rows at -pad land at index 0
    full = np.zeros((n_, fg * groups, max(ho + pads[0], (h - 1) * sh + (kh - 1) * dh + 1),
                     max(wo + pads[1], (w_in - 1) * sw + (kw - 1) * dw + 1)), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            f0 = c // cg * fg
            for i in range(h):
                for j in range(w_in):
                    for u in range(kh):
                        for v in range(kw):
                            full[n, f0:f0 + fg, i * sh + u * dh, j * sw + v * dw] += \
                                x[n, c, i, j] * w[c, :, u, v]
    return full[:, :, pads[0]:pads[0] + ho, pads[1]:pads[1] + wo] + b[None, :, None, None]


def conv_transpose_backward(dout, x, w, stride=1, pad=0, dilation=1, groups=1):
    """The loops of conv_transpose_forward in reverse.  -> (dx, dw, db)."""
    (sh, sw), (dh, dw_), pads = as_pair(stride), as_pair(dilation), _pads4(pad)
    (n_, c_, h, w_in), (_, fg, kh, kw), (ho, wo) = x.shape, w.shape, dout.shape[2:]
    cg = c_ // groups
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n in range(n_):
        for c in range(c_):
            f0 = c // cg * fg
            for i in range(h):
                for j in range(w_in):
                    for u in range(kh):
                        for v in range(kw):
                            y, z = i * sh + u * dh - pads[0], j * sw + v * dw_ - pads[1]
                            if 0 <= y < ho and 0 <= z < wo:  # else cropped: no gradient
                                g = dout[n, f0:f0 + fg, y, z]
                                dx[n, c, i, j] += np.sum(g * w[c, :, u, v])
                                dw[c, :, u, v] += g * x[n, c, i, j]
    return dx, dw, dout.sum(axis=(0, 2, 3))


# -- pooling -------------------------------------------------------------------------------
def _pool_geometry(x_shape, size, stride, pad, dilation=1, ceil_mode=False):
    size = as_pair(size)
    stride = size if stride is None else as_pair(stride)
    pads, dil = _pads4(pad), as_pair(dilation)
    return size, stride, pads, dil, _sizes(x_shape, size, stride, pads, dil, ceil_mode)


def _window_cells(i, j, size, stride, pads, dil):
    """The (row, column) cells of window (i, j), in row-major tap order."""
    return [(i * stride[0] - pads[0] + u * dil[0], j * stride[1] - pads[1] + v * dil[1])
            for u in range(size[0]) for v in range(size[1])]


def maxpool_forward(x, size, stride=None, pad=0, dilation=1, ceil_mode=False):
    """Max over each window's cells inside the input (padding is -inf).  -> (N, C, Ho, Wo)."""
    size, stride, pads, dil, (ho, wo) = _pool_geometry(x.shape, size, stride, pad, dilation,
                                                       ceil_mode)
    h, w = x.shape[2:]
    out = np.full((*x.shape[:2], ho, wo), -np.inf, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            for y, z in _window_cells(i, j, size, stride, pads, dil):
                if 0 <= y < h and 0 <= z < w:
                    out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, y, z])
    return out


def maxpool_backward(dout, x, size, stride=None, pad=0, dilation=1, ceil_mode=False):
    """Each window's gradient goes to its max; on ties, the first in row-major order."""
    size, stride, pads, dil, (ho, wo) = _pool_geometry(x.shape, size, stride, pad, dilation,
                                                       ceil_mode)
    h, w = x.shape[2:]
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(ho):
                for j in range(wo):
                    cells = [(y, z) for y, z in _window_cells(i, j, size, stride, pads, dil)
                             if 0 <= y < h and 0 <= z < w]
                    if cells:
                        k = int(np.argmax([x[n, c, y, z] for y, z in cells]))  # the first max
                        dx[n, c, cells[k][0], cells[k][1]] += dout[n, c, i, j]
    return dx


def _avg_divisors(x_shape, size, stride, pads, dil, out_size, count_include_pad):
    """Per window: the cells of the input it covers, or with count_include_pad those of the
    padded input [-top, H + bottom) (PyTorch's rule, ceil_mode windows included)."""
    h, w = x_shape[2:]
    lo, hi = ((-pads[0], -pads[1]), (h + pads[2], w + pads[3])) if count_include_pad \
        else ((0, 0), (h, w))
    div = np.zeros(out_size)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            div[i, j] = sum(lo[0] <= y < hi[0] and lo[1] <= z < hi[1]
                            for y, z in _window_cells(i, j, size, stride, pads, dil))
    return div


def avgpool_forward(x, size, stride=None, pad=0, dilation=1, ceil_mode=False,
                    count_include_pad=True):
    """Sum over each window's cells inside the input over its divisor.  -> (N, C, Ho, Wo)."""
    size, stride, pads, dil, out_size = _pool_geometry(x.shape, size, stride, pad, dilation,
                                                       ceil_mode)
    h, w = x.shape[2:]
    div = _avg_divisors(x.shape, size, stride, pads, dil, out_size, count_include_pad)
    out = np.zeros((*x.shape[:2], *out_size), dtype=x.dtype)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            for y, z in _window_cells(i, j, size, stride, pads, dil):
                if 0 <= y < h and 0 <= z < w:
                    out[:, :, i, j] += x[:, :, y, z]
            out[:, :, i, j] /= max(div[i, j], 1)
    return out


def avgpool_backward(dout, x, size, stride=None, pad=0, dilation=1, ceil_mode=False,
                     count_include_pad=True):
    """Each window spreads dout / its divisor evenly over its cells inside the input."""
    size, stride, pads, dil, out_size = _pool_geometry(x.shape, size, stride, pad, dilation,
                                                       ceil_mode)
    h, w = x.shape[2:]
    div = _avg_divisors(x.shape, size, stride, pads, dil, out_size, count_include_pad)
    dx = np.zeros_like(x)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            for y, z in _window_cells(i, j, size, stride, pads, dil):
                if 0 <= y < h and 0 <= z < w:
                    dx[:, :, y, z] += dout[:, :, i, j] / max(div[i, j], 1)
    return dx


# -- relu's input gradient --------------------------------------------------------------------
def relu_grad(dout, y):
    """dout[i] if y[i] > 0 else +0.0, value by value (torch's threshold_backward)."""
    out = np.empty(dout.shape, dout.dtype)
    for i in np.ndindex(dout.shape):
        out[i] = dout[i] if y[i] > 0 else 0.0
    return out


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
