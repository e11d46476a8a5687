"""Batch normalisation over features and spatial batch normalisation, as one op: batchnorm.

    x: (N, D),       gamma, beta: (D,)  statistics over N, per feature
    x: (N, C, H, W), gamma, beta: (C,)  statistics over N, H, W, per channel

Attributes: eps (default 1e-5) and momentum (default 0.9). The running statistics follow the
course convention

    running = momentum * running + (1 - momentum) * batch_statistic

so PyTorch's `momentum` is 1 - this one (dagnet 0.9 == PyTorch 0.1). As in PyTorch, the running
variance tracks the unbiased batch variance while train mode normalises with the biased one;
eval mode normalises with the running statistics.

The running statistics are the node's explicit state ({"running_mean", "running_var"}, shape
(C,)), updated in place in train mode. `batchnorm_forward` / `batchnorm_backward` are the
numeric kernels; the fused ops (conv2d + batchnorm + relu) call them directly.

Synchronised batchnorm (data-parallel training, dagnet.dist): inside
`synchronised_statistics(sync)` train mode normalises with the statistics of the global
batch: sync.statistics(mean, var, count) combines every process's (mean, biased var, count)
into the global ones, and backward sums the per-channel sums with sync.sums(dbeta, dgamma)
before computing dx (the param gradients stay this process's part; the gradient allreduce
sums them).
"""
from __future__ import annotations

import contextlib

import numpy as np

from dagnet import kernels
from dagnet.errors import AttrError, FeedError, ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.declare import POSITIVE, Attr, data, param
from dagnet.relu_grad import relu_grad

_AXES = {2: (0,), 4: (0, 2, 3)}  # full rank of x -> axes the statistics reduce over
_sync = None  # the cross-process reducer of synchronised batchnorm, or None


@contextlib.contextmanager
def synchronised_statistics(sync):
    """Within: train-mode batchnorm uses the global batch's statistics through `sync` (an
    object with statistics(mean, var, count) -> (mean, var, count) and sums(dbeta, dgamma)
    -> (dbeta, dgamma)); see dagnet.dist.syncbn."""
    global _sync
    previous, _sync = _sync, sync
    try:
        yield
    finally:
        _sync = previous


