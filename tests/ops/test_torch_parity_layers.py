"""Parity with PyTorch for layer_norm, group_norm, instance_norm, lrn and embedding: outputs and
every gradient, norm-wise within 1e-5 (float32) / 1e-10 (float64)."""
import numpy as np
import pytest

from dagnet.ops import get_op
from tests.ops.test_torch_parity_ops import DTYPES, assert_close, assert_parity, randn, run_torch

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((4, 6), -1), ((3, 5, 8), -1), ((2, 3, 4, 5), 1),
                                        ((2, 3, 4, 5), -2), ((2, 1, 7), -1)])
def test_layer_norm(dtype, shape, axis):
    normalized = shape[axis % len(shape):]
    inputs = [randn(shape, dtype, scale=3, shift=1), randn(normalized, dtype, 2, shift=1),
              randn(normalized, dtype, 3)]
    assert_parity("layer_norm", inputs, {"axis": axis, "eps": 1e-5},
                  lambda x, g, b: F.layer_norm(x, normalized, g, b, 1e-5), dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", [((4, 6, 5, 5), 3), ((2, 8, 7), 4), ((3, 6), 2),
                                          ((2, 4, 3, 3), 1)])
def test_group_norm(dtype, shape, groups):
    c = shape[1]
    inputs = [randn(shape, dtype, scale=2), randn(c, dtype, 2, shift=1), randn(c, dtype, 3)]
    assert_parity("group_norm", inputs, {"groups": groups, "eps": 1e-5},
                  lambda x, g, b: F.group_norm(x, groups, g, b, 1e-5), dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 6, 6), (2, 5, 9)])
def test_instance_norm(dtype, shape):
    c = shape[1]
    inputs = [randn(shape, dtype, shift=2), randn(c, dtype, 2, shift=1), randn(c, dtype, 3)]
    assert_parity("instance_norm", inputs, {"eps": 1e-5},
                  lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=1e-5), dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 7, 4, 4), (3, 6, 5)])
def test_lrn_odd_sizes(dtype, size, shape):
    attrs = {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 2.0}
    assert_parity("lrn", [randn(shape, dtype)], attrs,
                  lambda x: F.local_response_norm(x, size, 0.3, 0.75, 2.0), dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_sizes_are_torchs_with_the_channels_reversed(dtype, size):
    # torch's window for an even size starts one channel earlier than ONNX's (dagnet's): on
    # the channels in reverse order the two windows are the same
    x = randn((2, 7, 3, 3), dtype)
    op = get_op("lrn")
    attrs = {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 2.0}
    out, cache = op.forward([x], attrs)
    dout = randn(out.shape, dtype, 1)
    (dx,) = op.backward(dout, cache, attrs)
    rev = lambda a: np.ascontiguousarray(a[:, ::-1])  # noqa: E731
    t_out, (t_dx,) = run_torch(lambda a: F.local_response_norm(a, size, 0.3, 0.75, 2.0),
                               [rev(x)], rev(dout), (0,))
    assert_close(out, rev(t_out), dtype, "lrn output")
    assert_close(dx, rev(t_dx), dtype, "lrn grad x")
    plain = F.local_response_norm(torch.from_numpy(x), size, 0.3, 0.75, 2.0).numpy()
    assert np.abs(plain - out).max() > 1e-3  # the windows do differ: this test is not vacuous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ids_shape", [(6,), (4, 5), (2, 3, 4)])
def test_embedding(dtype, ids_shape):
    ids = np.random.default_rng(4).integers(0, 7, ids_shape)
    w = randn((7, 3), dtype, 2)
    op = get_op("embedding")
    out, cache = op.forward([ids, w], {})
    dout = randn(out.shape, dtype, 1)
    _, dw = op.backward(dout, cache, {})
    t_out, (t_dw,) = run_torch(lambda i, t: F.embedding(i, t), [ids, w], dout, (1,))
    assert_close(out, t_out, dtype, "embedding output")
    assert_close(dw, t_dw, dtype, "embedding grad w")
