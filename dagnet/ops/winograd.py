"""Winograd F(2x2, 3x3): inference 3x3 stride-1 convs in 2.25x fewer multiplies.

    x: (N, C, H, W), w: (F, C, 3, 3), b: (F,), pad (ph, pw) -> (N, F, H + 2ph - 2, W + 2pw - 2)

Each 2x2 block of outputs is A^T [sum_c (G g G^T) * (B^T d B)] A over the 4x4 input block
under it: 16 products per input channel and output channel for 4 outputs, against the
direct conv's 36 (dagnet/_kernels/winograd.h has the matrices, the layout and the blocking).
The filters' transform U = G g G^T is computed once, in float64, when an eval program binds
its calls (as batchnorm is folded); `packed` does it.

Why: resnet_small's eval program spends almost all its time in 3x3 stride-1 convs of 16 and
32 channels, where the direct kernels (direct.h) run near what a direct conv can do; fewer
multiplies is what is left. The sums differ from the direct conv's (a transform, then the
products): the tests hold the outputs to a float64 reference within a bound derived from the
transforms' magnitudes. Training keeps the direct and im2col convs (no Winograd backward).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dagnet import kernels
from dagnet.ops import direct

_ext = direct._ext

#: False keeps every inference conv off Winograd (for A/B measurements and debugging);
#: programs read it when they pack weights and bind a batch size's calls
ENABLED: bool = True
#: input channels below this stay on the direct kernels: see uses_wino
MIN_CHANNELS = 32

#: F(2x2, 3x3)'s filter transform (4 x 3)
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


class WinoGeometry(NamedTuple):
    """The planes and tile grid of one conv shape for winograd.h."""

    ho: int
    wo: int
    hq: int  # the stride-2 phase planes' height and width (direct.h's planes, sh = sw = 2)
    wq: int
    qr: int  # the tile grid's positions ceil(ho / 2) * wq, rounded up to whole vectors
    size: int  # values of a sample's planes, their zero tail included
    scratch: int  # values of one thread's scratch row (planes, block buffers, output phases)


@functools.lru_cache(maxsize=256)
def geometry(x_shape: tuple, w_shape: tuple, pad: tuple, isa: int,
             is_double: bool) -> WinoGeometry:
    """The geometry of a 3x3 stride-1 conv of per-example input x_shape (C, H, W), weights
    w_shape (F, C, 3, 3) and (height, width) pad, for variant isa's vectors."""
    (c, h, w), f, (ph, pw) = x_shape, w_shape[0], pad
    lanes = _ext.lanes(isa, is_double)
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    hq, wq = (h + 2 * ph + 1) // 2, (w + 2 * pw + 1) // 2
    qr = -(-((ho + 1) // 2 * wq) // lanes) * lanes
    size = max(4 * c * hq * wq, (4 * c - 1) * hq * wq + wq + 1 + qr)
    return WinoGeometry(ho, wo, hq, wq, qr, size,
                        _ext.wino_scratch(c, f, size, qr, isa, is_double))


def packed(w, b, dtype) -> tuple:
    """(u, bias) as winograd.h reads them: U = G g G^T of w (F, C, 3, 3), computed in
    float64, laid out (16, ceil(F / 4), C, 4) (zeros past F), b (F,) padded to the tiles."""
    f, c = w.shape[:2]
    r = _ext.WINO_ROWS
    tiles = -(-f // r)
    u = np.einsum("ai,fcij,bj->abcf", G, np.asarray(w, np.float64), G)  # (4, 4, C, F)
    up = np.zeros((4, 4, c, tiles * r))
    up[..., :f] = u
    up = up.reshape(16, c, tiles, r).transpose(0, 2, 1, 3)
    bp = np.zeros(tiles * r, dtype)
    bp[:f] = b
    return np.ascontiguousarray(up, dtype).ravel(), bp


def uses_wino(x_shape, w_shape, stride, pad) -> bool:
    """Whether an inference conv (groups 1, no dilation, symmetric pad, no fused pool) of
    per-example input x_shape (C, H, W) runs on Winograd: 3x3 kernels at stride 1 with at
    least MIN_CHANNELS input channels. The transforms are shared: each input tile's by the
    F filters, each output tile's by the C input channels; with few channels they cost what
    the fewer products save. Measured single-thread against the planes kernel (benchmarks/
    bench_direct.py, alternating, 3 runs): resnet_small's 32-channel 14 x 14 convs 1.21-1.33x,
    its 16-channel 28 x 28 ones 0.99-1.07x; its eval program at batch 256, 2 threads,
    alternating: 1.12-1.14x with the 32-channel convs on Winograd, 1.04-1.09x with the
    16-channel ones too."""
    return (_ext is not None and ENABLED and direct.ENABLED and tuple(w_shape[2:]) == (3, 3)
            and tuple(stride) == (1, 1) and x_shape[0] >= MIN_CHANNELS
            and x_shape[1] + 2 * pad[0] >= 3 and x_shape[2] + 2 * pad[1] >= 3)


def forward(x, w, b, pad, residual=None, relu=False, isa: int = None, threads: int = None):
    """The inference conv by Winograd (transforming and packing its filters each call: the
    eval program does it once).  x: (N, C, H, W), w: (F, C, 3, 3), b: (F,), pad (ph, pw),
    residual: (N, F, Ho, Wo) or None -> (N, F, Ho, Wo)."""
    x = np.ascontiguousarray(x)
    isa = direct.ISA if isa is None else isa
    geo = geometry(x.shape[1:], w.shape, tuple(pad), isa, x.dtype == np.float64)
    u, bp = packed(w, b, x.dtype)
    threads = max(1, min(kernels.NUM_THREADS if threads is None else threads, x.shape[0]))
    out = np.empty((x.shape[0], w.shape[0], geo.ho, geo.wo), x.dtype)
    scratch = np.empty((threads, geo.scratch), x.dtype)
    res = None if residual is None else np.ascontiguousarray(residual, x.dtype)
    _ext.forward_wino(x, scratch, u, bp, out, *pad, geo.hq, geo.wq, geo.qr, geo.size, isa,
                      threads, res, relu)
    return out
