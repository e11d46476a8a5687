"""Loop-based references of the resampling ops (resize, depth_to_space, space_to_depth): the
ground truth of dagnet/ops/resample.py, written cell by cell from ONNX's definitions (Resize,
DepthToSpace, SpaceToDepth) to be read and checked by hand. Shapes are NCHW.
"""
from __future__ import annotations

import math

import numpy as np


def _source(o, length, out, scale, coordinates):
    """The input coordinate of output cell o (ONNX Resize's coordinate_transformation_mode)."""
    if coordinates == "align_corners":
        return o * (length - 1) / (out - 1) if out > 1 else 0.0
    if coordinates == "asymmetric":
        return o / scale
    if coordinates == "pytorch_half_pixel" and out == 1:
        return 0.0
    return (o + 0.5) / scale - 0.5


def _round(v, mode, length):
    """The input cell nearest_mode rounds coordinate v to, clamped to the axis."""
    if mode == "round_prefer_floor":
        r = math.floor(v) if v - math.floor(v) <= 0.5 else math.ceil(v)
    elif mode == "round_prefer_ceil":
        r = math.ceil(v) if math.ceil(v) - v <= 0.5 else math.floor(v)
    else:
        r = math.floor(v) if mode == "floor" else math.ceil(v)
    return min(max(int(r), 0), length - 1)


def _resize_taps(i, j, shape, out_size, scales, mode, coordinates, nearest_mode):
    """[((row, col), weight), ...] of output cell (i, j): one for nearest, four for bilinear."""
    (h, w), (ho, wo) = shape, out_size
    y = _source(i, h, ho, scales[0], coordinates)
    z = _source(j, w, wo, scales[1], coordinates)
    if mode == "nearest":
        return [((_round(y, nearest_mode, h), _round(z, nearest_mode, w)), 1.0)]
    y, z = min(max(y, 0.0), h - 1), min(max(z, 0.0), w - 1)
    y0, z0 = int(math.floor(y)), int(math.floor(z))
    y1, z1 = min(y0 + 1, h - 1), min(z0 + 1, w - 1)
    a, c = y - y0, z - z0
    return [((y0, z0), (1 - a) * (1 - c)), ((y0, z1), (1 - a) * c),
            ((y1, z0), a * (1 - c)), ((y1, z1), a * c)]


def resize_forward(x, out_size, scales, mode="nearest", coordinates="half_pixel",
                   nearest_mode="round_prefer_floor"):
    """Each output cell: its input cell (nearest) or the weighted four around its coordinate."""
    out = np.zeros((*x.shape[:2], *out_size), dtype=x.dtype)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            for (y, z), wt in _resize_taps(i, j, x.shape[2:], out_size, scales, mode,
                                           coordinates, nearest_mode):
                out[:, :, i, j] += wt * x[:, :, y, z]
    return out


def resize_backward(dout, x_shape, scales, mode="nearest", coordinates="half_pixel",
                    nearest_mode="round_prefer_floor"):
    """Each output's gradient back to the input cells it was made of, times their weights."""
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            for (y, z), wt in _resize_taps(i, j, x_shape[2:], dout.shape[2:], scales, mode,
                                           coordinates, nearest_mode):
                dx[:, :, y, z] += wt * dout[:, :, i, j]
    return dx


def depth_to_space(x, block, mode="DCR"):
    """out[n, c, h*b + i, w*b + j] = x[n, (i*b + j)*C' + c, h, w] (DCR) or
    x[n, c*b*b + i*b + j, h, w] (CRD), C' = C / b^2."""
    n_, c_, h_, w_ = x.shape
    b, d = block, c_ // (block * block)
    out = np.zeros((n_, d, h_ * b, w_ * b), dtype=x.dtype)
    for c in range(d):
        for h in range(h_):
            for w in range(w_):
                for i in range(b):
                    for j in range(b):
                        src = (i * b + j) * d + c if mode == "DCR" else c * b * b + i * b + j
                        out[:, c, h * b + i, w * b + j] = x[:, src, h, w]
    return out


def space_to_depth(x, block, mode="DCR"):
    """The inverse of depth_to_space: out[n, (i*b + j)*C + c, h, w] = x[n, c, h*b + i, w*b + j]
    (DCR; CRD: channel c*b*b + i*b + j)."""
    n_, c_, h_, w_ = x.shape
    b = block
    out = np.zeros((n_, c_ * b * b, h_ // b, w_ // b), dtype=x.dtype)
    for c in range(c_):
        for h in range(h_ // b):
            for w in range(w_ // b):
                for i in range(b):
                    for j in range(b):
                        dst = (i * b + j) * c_ + c if mode == "DCR" else c * b * b + i * b + j
                        out[:, dst, h, w] = x[:, c, h * b + i, w * b + j]
    return out
