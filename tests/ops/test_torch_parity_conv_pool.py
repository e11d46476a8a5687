"""conv2d and the pools against PyTorch: outputs and every gradient, norm-wise
(max|a - b| / max|b|) within 1e-5 in float32 and 1e-10 in float64."""
import numpy as np
import pytest

from dagnet.gradcheck import norm_error
from dagnet.ops import get_op

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float32, np.float64]


def compare(name, arrays, attrs, torch_fn, dtype):
    """Run dagnet's op and torch_fn on the same arrays and dout; compare output and grads."""
    op = get_op(name)
    arrays = [a.astype(dtype) for a in arrays]
    out, cache = op.forward(arrays, attrs)
    dout = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
    grads = op.backward(dout, cache, attrs)

    tensors = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    t_out = torch_fn(*tensors)
    t_out.backward(torch.from_numpy(dout))
    assert norm_error(out, t_out.detach().numpy()) < TOL[dtype], f"{name} forward"
    for i, (g, t) in enumerate(zip(grads, tensors)):
        assert g.dtype == dtype
        assert norm_error(g, t.grad.numpy()) < TOL[dtype], f"{name} gradient {i}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", [
    ((4, 3, 12, 12), (8, 3, 3, 3), 1, 1),
    ((3, 3, 11, 11), (5, 3, 3, 3), 2, 1),
    ((2, 1, 14, 14), (4, 1, 5, 5), 1, 0),
    ((2, 6, 9, 10), (4, 6, 3, 2), (2, 1), (1, 0)),
    ((2, 4, 6, 6), (3, 4, 1, 1), 1, 0),
    ((1, 2, 9, 9), (3, 2, 7, 7), 1, 3),
])
def test_conv2d(x_shape, w_shape, stride, pad, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    compare("conv2d", arrays, {"stride": stride, "pad": pad},
            lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=pad), dtype)


