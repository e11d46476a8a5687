"""The stride-1 convs the direct kernels (ops/direct.py) leave to im2col because of their
input gradient, on the direct kernels' forward all the same.

The direct kernels' dx computes the taps that fall in dout's padding, so `uses_direct` leaves
convs with small outputs to im2col (resnet20's 64-channel 8 x 8: its dx grid is 1.9x the input).
But the input gradient of a stride-1 conv padded by p is itself a stride-1 conv, of dout padded
by k - 1 - p with the filters flipped and their channel axes swapped (F in, C out), which the
direct forward runs with no such waste: `dx_by_direct`, `direct_input_grad`. Where the forward's
grid is narrow too, the forward runs there as well (`fwd_by_direct`): its planes are the
zero-padded input, and dw comes from them (`planes_backward`): on the direct kernels' dw along
output channels where they take it (AVX-512, more than 16 filters of at least 128 taps:
ops/direct.py uses_dwt), else by im2col + GEMM by blocks in cache (ops/conv_blocks.py
planes_dw), bitwise what the im2col forward's columns give.

The direct kernels' sums run in another order than the GEMMs': outputs and dx differ from the
im2col path's in the last bits (float32 within ~1e-6 of their scale); each is bitwise the same
for any thread count (one sample per thread).
"""
from __future__ import annotations

import numpy as np

from dagnet.ops import direct
from dagnet.ops.base import as_pair
from dagnet.ops.conv_blocks import planes_dw
from dagnet.ops.direct import DirectCache, direct_backward, direct_forward, planes_size, uses_dwt
from dagnet.ops.window import as_pads, is_symmetric

#: training's input gradients of the stride-1 im2col convs by the direct kernels' forward
#: where `dx_by_direct` takes them; False: GEMM + col2im (for A/B measurements)
DX_DIRECT: bool = True
#: the forward of the im2col convs whose input gradient runs so (`fwd_by_direct`) on the direct
#: kernels too, dw by blocks from their planes (ops/conv_blocks.py planes_dw); False: im2col +
#: GEMM (for A/B measurements). Plans read it when they are compiled (workspace sizes)
FWD_DIRECT: bool = True


def dx_by_direct(x_shape, w_shape, stride, pad, dilation, dout_shape) -> bool:
    """Whether conv_backward computes the input gradient of an im2col conv (groups 1) of input
    x_shape (N, C, H, W), weights w_shape (F, C, kh, kw), (top, left) pad and output dout_shape
    by `direct_input_grad`: stride and dilation 1, the same pad on both sides of each axis, at
    most the kernel's extent less one, and a gradient conv (F input channels, pad k - 1 - p)
    whose direct forward computes at most 1.25x its outputs (uses_direct's rule). resnet20's
    64-channel 8 x 8 convs, batch 64: dx 4.0 ms of CPU against 6.0 for the GEMM + col2im (one
    thread, medians of 9 rounds)."""
    if not DX_DIRECT or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        return False
    (kh, kw), (ph, pw) = w_shape[2:], pad
    ho, wo = dout_shape[2:]
    bottom, right = ho - x_shape[2] - ph + kh - 1, wo - x_shape[3] - pw + kw - 1
    if (bottom, right) != (ph, pw) or ph > kh - 1 or pw > kw - 1:
        return False
    # the direct forward's rule of uses_direct (its grid computes at most 1.25x the outputs);
    # its rule for the direct dx does not apply: this dx is a forward
    if direct._ext is None or not direct.ENABLED or (kh, kw) == (1, 1):
        return False
    geo = direct.geometry((w_shape[0], ho, wo), (w_shape[1], w_shape[0], kh, kw), (1, 1),
                          (kh - 1 - ph, kw - 1 - pw), 1)
    return geo.wq <= 1.25 * geo.wo


class PlanesCache(DirectCache):
    """A `fwd_by_direct` conv's DirectCache: backward by `planes_backward`."""

    __slots__ = ()


def planes_backward(dout, cache, need_dx=True):
    """Gradients (dx or None, dw, db) of a `fwd_by_direct` conv from its PlanesCache: dx by
    direct_input_grad; dw and db on the direct kernels' dc_dwt where uses_dwt takes the filters
    (resnet20's 64-channel 8 x 8 convs, batch 64: 1.45x faster than planes_dw on 2 threads,
    1.38x on one, CPU time; medians of 11 alternating rounds), else by planes_dw."""
    dx = direct_input_grad(dout, cache.w, cache.pad) if need_dx else None
    if uses_dwt(cache.w.shape, direct.ISA):
        return (dx, *direct_backward(dout, cache, False)[1:])
    return (dx, *planes_dw(dout, cache))


def fwd_by_direct(x_shape, w_shape, stride, pad, dilation=(1, 1), groups=1) -> bool:
    """Whether conv_forward runs a conv of per-example input x_shape (C, H, W) that the direct
    kernels leave to im2col (ops/conv.py takes_direct, asked first) on their forward anyway,
    backward by PlanesCache: one group, an input gradient dx_by_direct takes (stride and
    dilation 1, the same pad on both sides), a forward grid of at most 1.25x the outputs, and
    planes no larger than the columns. The direct kernels leave these convs for
    their dx (which computes the taps in dout's padding): resnet20's 64-channel 8 x 8 convs,
    batch 64, forward + dw 1.34x less CPU (11.3 against 15.2 ms, one thread; 1.39x the wall
    time on two; medians of 15 and 21 rounds, load 4.5), dw bitwise the same."""
    if not FWD_DIRECT or groups != 1:
        return False
    pads = as_pads(pad)
    if not is_symmetric(pads) or as_pair(stride) != (1, 1) or as_pair(dilation) != (1, 1):
        return False
    (kh, kw), (ph, pw) = w_shape[2:], pads[:2]
    ho, wo = x_shape[1] + 2 * ph - kh + 1, x_shape[2] + 2 * pw - kw + 1
    if ho < 1 or wo < 1 or not dx_by_direct((1, *x_shape), w_shape, (1, 1), (ph, pw), (1, 1),
                                            (1, w_shape[0], ho, wo)):
        return False
    geo = direct.geometry(tuple(x_shape), tuple(w_shape), (1, 1), (ph, pw), 1)
    return (geo.wq <= 1.25 * geo.wo and planes_size(x_shape, w_shape, (1, 1), (ph, pw))
            <= (x_shape[0] * kh * kw + 1) * ho * wo)  # the columns: an eval program's scratch


def direct_input_grad(dout, w, pad):
    """The input gradient (N, C, H, W) of the stride-1 conv of weights w (F, C, kh, kw) and
    (height, width) pad, the same on both sides, from its output gradient dout (N, F, Ho, Wo):
    the stride-1 conv of dout padded by k - 1 - p with the filters flipped and their channel
    axes swapped, on the direct kernels (ops/direct.py), each thread's planes of dout reused in
    cache (keep=False: resnet20's 64-channel 8 x 8 dx 1.06-1.07x less CPU than writing the
    batch's planes, which nothing reads again; one thread, 21 and 31 alternating rounds)."""
    wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    kh, kw = w.shape[2:]
    return direct_forward(dout, wt, np.zeros(w.shape[1], dout.dtype), (1, 1),
                          (kh - 1 - pad[0], kw - 1 - pad[1]), keep=False)[0]
