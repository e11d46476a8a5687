"""The direct forward's stride-1 convs vectorised along output channels (dagnet/_kernels/
direct_oc1.h): the rule `uses_oc1` and the call, `forward`, that ops/direct.py's
direct_forward makes for the convs it takes.

Why: dc_gemm (direct.h) vectorises along output positions, and on small grids (resnet20's
8 x 8 and 16 x 16 outputs) its vectors pair half rows and end in narrow tiles; here a tap's
input value is broadcast against vectors of output channels, over the same planes, each output
the same sum in the same order (bitwise dc_gemm's outputs; the planes, which backward reads,
the same too).
"""
from __future__ import annotations

import numpy as np

try:
    from dagnet._kernels import direct as _ext
except ImportError:
    _ext = None

#: the convs uses_oc1 takes run direct_oc1.h's kernel; False keeps them on dc_gemm (A/B
#: measurements)
ENABLED: bool = True
#: see uses_oc1
MAX_POSITIONS = 256
MIN_CHANNELS = 16
#: the weights' bytes a block of taps reads (direct_oc1.h: they stay in L1 with the grid's
#: tiles; 12, 18 and 24 KB ran within the noise of each other, all taps at once 0.8x on
#: resnet20's 64-channel 8 x 8)
BLOCK_BYTES = 24576
#: the variant uses_oc1 asks for (isa.h DN_AVX512): its 32 registers hold the tiles
MIN_ISA = 2


def uses_oc1(x_shape, w_shape, stride, pad, isa: int) -> bool:
    """Whether direct_forward runs a conv of per-example input x_shape (C, H, W), weights
    w_shape (F, C, kh, kw), (height, width) stride and pad on direct_oc1.h's kernel for
    variant isa: AVX-512, stride 1, F a multiple of 32 (tiles of two 16-float vectors of
    filters), C at least MIN_CHANNELS and at most MAX_POSITIONS output positions,
    where dc_gemm's grid of position vectors ends in narrow tiles. Measured single-thread,
    CPU time, batch 64, alternating with dc_gemm in process, medians of 15 rounds, load 5.6
    (benchmarks/bench_conv_parts.py's convs): resnet20's 32-channel 16 x 16 forward 1.05x,
    64-channel 8 x 8 forward 1.03-1.06x and its input gradient (ops/conv_planes.py) 1.05x;
    resnet_small's 32-channel 14 x 14 forward 1.11-1.14x; convnet_deep's 32 -> 64 and
    64 -> 64 at 14 x 14 1.08-1.14x. Left on dc_gemm: 28 x 28 (32 channels: 1.00x) and 1 or 3
    input channels (the tile's grid loads and stores per block of taps as many as its
    products: 0.9-1.0x)."""
    if not (_ext is not None and ENABLED and isa >= MIN_ISA and tuple(stride) == (1, 1)
            and w_shape[0] % 32 == 0 and x_shape[0] >= MIN_CHANNELS):
        return False
    ho = x_shape[1] + 2 * pad[0] - w_shape[2] + 1
    wo = x_shape[2] + 2 * pad[1] - w_shape[3] + 1
    return ho > 0 and wo > 0 and ho * wo <= MAX_POSITIONS


def channel_tiles(w, b, dtype, nc: int) -> tuple:
    """(weights, bias) of a conv in tiles of nc filters, each K x nc (zeros past F), the bias
    (F,) padded to whole tiles: direct_oc.h's and direct_oc1.h's layout."""
    f = w.shape[0]
    k = w[0].size
    rows = -(-f // nc) * nc
    wk = np.zeros((rows, k), dtype=dtype)
    wk[:f] = w.reshape(f, k)
    bq = np.zeros(rows, dtype=dtype)
    bq[:f] = b
    return np.ascontiguousarray(wk.reshape(rows // nc, nc, k).transpose(0, 2, 1)).ravel(), bq


def forward(x, w, b, pad, planes, out, geo, isa: int, threads: int):
    """out (N, F, Ho, Wo) = the stride-1 conv of x (N, C, H, W) by w (F, C, kh, kw), b (F,),
    (height, width) pad, on direct_oc1.h's kernel for variant isa, writing the planes (N,
    geo.size) of ops/direct.py's geometry geo on the way (for backward), on threads."""
    dtype = x.dtype
    wq, bq = channel_tiles(w, b, dtype, 2 * _ext.oc_lanes(isa, dtype == np.float64))
    grid = np.empty((threads, geo.ho * geo.wo * bq.size), dtype=dtype)
    kb = max(1, BLOCK_BYTES // (bq.size * dtype.itemsize))
    _ext.forward_oc1(x, planes, geo.off, wq, bq, grid, out, kb, *pad, geo.hq, geo.wq, isa,
                     threads)