POOLS = [  # (x shape, size, stride, pad)
    ((4, 3, 8, 8), 2, 2, 0),
    ((2, 3, 9, 9), 3, 2, 1),
    ((2, 2, 7, 6), 3, 1, 1),
    ((2, 2, 8, 9), (2, 3), (2, 3), 0),
    ((2, 2, 7, 8), (3, 2), (1, 2), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,size,stride,pad", POOLS)
def test_max_pool2d(x_shape, size, stride, pad, dtype):
    # distinct values: ties would let the two libraries route the gradient to different cells
    x = (np.random.default_rng(0).permutation(int(np.prod(x_shape))) * 0.01).reshape(x_shape)
    compare("max_pool2d", [x], {"size": size, "stride": stride, "pad": pad},
            lambda t: F.max_pool2d(t, size, stride, pad), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,size,stride,pad", POOLS)
def test_avg_pool2d(x_shape, size, stride, pad, dtype):
    x = np.random.default_rng(0).standard_normal(x_shape)
    compare("avg_pool2d", [x], {"size": size, "stride": stride, "pad": pad},
            lambda t: F.avg_pool2d(t, size, stride, pad, count_include_pad=True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(4, 8, 7, 7), (2, 3, 1, 5)])
def test_global_avg_pool(x_shape, dtype):
    x = np.random.default_rng(0).standard_normal(x_shape)
    compare("global_avg_pool", [x], {}, lambda t: t.mean(dim=(2, 3)), dtype)


# -- groups, dilation, asymmetric pads, 1-D, transposed ------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,stride,pad,dilation,groups", [
    ((2, 4, 9, 9), (6, 2, 3, 3), 1, 1, 1, 2),                    # grouped
    ((2, 8, 10, 10), (8, 1, 3, 3), 2, 1, 1, 8),                  # depthwise (MobileNet)
    ((2, 4, 8, 8), (8, 1, 3, 3), 1, 2, 2, 4),                    # depthwise x2, dilated
    ((2, 3, 11, 10), (4, 3, 3, 2), (2, 1), (2, 1), (2, 3), 1),   # dilated, anisotropic
    ((2, 6, 7, 7), (12, 2, 1, 1), 1, 0, 1, 3),                   # grouped 1x1 (ShuffleNet)
])
def test_conv2d_groups_and_dilation(x_shape, w_shape, stride, pad, dilation, groups, dtype):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    attrs = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups, "floor": True}
    compare("conv2d", arrays, attrs, lambda x, w, b: F.conv2d(x, w, b, stride, pad, dilation,
                                                              groups), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pads", [(0, 1, 1, 2), (2, 0, 0, 1)])
def test_conv2d_asymmetric_pads_equal_torch_pad_then_conv(pads, dtype):
    """ONNX's (top, left, bottom, right): PyTorch pads explicitly (F.pad takes left, right,
    top, bottom), then convolves without padding."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in ((2, 3, 8, 7), (4, 3, 3, 3), (4,))]
    top, left, bottom, right = pads
    compare("conv2d", arrays, {"pad": pads, "stride": 2, "floor": True},
            lambda x, w, b: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,stride,pad,dilation,groups", [
    ((2, 4, 17), (6, 4, 3), 1, 1, 1, 1),
    ((2, 4, 16), (4, 1, 5), 2, 2, 1, 4),
    ((3, 6, 20), (6, 3, 3), 3, 2, 2, 2),
])
def test_conv1d(x_shape, w_shape, stride, pad, dilation, groups, dtype):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    attrs = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups, "floor": True}
    compare("conv1d", arrays, attrs, lambda x, w, b: F.conv1d(x, w, b, stride, pad, dilation,
                                                              groups), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,stride,pad,out_pad,dilation,groups", [
    ((2, 4, 5, 5), (4, 3, 3, 3), 2, 1, 1, 1, 1),                 # the 2x upsampling deconv
    ((2, 3, 4, 6), (3, 2, 4, 4), 2, 1, 0, 1, 1),
    ((2, 4, 5, 4), (4, 2, 3, 2), (1, 2), (0, 1), (0, 1), (2, 1), 2),
    ((1, 6, 3, 3), (6, 1, 3, 3), 3, 0, 2, 1, 6),                 # depthwise, 3x
])
def test_conv_transpose2d(x_shape, w_shape, stride, pad, out_pad, dilation, groups, dtype):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, (w_shape[1] * groups,))]
    attrs = {"stride": stride, "pad": pad, "output_padding": out_pad, "dilation": dilation,
             "groups": groups}
    compare("conv_transpose", arrays, attrs, lambda x, w, b: F.conv_transpose2d(
        x, w, b, stride, pad, out_pad, groups, dilation), dtype)


POOLS_EXTRA = [  # (x shape, size, stride, pad, dilation, ceil_mode)
    ((2, 3, 7, 7), 2, 2, 0, 1, True),                            # ceil: a partial last window
    ((2, 2, 10, 9), 3, 2, 1, 2, False),                          # dilated
    ((2, 2, 9, 8), (3, 2), (2, 3), (1, 1), (2, 1), True),
    ((1, 2, 6, 8), 3, 3, 1, 1, True),                            # ceil with a window starting in padding dropped
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,size,stride,pad,dilation,ceil", POOLS_EXTRA)
def test_max_pool2d_dilation_and_ceil_mode(x_shape, size, stride, pad, dilation, ceil, dtype):
    x = (np.random.default_rng(5).permutation(int(np.prod(x_shape))) * 0.01).reshape(x_shape)
    attrs = {"size": size, "stride": stride, "pad": pad, "dilation": dilation, "ceil_mode": ceil,
             "floor": not ceil}
    compare("max_pool2d", [x], attrs,
            lambda t: F.max_pool2d(t, size, stride, pad, dilation, ceil_mode=ceil), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("x_shape,size,stride,pad,ceil", [
    ((2, 3, 7, 7), 3, 2, 1, True), ((2, 2, 8, 9), (3, 2), (2, 2), (1, 1), True),
    ((2, 2, 6, 6), 3, 1, 1, False), ((1, 2, 6, 8), 3, 3, 1, True)])
def test_avg_pool2d_ceil_mode_and_count_include_pad(x_shape, size, stride, pad, ceil, include,
                                                    dtype):
    x = np.random.default_rng(6).standard_normal(x_shape)
    attrs = {"size": size, "stride": stride, "pad": pad, "ceil_mode": ceil,
             "count_include_pad": include}
    compare("avg_pool2d", [x], attrs, lambda t: F.avg_pool2d(
        t, size, stride, pad, ceil_mode=ceil, count_include_pad=include), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pools1d(dtype):
    x = (np.random.default_rng(7).permutation(2 * 3 * 11) * 0.01).reshape(2, 3, 11)
    compare("max_pool1d", [x], {"size": 3, "stride": 2, "pad": 1, "dilation": 2,
                                "ceil_mode": True},
            lambda t: F.max_pool1d(t, 3, 2, 1, 2, ceil_mode=True), dtype)
    compare("avg_pool1d", [x], {"size": 3, "stride": 2, "pad": 1, "ceil_mode": True,
                                "count_include_pad": False},
            lambda t: F.avg_pool1d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool(dtype):
    x = (np.random.default_rng(8).permutation(3 * 4 * 5 * 6) * 0.01).reshape(3, 4, 5, 6)
    compare("global_max_pool", [x], {}, lambda t: F.adaptive_max_pool2d(t, 1).flatten(1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,pad", [
    ((5, 3, 16, 16), (32, 3, 7, 7), 3),    # the three-layer convnet's conv, smaller
    ((6, 20, 12, 12), (50, 20, 5, 5), 0),  # LeNet's conv2
])
def test_fused_conv_relu_pool_in_row_layout(x_shape, w_shape, pad, dtype):
    """The fused conv + relu + max-pool on its row kernel (by blocks forward, sparse backward,
    relu's mask applied in the kernel) against conv2d -> relu -> max_pool2d."""
    from dagnet.ops import fused

    op = get_op("conv2d+relu+max_pool2d")
    assert op.uses_rows(w_shape) and fused.ConvReLUPool.ROWS_FROM < float("inf")
    attrs = {"members": [{"op": "conv2d", "attrs": {"pad": pad}}, {"op": "relu", "attrs": {}},
                         {"op": "max_pool2d", "attrs": {"size": 2}}]}
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    compare(op.name, arrays, attrs,
            lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=pad)), 2), dtype)
