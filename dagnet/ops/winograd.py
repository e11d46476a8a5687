"""Winograd F(2x2, 3x3) and F(4x4, 3x3): inference 3x3 stride-1 convs in 2.25x or 4x fewer
multiplies.

    x: (N, C, H, W), w: (F, C, 3, 3), b: (F,), pad (ph, pw) -> (N, F, H + 2ph - 2, W + 2pw - 2)

Each 2x2 block of outputs is A^T [sum_c (G g G^T) * (B^T d B)] A over the 4x4 input block
under it: 16 products per input channel and output channel for 4 outputs, against the
direct conv's 36 (dagnet/_kernels/winograd.h has the matrices, the layout and the blocking);
F(4x4, 3x3) takes 36 products over a 6x6 block for 16 outputs, against 144 (winograd4.h),
with larger rounding errors (its transforms' coefficients). `tile` picks which.
The filters' transform U = G g G^T is computed once, in float64, when an eval program binds
its calls (as batchnorm is folded); `packed` does it.

Why: resnet_small's eval program spends almost all its time in 3x3 stride-1 convs of 16 and
32 channels, where the direct kernels (direct.h) run near what a direct conv can do; fewer
multiplies is what is left. The sums differ from the direct conv's (a transform, then the
products): the tests hold the outputs to a float64 reference within a bound derived from the
transforms' magnitudes.

Training's input gradients take the same kernels (`uses_dx`, `input_grad`): the input gradient
of a 3x3 stride-1 conv padded by p is the 3x3 stride-1 conv of the output gradient padded by
2 - p, with the filters flipped and their two channel axes swapped (F in, C out). Training's
forward and dw keep the direct and im2col convs.
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
#: input channels below this stay off F(2x2, 3x3): see uses_wino
MIN_CHANNELS = 32

#: False keeps every Winograd conv on F(2x2, 3x3) (for A/B measurements and debugging)
F4_ENABLED: bool = True
#: input channels below this stay off F(4x4, 3x3): see tile
MIN_CHANNELS4 = 16
#: F(4x4, 3x3) where its grid's products are at most this share of F(2x2)'s: see tile
F4_PRODUCTS = 0.7
#: outputs narrower than this stay off F(4x4, 3x3): see tile
MIN_WIDTH4 = 28
#: False keeps the read-out a pass of its own after the grid (winograd.h wg_grid_out,
#: winograd4.h wg4_grid_out: fused into the grid's blocks where the grid is 8 positions
#: wide, float on AVX-512), for A/B measurements; programs read it when they bind a batch
#: size's calls
FUSED_OUT: bool = True

#: F(2x2, 3x3)'s filter transform (4 x 3)
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: F(4x4, 3x3)'s filter transform (6 x 3), points 0, 1, -1, 2, -2 (winograd4.h)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


class WinoGeometry(NamedTuple):
    """The planes and tile grid of one conv shape for winograd.h (m = 2) or winograd4.h
    (m = 4)."""

    m: int  # outputs per tile side: F(m x m, 3x3)
    ho: int
    wo: int
    hq: int  # the stride-m phase planes' height and width
    wq: int
    qr: int  # the tile grid's positions ceil(ho / m) * wq, rounded up to whole vectors
    size: int  # values of a sample's planes, their zero tail included
    scratch: int  # values of one thread's scratch row (planes, block buffers, output phases)


@functools.lru_cache(maxsize=256)
def geometry(x_shape: tuple, w_shape: tuple, pad: tuple, isa: int, is_double: bool,
             m: int = None) -> WinoGeometry:
    """The geometry of a 3x3 stride-1 conv of per-example input x_shape (C, H, W), weights
    w_shape (F, C, 3, 3) and (height, width) pad, for variant isa's vectors, on F(m x m, 3x3)
    (None: the one `tile` picks)."""
    (c, h, w), f, (ph, pw) = x_shape, w_shape[0], pad
    m = tile(x_shape, pad) if m is None else m
    lanes = _ext.wino_lanes(isa, is_double)
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    if m == 2:
        hq, wq = (h + 2 * ph + 1) // 2, (w + 2 * pw + 1) // 2
    else:  # a tile row further: the 6 x 6 inputs of the last tiles
        hq, wq = -(-ho // 4) + 1, -(-wo // 4) + 1
    qr = -(-(-(-ho // m) * wq) // lanes) * lanes
    planes = m * m * c * hq * wq
    size = max(planes, planes - hq * wq + wq + 1 + qr)
    scratch = _ext.wino_scratch(c, f, size, qr, isa, is_double) if m == 2 else \
        _ext.wino4_scratch(c, f, size, hq, wq, qr, isa, is_double)
    return WinoGeometry(m, ho, wo, hq, wq, qr, size, scratch)


def tile(x_shape, pad) -> int:
    """m of the F(m x m, 3x3) a Winograd conv of per-example input x_shape (C, H, W) and
    (height, width) pad runs: 4 where F(4x4)'s grid (tiles of 4 x 4 outputs, a column more)
    takes at most F4_PRODUCTS of F(2x2)'s products, with at least MIN_CHANNELS4 input
    channels; else 2. resnet_small's 28 x 28: 7 x 8 tiles of 36 products against 14 x 15 of
    16, 0.60; its 14 x 14: 4 x 5 against 7 x 8, 0.80 (F(4x4)'s 16 x 16 outputs cover 14 x 14
    with 1.3x waste). And outputs at least MIN_WIDTH4 wide: on narrower ones F(4x4) took
    1.39-1.58x F(2x2)'s time though its grid's products are fewer (16 and 32 channels at 16 x 16,
    64 at 8 x 8 and 16 x 16; 0.97-1.04x at 28 x 28 to 56 x 56; one thread, CPU time, medians
    of 7 alternating rounds): resnet20's 32-channel 16 x 16 input gradients 1.5x faster."""
    (c, h, w), (ph, pw) = x_shape, pad
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    f2 = 16 * -(-ho // 2) * ((w + 2 * pw + 1) // 2)
    f4 = 36 * -(-ho // 4) * (-(-wo // 4) + 1)
    return (4 if F4_ENABLED and c >= MIN_CHANNELS4 and wo >= MIN_WIDTH4
            and f4 <= F4_PRODUCTS * f2 else 2)


def kernel(geo: WinoGeometry):
    """The direct extension's forward of geo's F(m x m, 3x3)."""
    fn = _ext.forward_wino if geo.m == 2 else _ext.forward_wino4
    return fn if FUSED_OUT else functools.partial(fn, fused=False)


def packed(w, b, dtype, m: int = 2) -> tuple:
    """(u, bias) as winograd.h (m = 2) or winograd4.h (m = 4) reads them: U = G g G^T of w
    (F, C, 3, 3), computed in float64, laid out ((m+2)^2, ceil(F / 4), C, 4) (zeros past F),
    b (F,) padded to the tiles."""
    f, c = w.shape[:2]
    r, g, n = _ext.WINO_ROWS, (G if m == 2 else G4), m + 2
    tiles = -(-f // r)
    u = np.einsum("ai,fcij,bj->abcf", g, np.asarray(w, np.float64), g)  # (n, n, C, F)
    up = np.zeros((n, n, c, tiles * r))
    up[..., :f] = u
    up = up.reshape(n * n, c, tiles, r).transpose(0, 2, 1, 3)
    bp = np.zeros(tiles * r, dtype)
    bp[:f] = b
    return np.ascontiguousarray(up, dtype).ravel(), bp


def uses_wino(x_shape, w_shape, stride, pad) -> bool:
    """Whether an inference conv (groups 1, no dilation, symmetric pad, no fused pool) of
    per-example input x_shape (C, H, W) runs on Winograd: 3x3 kernels at stride 1 with at
    least MIN_CHANNELS input channels for F(2x2, 3x3), MIN_CHANNELS4 where `tile` picks
    F(4x4, 3x3). The transforms are shared: each input tile's by the F filters, each output
    tile's by the C input channels; with few channels they cost what the fewer products
    save. Measured single-thread against the planes kernel (benchmarks/bench_direct.py,
    alternating rounds, medians): resnet_small's 32-channel 14 x 14 convs 1.21-1.33x on
    F(2x2) (0.83-1.17x on F(4x4)); its 16-channel 28 x 28 ones 0.97-1.07x on F(2x2), 1.18-1.33x
    on F(4x4) (resnet_small's eval program at batch 256, 2 threads, alternating: 1.12-1.14x
    with them on F(4x4))."""
    if not (_ext is not None and ENABLED and direct.ENABLED and tuple(w_shape[2:]) == (3, 3)
            and tuple(stride) == (1, 1) and x_shape[1] + 2 * pad[0] >= 3
            and x_shape[2] + 2 * pad[1] >= 3):
        return False
    return x_shape[0] >= MIN_CHANNELS or tile(x_shape, pad) == 4


#: False keeps training's input gradients on the direct kernels (for A/B measurements and
#: debugging); convs read it when they run backward
DX_ENABLED: bool = True


def uses_dx(x_shape, w_shape, stride, pad) -> bool:
    """Whether the input gradient of a training conv that runs on the direct kernels (ops/
    direct.py) of per-example input x_shape (C, H, W), weights w_shape (F, C, kh, kw), (height,
    width) stride and pad runs here: the 3x3 stride-1 convs whose gradient conv (F input
    channels, pad 2 - p) uses_wino takes. Measured against the direct kernels' input gradient,
    one thread, CPU time, batch 64, medians of 3 rounds (the filter transform each call
    included): resnet20's 16-channel 32 x 32 convs 1.54x faster (F(4x4)), its 32-channel
    16 x 16 ones 1.56x; resnet_small's 16-channel 28 x 28 1.47x (F(4x4)), 32-channel 14 x 14
    1.53x (F(2x2))."""
    if not DX_ENABLED or tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or max(pad) > 2:
        return False
    (c, h, w), f, (ph, pw) = x_shape, w_shape[0], pad
    return uses_wino((f, h + 2 * ph - 2, w + 2 * pw - 2), (c, f, 3, 3), (1, 1), (2 - ph, 2 - pw))


def input_grad(dout, w, pad, threads: int = None):
    """The input gradient (N, C, H, W) of the 3x3 stride-1 conv of weights w (F, C, 3, 3) and
    (height, width) pad from its output gradient dout (N, F, Ho, Wo), by Winograd (the tile
    `tile` picks for dout's planes)."""
    dout = np.ascontiguousarray(dout)
    f, c = w.shape[:2]
    back = (2 - pad[0], 2 - pad[1])
    geo = geometry(dout.shape[1:], (c, f, 3, 3), back, direct.ISA, dout.dtype == np.float64)
    bias = np.zeros(-(-c // _ext.WINO_ROWS) * _ext.WINO_ROWS, dout.dtype)
    if geo.m == 2:
        u = packed_dx(w, dout.dtype)
    else:
        u = packed(np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]), bias[:c],
                   dout.dtype, 4)[0]
    return _conv(dout, u, bias, c, back, geo, direct.ISA, threads)


#: F(2x2, 3x3)'s filter transform as one matrix on a filter's 9 taps (row-major): row 4a + b
#: of U = G g G^T is sum_ij G[a, i] G[b, j] g[i, j]
KRON_G = np.kron(G, G)


def packed_dx(w, dtype) -> np.ndarray:
    """packed's u (m = 2) of the input gradient's filters, w (F, C, 3, 3) flipped with its two
    channel axes swapped, from w itself: its taps gathered flipped to (9, ceil(C / r), F, r),
    then one matmul by KRON_G. Why: packed's einsum on the flipped copy took 0.43 ms of each
    of resnet20's 32-channel 16 x 16 input gradients (~2.8 ms each at batch 64), 1.0-1.15 ms at
    64 channels; this takes 6-7x less (0.07 and 0.16 ms; one thread, CPU time, medians of 7
    alternating rounds): those input gradients 1.13-1.14x faster.
    Bitwise packed's for float32 weights: G x G's coefficients are 0 and powers of two, so
    each product is exact and the sums of 9 (float64) too, unless a filter's taps span more
    than 2^29 (then both round the same sum, differently ordered, to float32)."""
    f, c = w.shape[:2]
    r = _ext.WINO_ROWS
    tiles = -(-c // r)
    taps = np.zeros((f, tiles * r, 9))
    taps[:, :c] = w.reshape(f, c, 9)[:, :, ::-1]  # tap 8 - (3i + j) is (2 - i, 2 - j)
    taps = taps.reshape(f, tiles, r, 9).transpose(3, 1, 0, 2).reshape(9, -1)
    return (KRON_G @ taps).astype(dtype, copy=False).ravel()


def forward(x, w, b, pad, residual=None, relu=False, isa: int = None, threads: int = None,
            m: int = None):
    """The inference conv by Winograd F(m x m, 3x3) (None: the one `tile` picks; transforming
    and packing its filters each call: the eval program does it once).  x: (N, C, H, W),
    w: (F, C, 3, 3), b: (F,), pad (ph, pw), residual: (N, F, Ho, Wo) or None -> (N, F, Ho, Wo)."""
    x = np.ascontiguousarray(x)
    isa = direct.ISA if isa is None else isa
    geo = geometry(x.shape[1:], w.shape, tuple(pad), isa, x.dtype == np.float64, m)
    u, bp = packed(w, b, x.dtype, geo.m)
    return _conv(x, u, bp, w.shape[0], pad, geo, isa, threads, residual, relu)


def _conv(x, u, bp, f, pad, geo, isa, threads, residual=None, relu=False):
    """forward's conv of contiguous x to f output channels, from the packed filters u and bias
    bp."""
    threads = max(1, min(kernels.NUM_THREADS if threads is None else threads, x.shape[0]))
    out = np.empty((x.shape[0], f, geo.ho, geo.wo), x.dtype)
    scratch = np.empty((threads, geo.scratch), x.dtype)
    res = None if residual is None else np.ascontiguousarray(residual, x.dtype)
    kernel(geo)(x, scratch, u, bp, out, *pad, geo.hq, geo.wq, geo.qr, geo.size, isa,
                threads, res, relu)
    return out
