"""Training's conv + relu + 2 x 2 max-pool (ops/fused.py ConvReLUPool) on the direct kernels,
pooled in their forward's read-out: each sample's grid, still in cache, is pooled with its
argmax (pool2x2.h through direct.pyx forward's argmax=) and the conv output is never
written; on convnet_deep's 32-channel 28 x 28 conv that output was 6.4 MB a step written and
read back by the pool. The maxima and argmax are bit for bit pool.pyx's of the conv output,
so the step's backward (maxpool_backward into the conv's gradient, conv_backward) is the
pool pass's too.
"""
from __future__ import annotations

import numpy as np

from dagnet.ops import direct, direct_oc1
from dagnet.ops.base import as_pair
from dagnet.ops.conv import takes_direct
from dagnet.ops.conv_planes import PlanesCache, fwd_by_direct
from dagnet.ops.direct import DirectCache
from dagnet.ops.window import as_pads

#: False: the conv output written whole, then pooled (A/B runs; read at run time)
POOL_READOUT: bool = True

#: the pool cache maxpool_backward reads, but the conv output's shape
_WINDOWS = ((2, 2), (2, 2), (0, 0), (1, 1))  # ksize, stride, (top, left) pad, dilation


def readout_kind(x_shape, w_shape, conv: dict, pool: dict, dtype):
    """The conv's cache class where `readout_forward` takes the step, else None: a float32
    conv of per-example input x_shape on the direct kernels' dc_gemm (DirectCache), or on
    their planes for a conv they leave to im2col (PlanesCache: conv_planes.fwd_by_direct),
    not on direct_oc1.h's kernel (its tiles write NCHW rows, not the grid), and a plain
    2 x 2 stride-2 pool. conv, pool: the members' read attrs (ops/fused.py)."""
    if not (POOL_READOUT and direct._ext is not None and direct._ext.pools_argmax()
            and np.dtype(dtype) == np.float32 and tuple(pool["size"]) == (2, 2)
            and tuple(pool["stride"]) == (2, 2) and not any(pool["pad"])
            and tuple(pool["dilation"]) == (1, 1) and not pool["ceil_mode"]):
        return None
    args = (x_shape, w_shape, conv["stride"], conv["pad"], conv["dilation"], conv["groups"])
    if takes_direct(*args):
        kind, stride = DirectCache, as_pair(conv["stride"])
    elif fwd_by_direct(*args):
        kind, stride = PlanesCache, (1, 1)
    else:
        return None
    if direct_oc1.uses_oc1(x_shape, w_shape, stride, as_pads(conv["pad"])[:2], direct.ISA):
        return None
    return kind


def readout_forward(x, w, b, conv: dict, kind, out=None, workspace=None):
    """The conv of x (N, C, H, W) by w, b, pooled by 2 x 2 windows at stride 2 (floored) ->
    (pooled (N, F, Ho // 2, Wo // 2), the pool's cache as maxpool_forward's (argmax uint8,
    the conv output's shape, windows), the conv's cache: `kind`, from readout_kind). out: an
    array to write the maxima into; workspace: a byte array to build the planes in."""
    stride = as_pair(conv["stride"]) if kind is DirectCache else (1, 1)
    out, cache, argmax = direct.direct_forward(x, w, b, stride, as_pads(conv["pad"])[:2], out,
                                               workspace, pool=True)
    conv_shape = (x.shape[0], w.shape[0], cache.geo.ho, cache.geo.wo)
    return out, (argmax, conv_shape, *_WINDOWS), kind(*cache)