def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast against x of rank ndim."""
    return v if ndim == 2 else v.reshape(1, -1, 1, 1)


def batchnorm_forward(x, gamma, beta, mode, state, eps, momentum, out=None, relu=False,
                      skip=None):
    """Normalise x per feature/channel, then scale and shift.  x: (N, D) or (N, C, H, W) -> same shape.

    mode "train" uses the batch statistics and updates `state` in place (if not None); mode
    "eval" uses state["running_mean"] and state["running_var"]. out: an array like x to write
    the result into. skip: an array like x added before the relu (a ResNet block's residual
    join, the fused batchnorm+add+relu). relu: apply max(., 0) in the same pass (the fused
    conv+batchnorm+relu).
    (N, C, H, W) inputs run on the compiled kernels (kernels.bn_*; in train mode without
    synchronised statistics, statistics and normalisation one channel at a time); the
    numpy code here is the same formulas, for 2-D inputs and for a build without them.
    """
    compiled = x.ndim == 4 and kernels.HAVE_CYTHON and (out is None or out.flags.c_contiguous)
    axes = _AXES[x.ndim]
    sync = None
    fused_pass = None  # train mode's statistics and normalisation, one channel at a time
    if mode == "train":
        count = x.size // x.shape[1]
        if compiled and _sync is None and count >= 2:
            fused_pass = kernels.bn_stats_normalize(x, gamma, beta, eps, relu, out, skip)
            out, mean, var, inv_std = fused_pass
        elif compiled:
            mean, var = (v.astype(x.dtype) for v in kernels.bn_stats(x))
        else:
            mean = x.mean(axis=axes)
            d = x - _per_channel(mean, x.ndim)
            var = np.mean(d * d, axis=axes)
        if _sync is not None:
            mean, var, count = _sync.statistics(mean, var, count)
            sync = (_sync, count)
        if count < 2:
            raise ShapeError(
                f"batchnorm: train mode needs more than one value per channel to estimate the "
                f"variance, got input shape {x.shape}; use a batch of at least 2 or eval mode"
            )
        if state is not None:
            rm, rv = state["running_mean"], state["running_var"]
            rm[...] = momentum * rm + (1 - momentum) * mean
            rv[...] = momentum * rv + (1 - momentum) * var * (count / (count - 1))
    elif mode == "eval":
        if state is None:
            raise FeedError(
                "batchnorm: eval mode needs the running statistics; pass "
                "state=op.init_state(...) (a compiled plan does this for you)"
            )
        mean = state["running_mean"].astype(x.dtype, copy=False)
        var = state["running_var"].astype(x.dtype, copy=False)
    else:
        raise AttrError(f"batchnorm: mode must be 'train' or 'eval', got {mode!r}")
    if fused_pass is None:
        inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    if fused_pass is None and compiled:
        out = kernels.bn_normalize(x, mean, inv_std, gamma, beta, relu, out, skip)
    elif fused_pass is None:
        out = np.multiply(_per_channel(gamma, x.ndim), _xhat(x, mean, inv_std), out=out)
        out += _per_channel(beta, x.ndim)
        if skip is not None:
            out += skip
        if relu:
            np.maximum(out, 0, out=out)
    # x, not xhat: backward recomputes xhat, so forward writes one tensor, not two
    return out, (mode, x, mean, gamma, inv_std, sync)


def _xhat(x, mean, inv_std):
    """(x - mean) * inv_std per feature/channel, as the kernels compute it."""
    return (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)


def batchnorm_backward(dout, cache, need_dx=True, relu_out=None, dx=None, masked=None):
    """Gradients of batchnorm_forward.  dout: like x -> (dx like x or None, dgamma (C,), dbeta (C,)).

    Train mode uses the closed form
        dx = gamma * inv_std / m * (m * dout - sum(dout) - xhat * sum(dout * xhat))
    (sums per channel over its m values; xhat = (x - mean) * inv_std recomputed from the x
    the cache keeps), which reuses dbeta = sum(dout) and
    dgamma = sum(dout * xhat); eval mode is an affine map: dx = dout * gamma * inv_std.
    relu_out: the output of a relu fused after the batchnorm (relu=True in forward); dout is
    then the relu's incoming gradient, masked where relu_out is not positive. dx: an array
    like dout (with contiguous (H, W) planes) to write the input gradient into. masked: an
    array like dout that gets the masked gradient (a residual join's skip gradient).
    """
    mode, x, mean, gamma, inv_std, sync = cache
    if masked is not None and not (mode == "train" and dout.ndim == 4 and kernels.HAVE_CYTHON
                                   and sync is None):
        if relu_out is None:
            masked[...] = dout
        else:
            relu_grad(dout, relu_out, out=masked)
        dout, relu_out = masked, None
    if sync is not None:
        return _synchronised_backward(dout, _xhat(x, mean, inv_std), gamma, inv_std, sync,
                                      need_dx, relu_out, dx)
    if mode == "train" and dout.ndim == 4 and kernels.HAVE_CYTHON:
        return kernels.bn_backward(dout, x, mean, gamma, inv_std, relu_out, need_dx, dx, masked)
    xhat = _xhat(x, mean, inv_std)
    if relu_out is not None:
        dout = relu_grad(dout, relu_out)
    axes = _AXES[dout.ndim]
    dbeta = dout.sum(axis=axes)
    dgamma = np.sum(dout * xhat, axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    scale = _per_channel(gamma * inv_std, dout.ndim)
    if mode == "eval":
        return np.multiply(dout, scale, out=dx), dgamma, dbeta
    m = dout.size // dout.shape[1]
    grad = m * dout - _per_channel(dbeta, dout.ndim)
    grad -= xhat * _per_channel(dgamma, dout.ndim)
    grad *= scale / m
    if dx is None:
        return grad, dgamma, dbeta
    dx[...] = grad
    return dx, dgamma, dbeta


def _synchronised_backward(dout, xhat, gamma, inv_std, sync, need_dx, relu_out, dx):
    """batchnorm_backward's train-mode formula with the sums and count m of the global batch:
    -> (dx, this process's dgamma, dbeta)."""
    reducer, m = sync
    if relu_out is not None:
        dout = relu_grad(dout, relu_out)
    axes = _AXES[dout.ndim]
    dbeta = dout.sum(axis=axes)
    dgamma = np.sum(dout * xhat, axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    total_dbeta, total_dgamma = reducer.sums(dbeta, dgamma)
    grad = m * dout - _per_channel(total_dbeta, dout.ndim)
    grad -= xhat * _per_channel(total_dgamma, dout.ndim)
    grad *= _per_channel(gamma * inv_std, dout.ndim) / dout.dtype.type(m)
    if dx is None:
        return grad, dgamma, dbeta
    dx[...] = grad
    return dx, dgamma, dbeta


@register
class BatchNorm(Op):
    """Batch normalisation.  x: (N, D) or (N, C, H, W), gamma, beta: (D,) or (C,) -> like x."""

    name = "batchnorm"
    short = "bn"
    aliases = ("bn", "batch_norm", "spatial_batchnorm")
    ports = (data("x", "features (N, D) or images (N, C, H, W)"),
             param("gamma", "ones", "scale per feature/channel"),
             param("beta", "zeros", "shift per feature/channel"))
    attributes = (
        Attr("eps", "number", 1e-5, POSITIVE, "added to the variance before its square root"),
        Attr("momentum", "number", 0.9, "[0, 1]", "running = momentum * running + "
             "(1 - momentum) * batch statistic",
             hint="dagnet keeps momentum * running + (1 - momentum) * batch; PyTorch's "
                  "momentum 0.1 is 0.9 here"),
    )
    fusion_kind = "out_fusable"  # an elementwise chain may follow in its step
    supports_out = True
    # backward reads gamma (a param) and x, from which it recomputes the normalised x
    saves = frozenset({"input"})
    stateful = True

    def param_shapes(self, x_shape, attrs):
        c = self._channels(tuple(x_shape))
        return {"gamma": (c,), "beta": (c,)}

    @staticmethod
    def _channels(x_shape) -> int:
        if len(x_shape) not in (1, 3):
            raise ShapeError(
                f"batchnorm: input 'x' must have 1 dim (D) or 3 dims (C, H, W) per example, "
                f"got shape {x_shape}"
            )
        return x_shape[0]

    def infer_shape(self, in_shapes, attrs):
        x_shape, g_shape, b_shape = (tuple(s) for s in in_shapes)
        self.read_attrs(attrs)
        c = self._channels(x_shape)
        for port, shape in (("gamma", g_shape), ("beta", b_shape)):
            if shape != (c,):
                raise ShapeError(
                    f"batchnorm: {port} has shape {shape} but the input has {c} "
                    f"{'features' if len(x_shape) == 1 else 'channels'} (x shape {x_shape}); "
                    f"give {port} shape ({c},)"
                )
        return x_shape

    def init_state(self, in_shapes, attrs, dtype):
        """running_mean = 0 and running_var = 1, shape (C,)."""
        c = in_shapes[0][0]
        return {"running_mean": np.zeros(c, dtype=dtype), "running_var": np.ones(c, dtype=dtype)}

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        x, gamma, beta = inputs
        check_floats(self.name, self.input_names, inputs)
        self.infer_shape([x.shape[1:], gamma.shape, beta.shape], attrs)
        a = self.read_attrs(attrs)
        return batchnorm_forward(x, gamma, beta, mode, state, a["eps"], a["momentum"], out=out)

    def backward(self, dout, cache, attrs, needs=None):
        return batchnorm_backward(dout, cache, need_dx=needs is None or needs[0])
