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
