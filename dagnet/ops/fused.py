"""Fused ops: one kernel call for a chain found by the compiler's fuse pass.

Each declares its chain (and, if not both, the modes it may fire in), which makes it a fusion
pattern (compiler/patterns.py reads them off the registry; the contract is FusedOp in
dagnet/ops/fusion.py). Forward and backward are written once per pattern and do the epilogue in
place on buffers the step owns; they must give the numbers of the unfused chain (the compiler's
check=True and the tests compare them). Those whose chain starts with a conv build its columns
in the planned workspace buffer they take as `workspace=`.

Why relu can follow the pool: max-pooling and relu commute (relu is monotone), and the gradient
agrees too: where a window's max is <= 0 both orders give zero. Doing relu after the pool
touches a quarter of the memory for 2x2 pools.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DagnetError
from dagnet.ops.base import get_op, register
from dagnet.ops.conv import columns_size, conv_backward, conv_forward, grad_buffer, takes_direct
from dagnet.ops.conv_planes import fwd_by_direct
from dagnet.ops.convpool import conv_relu_pool_backward, conv_relu_pool_forward, rows_from
from dagnet.ops.dense import affine_backward, affine_forward
from dagnet.ops.direct import geometry
from dagnet.ops.direct_pool import readout_forward, readout_kind
from dagnet.ops.fusion import FusedOp
from dagnet.ops.merge import Add
from dagnet.ops.norm import batchnorm_backward, batchnorm_forward
from dagnet.ops.pool import maxpool_backward, maxpool_forward
from dagnet.ops.workspace import Workspace
from dagnet.relu_grad import relu_grad


def _conv_args(a):
    """conv_forward's keywords from a conv2d member's attrs (every stride, pad, dilation and
    group count: the kernels the fused ops call take them all)."""
    r = get_op("conv2d").read_attrs(a)
    return {k: r[k] for k in ("stride", "pad", "dilation", "groups")}


def _pool_args(a):
    """maxpool_forward's keywords from a max_pool2d member's attrs."""
    r = get_op("max_pool2d").read_attrs(a)
    return {k: r[k] for k in ("size", "stride", "pad", "dilation", "ceil_mode")}


def _dense_windows(conv, pool) -> bool:
    """Whether the conv and the pool have the plain windows the row kernel handles: one
    group, no dilation, the same pad on both sides, no ceil_mode."""
    return (conv["groups"] == 1 and conv["dilation"] == pool["dilation"] == (1, 1)
            and not pool["ceil_mode"]
            and conv["pad"][:2] == conv["pad"][2:] and pool["pad"][:2] == pool["pad"][2:])


def _bn_args(a):
    return float(a.get("eps", 1e-5)), float(a.get("momentum", 0.9))


def _relu_mask_grad(dout, out):
    """dout where the relu output is positive, else +0.0 (a new array: dout may be shared)."""
    return relu_grad(dout, out)


_ADD = Add()  # the residual join's member op, for the joins its one pass does not take

# -- conv chains ---------------------------------------------------------------------------
@register
class ConvReLU(FusedOp):
    """conv2d then relu, applied in the same pass that lays the GEMM output out as NCHW."""

    chain = ("conv2d", "relu")
    inner_values = (0,)  # the GEMM output, before relu writes NCHW
    fresh_grads = True  # conv_backward's dx and the sums are new arrays
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b = inputs
        y, ccache = conv_forward(x, w, b, **_conv_args(self.member_attrs(attrs, "conv2d")),
                                 contiguous=False, out=out, workspace=workspace)
        # in place on NCHW output, or one pass that reads the GEMM layout and writes NCHW
        y = np.maximum(y, 0, out=y if y.flags.c_contiguous else out)
        return y, (ccache, y)

    def backward(self, dout, cache, attrs, needs=None):
        ccache, y = cache
        dy = grad_buffer(ccache, dout.shape, dout.dtype)
        relu_grad(dout, y, out=dy)  # masked and laid out for the GEMMs in one pass
        return conv_backward(dy, ccache, need_dx=needs is None or needs[0])


@register
class ConvReLUPool(FusedOp):
    """conv2d, relu and max-pool in one step, relu on the (4x smaller) pooled maxima (max and
    relu commute). Two kernels, chosen by the patch size K = C*kh*kw and the filter count F:

    - K*F / (K + F) >= ROWS_FROM: around one GEMM in row layout (ops/convpool.py), whose
      backward visits only the conv outputs that won their window. The work that saves grows
      with K*F per conv output, the row layout's extra forward work (im2row, pooling
      channels-last) with K + F.
    - below, and for every grouped, dilated or asymmetrically padded conv or pool and a
      ceil_mode pool (the row kernel's windows are dense and symmetric): conv_forward's GEMM
      output pooled as it lies, the gradient routed straight into that layout for
      conv_backward's dense GEMMs. Also where the conv takes the direct kernels and
      `direct_wins` (every 3x3 stride-1 conv: convnet_deep's 32-channel 28 x 28 conv, the step
      in 0.55-0.66x the time; its 64-channel 14 x 14 one 0.77x the CPU time),
      and where conv_forward runs it on the direct kernels' planes (`on_planes`).

    ROWS_FROM is what was measured to pay with the vector instructions this CPU runs
    (ops/convpool.py rows_from: 20 with AVX2 or AVX-512; without AVX2 never, the columns' dense GEMMs
    won); benchmarks/bench_rows.py measures it on any machine.
    """

    chain = ("conv2d", "relu", "max_pool2d")
    inner_values = (0,)  # the conv output the pool reads
    saves = frozenset({"output"})
    ROWS_FROM = rows_from()
    # direct_wins below this, for kernels other than 3x3 stride 1; fused step forward +
    # backward at batch 64, direct / rows time (in-process A/B, before the 3x3 convs' dx ran
    # on Winograd): 32ch 28x28 0.55-0.66 (K*F/(K+F) x extra = 29 x 1.19), 48ch 14x14 0.67
    # (43 x 1.39), 64ch 28x28 0.63 (58 x 1.19); 64ch 14x14 1.20-1.31 (58 x 1.39 = 80)
    DIRECT_BELOW = 75.0

    def uses_rows(self, w_shape) -> bool:
        """Whether a conv with weights of w_shape (F, C, kh, kw) gets the row-layout kernel."""
        f, k = w_shape[0], int(np.prod(w_shape[1:]))
        return k * f >= self.ROWS_FROM * (k + f)

    def _rows(self, x_shape, w_shape, conv, pool) -> bool:
        return (self.uses_rows(w_shape) and _dense_windows(conv, pool)
                and not self.direct_wins(x_shape, w_shape, conv)
                and not self.on_planes(x_shape, w_shape, conv))

    @staticmethod
    def on_planes(x_shape, w_shape, conv) -> bool:
        """Whether conv_forward runs the conv on the direct kernels' planes though they leave
        it to im2col (ops/conv_planes.py fwd_by_direct): there the dense step beats the rows,
        whose im2row copies each input value kh*kw times (forward + backward at batch 64,
        rows / planes time, 2 threads, 9 alternating rounds: the three-layer convnet's
        3 -> 32 7 x 7 conv 1.51x without dx, 1.27x with; 32 -> 64 5 x 5 at 16 x 16 1.36x;
        its training step 1.20-1.23x, 15 rounds)."""
        args = (x_shape, w_shape, conv["stride"], conv["pad"], conv["dilation"], conv["groups"])
        return not takes_direct(*args) and fwd_by_direct(*args)

    def direct_wins(self, x_shape, w_shape, conv) -> bool:
        """Whether a conv the direct kernels take (ops/direct.py) runs faster by them, dense
        backward and all, than by the rows kernel whose backward visits only the pooled
        winners. Every 3x3 stride-1 conv: its dense input gradient runs on Winograd (ops/
        winograd.py uses_dx, 2.25x fewer products) and dw on dc_dwt, and the direct forward
        beats im2row + GEMM (fused step forward + backward at batch 64, 2 x 2 pool, one thread,
        CPU time, rows / direct, 5-15 alternating rounds: 48, 64, 96, 128, 256 channels at
        14 x 14 1.32, 1.30, 1.21, 1.16, 1.20x; 64 at 28 x 28 1.84x). The rule reads the shape
        alone, not winograd.DX_ENABLED: a plan's workspace is sized for the kernel chosen when
        it was compiled. Other kernels: the larger K*F / (K + F) (the rows' saving) times the
        share of extra pixels the direct input gradient computes (its grid's padding), the
        more the rows pay."""
        if not takes_direct(x_shape, w_shape, conv["stride"], conv["pad"], conv["dilation"],
                            conv["groups"]):
            return False
        if tuple(w_shape[2:]) == (3, 3) and tuple(conv["stride"]) == (1, 1):
            return True
        f, k = w_shape[0], int(np.prod(w_shape[1:]))
        (sh, sw), geo = conv["stride"], geometry(tuple(x_shape), tuple(w_shape), conv["stride"],
                                                 conv["pad"][:2], 1)
        extra = geo.hq * geo.wd * sh * sw / (x_shape[1] * x_shape[2])
        return k * f / (k + f) * extra < self.DIRECT_BELOW

    def workspace(self, in_shapes, out_shape, attrs):
        """The members' workspace, the conv's part as the row kernel's patch rows where it
        runs (im2row, never the planes of a direct conv)."""
        ws = super().workspace(in_shapes, out_shape, attrs)
        conv_a = _conv_args(self.member_attrs(attrs, "conv2d"))
        pool_a = _pool_args(self.member_attrs(attrs, "max_pool2d"))
        if not self._rows(in_shapes[0], in_shapes[1], conv_a, pool_a):
            return ws
        _, conv, a, ins, out = next(self._walk(in_shapes, attrs))
        own, rows = conv.workspace(ins, out, a), columns_size(ins[1], out)
        return Workspace(ws.elements - own.elements + rows, ws.saved - own.saved + rows, rows)

    def kernel_note(self, in_shapes, attrs):
        members = [self.member_attrs(attrs, op) if "members" in attrs else {}
                   for op in ("conv2d", "max_pool2d")]
        conv = _conv_args(members[0])
        if self._rows(in_shapes[0], in_shapes[1], conv, _pool_args(members[1])):
            return "patch rows: sparse backward"
        if takes_direct(in_shapes[0], in_shapes[1], conv["stride"], conv["pad"],
                        conv["dilation"], conv["groups"]):
            return "direct: dense backward"
        if self.on_planes(in_shapes[0], in_shapes[1], conv):
            return "direct planes: dense backward"
        return "im2col columns: dense backward"

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b = inputs
        conv = _conv_args(self.member_attrs(attrs, "conv2d"))
        pool = _pool_args(self.member_attrs(attrs, "max_pool2d"))
        if self._rows(x.shape[1:], w.shape, conv, pool):
            p, cache = conv_relu_pool_forward(x, w, b, conv["stride"], conv["pad"][:2],
                                              pool["size"], pool["stride"], pool["pad"][:2],
                                              out=out, workspace=workspace)
            return p, ("rows", cache)
        kind = readout_kind(x.shape[1:], w.shape, conv, pool, x.dtype)
        if kind is not None:  # the direct kernels pool their grid as they read it out
            p, pcache, ccache = readout_forward(x, w, b, conv, kind, out, workspace)
            np.maximum(p, 0, out=p)
            return p, ("columns", (ccache, pcache, p))
        y, ccache = conv_forward(x, w, b, **conv, contiguous=False, workspace=workspace)
        p, pcache = maxpool_forward(y, **pool, out=out)
        np.maximum(p, 0, out=p)
        return p, ("columns", (ccache, pcache, p))

    def backward(self, dout, cache, attrs, needs=None):
        need_dx = needs is None or needs[0]
        kernel, cache = cache
        if kernel == "rows":
            return conv_relu_pool_backward(dout, cache, need_dx=need_dx)
        ccache, pcache, p = cache
        dy = maxpool_backward(_relu_mask_grad(dout, p), pcache,
                              dx=grad_buffer(ccache, pcache[1], dout.dtype))
        return conv_backward(dy, ccache, need_dx=need_dx)


@register
class ConvBNReLU(FusedOp):
    """conv2d, then batchnorm and relu in one pass (and one pass for their backward sums)."""

    chain = ("conv2d", "batchnorm", "relu")
    inner_values = (0,)  # the conv output batchnorm reads
    saves = frozenset({"output"})
    fresh_grads = True  # conv_backward's dx and the sums are new arrays

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b, gamma, beta = inputs
        # batchnorm reads the conv's GEMM layout as it lies, and writes NCHW
        y, ccache = conv_forward(x, w, b, **_conv_args(self.member_attrs(attrs, "conv2d")),
                                 contiguous=False, workspace=workspace)
        z, bcache = batchnorm_forward(y, gamma, beta, mode, state,
                                      *_bn_args(self.member_attrs(attrs, "batchnorm")), out=out,
                                      relu=True)
        return z, (ccache, bcache, z)

    def backward(self, dout, cache, attrs, needs=None):
        ccache, bcache, z = cache
        dy, dgamma, dbeta = batchnorm_backward(dout, bcache, relu_out=z,
                                               dx=grad_buffer(ccache, dout.shape, dout.dtype))
        dx, dw, db = conv_backward(dy, ccache, need_dx=needs is None or needs[0])
        return dx, dw, db, dgamma, dbeta


@register
class ConvBNReLUPool(FusedOp):
    """conv2d, batchnorm, max-pool, then relu in place on the pooled output."""

    chain = ("conv2d", "batchnorm", "relu", "max_pool2d")
    inner_values = (0, 1)  # the conv and the batchnorm outputs
    saves = frozenset({"output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b, gamma, beta = inputs
        y, ccache = conv_forward(x, w, b, **_conv_args(self.member_attrs(attrs, "conv2d")),
                                 contiguous=False, workspace=workspace)
        z, bcache = batchnorm_forward(y, gamma, beta, mode, state,
                                      *_bn_args(self.member_attrs(attrs, "batchnorm")))
        p, pcache = maxpool_forward(z, **_pool_args(self.member_attrs(attrs, "max_pool2d")),
                                    out=out)
        np.maximum(p, 0, out=p)
        return p, (ccache, bcache, pcache, p)

    def backward(self, dout, cache, attrs, needs=None):
        ccache, bcache, pcache, p = cache
        dz = maxpool_backward(_relu_mask_grad(dout, p), pcache)
        dy, dgamma, dbeta = batchnorm_backward(dz, bcache,
                                               dx=grad_buffer(ccache, dz.shape, dz.dtype))
        dx, dw, db = conv_backward(dy, ccache, need_dx=needs is None or needs[0])
        return dx, dw, db, dgamma, dbeta


@register
class ConvBNFolded(FusedOp):
    """Eval only: batchnorm folded into the conv's weights and bias (one conv call)."""

    chain = ("conv2d", "batchnorm")
    # folding is exact only with frozen statistics
    modes = ("eval",)
    mode_reason = ("batchnorm folds into the conv only in eval mode; in train mode its batch "
                   "statistics change every step")
    saves = frozenset()

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None,
                workspace=None):
        x, w, b, gamma, beta = inputs
        if mode != "eval":
            raise DagnetError(f"{self.name} folds batchnorm's running statistics into the conv and "
                              f"runs only in eval mode; compile with mode='eval'")
        eps, _ = _bn_args(self.member_attrs(attrs, "batchnorm"))
        scale = gamma / np.sqrt(state["running_var"] + eps)
        wf = (w * scale[:, None, None, None]).astype(w.dtype, copy=False)
        bf = ((b - state["running_mean"]) * scale + beta).astype(b.dtype, copy=False)
        y, _ = conv_forward(x, wf, bf, **_conv_args(self.member_attrs(attrs, "conv2d")),
                            out=out, workspace=workspace)
        return y, None

    def backward(self, dout, cache, attrs, needs=None):
        raise DagnetError(f"{self.name} is an eval-only fusion and has no backward")


class BNAddReLU(FusedOp):
    """batchnorm, add (the skip) and relu: a ResNet block's residual join in one pass forward
    (normalise, scale, shift, add the skip, relu) and two backward (the sums, writing the
    masked gradient that is the skip's; then dx), each split over threads. An add of more
    operands, or of one that broadcasts, runs member by member."""

    chain = ("batchnorm", "add", "relu")
    saves = frozenset({"input", "output"})  # batchnorm's backward reads its x
    # new arrays (the one pass's dskip and dx); member by member, add's backward may hand one
    # array to several operands, which the executor's own check leaves alone
    fresh_grads = True

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, gamma, beta, *others = inputs
        bn = _bn_args(self.member_attrs(attrs, "batchnorm"))
        if len(others) == 1 and others[0].shape == x.shape:
            z, bcache = batchnorm_forward(x, gamma, beta, mode, state, *bn, out=out, relu=True,
                                          skip=others[0])
            return z, (bcache, None, z)
        h, bcache = batchnorm_forward(x, gamma, beta, mode, state, *bn)
        s, acache = _ADD.forward([h, *others], {})
        z = np.maximum(s, 0, out=out if out is not None and out.shape == s.shape else None)
        return z, (bcache, acache, z)

    def backward(self, dout, cache, attrs, needs=None):
        bcache, acache, z = cache
        need_dx = needs is None or needs[0]
        if acache is None:  # the one-pass join: its masked gradient is the skip's
            dskip = np.empty(dout.shape, dout.dtype)
            dx, dgamma, dbeta = batchnorm_backward(dout, bcache, need_dx, relu_out=z,
                                                   masked=dskip)
            return dx, dgamma, dbeta, dskip
        dh, *dothers = _ADD.backward(_relu_mask_grad(dout, z), acache, {})
        dx, dgamma, dbeta = batchnorm_backward(dh, bcache, need_dx)
        return (dx, dgamma, dbeta, *dothers)


# add is variadic: the step takes batchnorm's inputs, then one or more operands of the add
BNAddReLU.input_names, BNAddReLU.arity = ("x", "gamma", "beta", "add.x", "..."), (4, None)
register(BNAddReLU)


# -- affine chains -------------------------------------------------------------------------
@register
class AffineReLU(FusedOp):
    """affine then relu in place on its output."""

    chain = ("affine", "relu")
    saves = frozenset({"input", "output"})
    writes_grads = True

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, w, b = inputs
        y, acache = affine_forward(x, w, b, out=out, mode=mode)
        np.maximum(y, 0, out=y)
        return y, (acache, y)

    def backward(self, dout, cache, attrs, needs=None, grads=None):
        acache, y = cache
        grads = grads or {}
        return affine_backward(_relu_mask_grad(dout, y), acache, need_dx=needs is None or needs[0],
                               dw=grads.get(1), db=grads.get(2))


@register
class AffineBNReLU(FusedOp):
    """affine, then batchnorm and relu in one expression."""

    chain = ("affine", "batchnorm", "relu")
    inner_values = (0,)  # the affine output batchnorm reads
    saves = frozenset({"input", "output"})

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, w, b, gamma, beta = inputs
        y, acache = affine_forward(x, w, b, mode=mode)
        z, bcache = batchnorm_forward(y, gamma, beta, mode, state,
                                      *_bn_args(self.member_attrs(attrs, "batchnorm")), out=out,
                                      relu=True)
        return z, (acache, bcache, z)

    def backward(self, dout, cache, attrs, needs=None):
        acache, bcache, z = cache
        dy, dgamma, dbeta = batchnorm_backward(dout, bcache, relu_out=z)
        dx, dw, db = affine_backward(dy, acache, need_dx=needs is None or needs[0])
        return dx, dw, db, dgamma, dbeta
