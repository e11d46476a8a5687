"""Inference's direct convs vectorised along output channels (dagnet/_kernels/direct_oc.h,
direct.pyx forward_oc): the rules `uses_oc` and `uses_taps`, the geometry `oc_geometry`, the
weights' layout `oc_packed`, and `oc_forward`, the call an eval program binds once.

Why apart from ops/direct.py: these are inference's kernels alone (no backward, no planes
kept); they share direct.py's kernel variant (ISA) and switch (ENABLED), read at call time.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dagnet import kernels
from dagnet.ops import direct, direct_oc1
from dagnet.ops.direct import _ext, _round

#: False keeps every inference conv on the planes kernel (for A/B measurements and debugging);
#: programs read it when they bind a batch size's calls
OC_ENABLED: bool = True
#: False leaves the few-tap convs on the planes kernel (A/B measurements)
TAPS_ENABLED = True
#: False: column-stride-2 convs of few taps on the grid kernel, not direct_oc.h's oc_taps2
#: (resnet_small's 1x1 skip 1.2x faster there; A/B measurements, the same bits)
TAPS2_ENABLED = True
#: see uses_oc
MIN_OC_TAPS = 16


class OcGeometry(NamedTuple):
    """Where each tap reads in the padded sample, for direct_oc.h's kernels."""

    ho: int
    wo: int
    off: np.ndarray  # (K,) int32: tap (c, i, j) at (c*Hp + i)*Wp + j, Hp = H + 2ph, Wp = W + 2pw
    nb: int  # vectors of output channels per tile: 4 where that pads no more filters, else 2
    rows: int  # Mp: the filters rounded up to whole tiles of nb vectors
    size: int  # values of one thread's scratch: the padded sample (none if pad is 0), the grid


@functools.lru_cache(maxsize=256)
def oc_geometry(x_shape: tuple, w_shape: tuple, stride: tuple, pad: tuple,
                lanes: int) -> OcGeometry:
    """The taps' offsets and the scratch of an inference conv of per-example input x_shape
    (C, H, W), weights w_shape (F, C, kh, kw), (height, width) stride and pad on
    direct_oc.h's kernels, for vectors of lanes."""
    (c, h, w), (f, _, kh, kw), (sh, sw), (ph, pw) = x_shape, w_shape, stride, pad
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    nb, rows = _oc_tiles(f, lanes)
    ci, ii, jj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    off = ((ci * hp + ii) * wp + jj).astype(np.int32).ravel()
    padded = c * hp * wp if ph or pw else 0
    return OcGeometry(ho, wo, off, nb, rows, padded + ho * wo * rows)


def oc_geometry_for(x_shape, w_shape, stride, pad, dtype, isa: int = None) -> OcGeometry:
    """oc_geometry for variant isa's (default ISA) vectors of dtype."""
    lanes = _ext.oc_lanes(direct.ISA if isa is None else isa, np.dtype(dtype) == np.float64)
    return oc_geometry(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(pad), lanes)


def _oc_tiles(f: int, lanes: int) -> tuple:
    """(nb, Mp) of f filters: vectors of output channels per tile (4 where that pads no more
    filters than 2, else 2) and the filters rounded up to whole tiles."""
    nb = 4 if _round(f, 4 * lanes) == _round(f, 2 * lanes) else 2
    return nb, _round(f, nb * lanes)


def oc_packed(w, b, dtype, isa: int = None) -> tuple:
    """(weights, bias) of a conv as direct_oc.h's kernels read them, for variant isa (default
    ISA): w (F, C, kh, kw) as tiles of nb*L filters, each K x nb*L (zeros past F), b (F,)
    padded to the tiles' Mp."""
    lanes = _ext.oc_lanes(direct.ISA if isa is None else isa, np.dtype(dtype) == np.float64)
    return direct_oc1.channel_tiles(w, b, dtype, _oc_tiles(w.shape[0], lanes)[0] * lanes)


def uses_oc(x_shape, w_shape, stride, pad) -> bool:
    """Whether an inference conv (groups 1, no dilation, symmetric pad, its pool not fused)
    of per-example input x_shape (C, H, W) runs on direct_oc.h's kernels rather than the
    planes kernel: strided convs wider than 1x1, of at least MIN_OC_TAPS taps. Measured in
    resnet_small's eval program at batch 256, 2 threads, alternating (benchmarks/
    bench_direct.py has the single-thread rates): its 16 -> 32 3x3 stride-2 conv 1.22-1.44x
    faster (no phase planes, no grid columns past Wo); the 1x1 stride-2 projection 0.63-1.06x
    (its one phase plane has no waste to remove) with AVX2, 1.9x with AVX-512's 16-wide tiles
    (benchmarks/bench_direct.py, 7 rounds: 1x1 convs take it there); stride-1 3x3 convs
    0.72-0.91x (16 channels fill only two vectors: a broadcast per two multiply-adds, against
    one per three on the planes kernel; the output's transpose costs twice its plain copy); the
    1-channel stem (9 taps: the tile's bias loads and grid stores as large as its products)
    0.86x."""
    return (_ext is not None and direct.ENABLED and OC_ENABLED and max(stride) > 1
            and (w_shape[2] * w_shape[3] > 1 or direct.ISA >= direct.AVX512)
            and x_shape[0] * w_shape[2] * w_shape[3] >= MIN_OC_TAPS) or \
        uses_taps(x_shape, w_shape, stride)


def uses_taps(x_shape, w_shape, stride) -> bool:
    """Whether forward_oc runs an inference conv on direct_oc.h's few-tap kernel (AVX-512):
    stride 1, wider than 1x1, at most oc_taps_max() taps (C * kh * kw; a 1-channel stem):
    resnet_small's stem 1.6x faster than on the planes kernel (profile_infer.py's program)."""
    return (_ext is not None and direct.ENABLED and OC_ENABLED and TAPS_ENABLED
            and direct.ISA >= direct.AVX512 and tuple(stride) == (1, 1)
            and w_shape[2] * w_shape[3] > 1
            and x_shape[0] * w_shape[2] * w_shape[3] <= _ext.oc_taps_max())


def packs_oc(x_shape, w_shape, stride) -> bool:
    """Whether an inference conv's fast kernel takes oc_packed's weights (strided, or few
    taps), not Winograd's: by the shapes alone (weights refolded after a switch keep theirs)."""
    return max(stride) > 1 or x_shape[0] * w_shape[2] * w_shape[3] <= _ext.oc_taps_max()


def oc_forward(x, w, b, stride, pad, residual=None, relu=False, isa: int = None,
               threads: int = None):
    """The inference conv on direct_oc.h's kernels (packing its weights each call: the
    eval program packs them once).  x: (N, C, H, W), w: (F, C, kh, kw), b: (F,),
    residual: (N, F, Ho, Wo) or None -> (N, F, Ho, Wo)."""
    x = np.ascontiguousarray(x)
    isa = direct.ISA if isa is None else isa
    geo = oc_geometry_for(x.shape[1:], w.shape, stride, pad, x.dtype, isa)
    wq, bq = oc_packed(w, b, x.dtype, isa)
    threads = max(1, min(kernels.NUM_THREADS if threads is None else threads, x.shape[0]))
    out = np.empty((x.shape[0], w.shape[0], geo.ho, geo.wo), x.dtype)
    scratch = np.empty((threads, geo.size), x.dtype)
    res = None if residual is None else np.ascontiguousarray(residual, x.dtype)
    _ext.forward_oc(x, scratch, geo.off, wq, bq, out, geo.nb, *stride, *pad, isa, threads,
                    res, relu, TAPS2_ENABLED)
    return out
