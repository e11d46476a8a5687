import numpy as np
import pytest

from dagnet.errors import AttrError, DTypeError, ShapeError
from dagnet.gradcheck import norm_error
from dagnet.ops import get_op
from dagnet.ops.conv import conv_backward, conv_forward
from tests.ops.harness import check_op

conv = get_op("conv2d")


def conv_inputs(x_shape, w_shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype)]


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 1, "pad": 1}),
    ((2, 2, 7, 7), (3, 2, 3, 3), {"stride": 2, "pad": 1}),
    ((1, 2, 6, 5), (2, 2, 3, 2), {"stride": (1, 2), "pad": (0, 1), "floor": True}),
    ((2, 3, 4, 4), (2, 3, 1, 1), {}),
    ((1, 1, 6, 6), (2, 1, 5, 5), {"pad": 2}),
])
def test_conv_gradients(x_shape, w_shape, attrs):
    check_op("conv2d", conv_inputs(x_shape, w_shape), attrs)


def test_published_values():
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = check_op("conv2d", [x, w, b], {"stride": 2, "pad": 1})
    np.testing.assert_allclose(out[0, 0], [[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                               rtol=1e-7)
    np.testing.assert_allclose(out[1, 2], [[2.36270298, 2.36904306], [2.38090835, 2.38247847]],
                               rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    x, w, b = conv_inputs((2, 3, 6, 6), (4, 3, 3, 3), dtype=dtype)
    out, cache = conv.forward([x, w, b], {"pad": 1})
    grads = conv.backward(np.ones_like(out), cache, {"pad": 1})
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    out64, _ = conv.forward([x64, w64, b64], {"pad": 1})
    assert norm_error(out, out64) < (1e-6 if dtype == np.float32 else 1e-14)


def test_needs_skips_dx_and_keeps_dw_db():
    x, w, b = conv_inputs((3, 2, 6, 6), (4, 2, 3, 3))
    out, cache = conv.forward([x, w, b], {"pad": 1})
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx, dw, db = conv.backward(dout, cache, {"pad": 1})
    none, dw2, db2 = conv.backward(dout, cache, {"pad": 1}, needs=(False, True, True))
    assert dx is not None and none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


def test_cache_does_not_keep_x_or_output():
    """saves is empty: overwriting x or the output after forward leaves the gradients alone."""
    ws = conv.workspace([(2, 5, 5), (3, 2, 3, 3), (3,)], (3, 5, 5), {"pad": 1})
    assert conv.saves == frozenset() and ws.saved == ws.elements == 19 * 25  # the columns
    x, w, b = conv_inputs((2, 2, 5, 5), (3, 2, 3, 3))
    dout = np.random.default_rng(1).standard_normal((2, 3, 5, 5))
    out, cache = conv.forward([x, w, b], {"pad": 1})
    want = conv.backward(dout, cache, {"pad": 1})
    x[...] = 0
    out[...] = 0
    for g, g0 in zip(conv.backward(dout, cache, {"pad": 1}), want):
        np.testing.assert_array_equal(g, g0)


def test_kernel_functions_for_fused_ops():
    x, w, b = conv_inputs((2, 3, 8, 8), (4, 3, 3, 3))
    out, cache = conv_forward(x, w, b, 2, (1, 1))
    assert out.shape == (2, 4, 4, 4)
    dx, dw, db = conv_backward(np.ones_like(out), cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert conv_backward(np.ones_like(out), cache, need_dx=False)[0] is None


def test_non_contiguous_input():
    x, w, b = conv_inputs((2, 3, 6, 7), (4, 3, 3, 3))
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(conv.forward([xt, w, b], {})[0], conv.forward([x, w, b], {})[0])


def test_infer_shape_and_flops():
    assert conv.infer_shape([(3, 32, 32), (8, 3, 5, 5), (8,)], {"pad": 2}) == (8, 32, 32)
    assert conv.infer_shape([(3, 31, 31), (25, 3, 3, 3), (25,)], {"stride": 2, "pad": 1}) == (25, 16, 16)
    assert conv.infer_shape([(1, 7, 7), (2, 1, 3, 3), (2,)], {"stride": 2, "floor": True}) == (2, 3, 3)
    assert conv.flops([(3, 8, 8), (4, 3, 3, 3), (4,)], (4, 8, 8), {"pad": 1}) == 2 * 27 * 4 * 64
    # im2col's columns (pad 0: the direct kernels' grid, 8 columns for 6, too wide for them)
    assert conv.workspace([(3, 8, 8), (4, 3, 3, 3), (4,)], (4, 6, 6), {}).elements == 28 * 36


# -- bad input -----------------------------------------------------------------------------
def shapes_error(in_shapes, attrs=None, error=ShapeError):
    with pytest.raises(error) as info:
        conv.infer_shape(in_shapes, attrs or {})
    return str(info.value)


def test_channel_mismatch_names_op_shapes_and_fix():
    msg = shapes_error([(3, 28, 28), (8, 1, 3, 3), (8,)])
    assert "conv2d: input has 3 channels but weight expects 1 (w shape (8, 1, 3, 3))" in msg
    assert "(8, 3, 3, 3)" in msg


def test_forward_checks_channels():
    x, _, b = conv_inputs((2, 3, 8, 8), (8, 3, 3, 3))
    with pytest.raises(ShapeError, match=r"input has 3 channels but weight expects 1"):
        conv.forward([x, np.ones((8, 1, 3, 3)), b], {})


def test_kernel_larger_than_padded_input():
    msg = shapes_error([(1, 3, 3), (2, 1, 7, 7), (2,)], {"pad": 1})
    assert "conv2d: kernel 7x7 is larger than the padded input 5x5" in msg
    assert "pad at least 2x2" in msg


def test_stride_that_does_not_tile():
    msg = shapes_error([(3, 32, 32), (8, 3, 3, 3), (8,)], {"stride": 2})
    assert "conv2d: stride 2 does not tile the input height" in msg
    assert "1 + (32 - 3 + 2*0)/2 = 15.5 is not an integer" in msg
    assert "stride 1 would fit" in msg and "floor=True" in msg
    msg = shapes_error([(3, 30, 32), (8, 3, 3, 3), (8,)], {"stride": 3})
    assert "input width: 1 + (W - F + 2P)/S = 1 + (32 - 3 + 2*0)/3" in msg
    assert "pad 2 or stride 1 would fit" in msg
    assert conv.infer_shape([(3, 32, 32), (8, 3, 3, 3), (8,)], {"stride": 2, "floor": True}) == (8, 15, 15)


@pytest.mark.parametrize("in_shapes,match", [
    ([(28, 28), (8, 1, 3, 3), (8,)], r"conv2d: input 'x' must have 3 dims \(C, H, W\).*\(28, 28\)"),
    ([(1, 28, 28), (8, 3, 3), (8,)], r"conv2d: weight 'w' must have 4 dims.*\(8, 3, 3\)"),
    ([(1, 28, 28), (8, 1, 3, 3), (4,)], r"conv2d: bias 'b' has shape \(4,\).*give b shape \(8,\)"),
])
def test_wrong_ranks_and_bias(in_shapes, match):
    with pytest.raises(ShapeError, match=match):
        conv.infer_shape(in_shapes, {})


@pytest.mark.parametrize("attrs,match", [
    ({"stride": 0}, r"conv2d: stride must be a positive integer or a pair of them, up to 65535, got 0"),
    ({"stride": (1, -1)}, r"conv2d: stride must be a positive integer or a pair"),
    ({"pad": -1}, r"conv2d: pad must be a non-negative integer, a pair of them \(height, width\) "
                 r"or four \(top, left, bottom, right\), up to 65535, got -1"),
    ({"pad": (1, 2, 3)}, r"conv2d: pad must be a non-negative integer, a pair of them"),
    ({"dilation": 0}, r"conv2d: dilation must be a positive integer or a pair of them"),
    ({"groups": 0}, r"conv2d: groups must be a positive integer, got 0"),
    ({"stride": (1, 2, 3)}, r"conv2d: stride must be a positive integer or a pair of them"),
    ({"stride": 70000}, r"conv2d: stride must be .*up to 65535, got 70000"),
])
def test_bad_attrs(attrs, match):
    with pytest.raises(AttrError, match=match):
        conv.infer_shape([(1, 8, 8), (2, 1, 3, 3), (2,)], attrs)


def test_non_float_and_mixed_dtypes():
    x, w, b = conv_inputs((1, 1, 5, 5), (2, 1, 3, 3))
    with pytest.raises(DTypeError, match=r"conv2d: input 'x' must be a float32 or float64 array, got int64"):
        conv.forward([x.astype(np.int64), w, b], {})
    with pytest.raises(DTypeError, match=r"conv2d: x, w, b must share one dtype.*float32"):
        conv.forward([x.astype(np.float32), w, b], {})


def test_forward_rejects_unbatched_input():
    _, w, b = conv_inputs((1, 1, 5, 5), (2, 1, 3, 3))
    with pytest.raises(ShapeError, match=r"conv2d: input 'x' must be \(N, C, H, W\), got shape \(1, 5, 5\)"):
        conv.forward([np.ones((1, 5, 5)), w, b], {})


@pytest.mark.parametrize("blocked", [True, False], ids=["sample-blocks", "batch-gemm"])
@pytest.mark.parametrize("w_shape,stride,pad", [((5, 4, 1, 1), 2, 0), ((3, 4, 3, 3), 1, 1)])
def test_batch_layout_backward_by_blocks_and_over_the_batch_agree(blocked, w_shape, stride,
                                                                   pad, monkeypatch):
    """The batch GEMM's columns (few output pixels) take one-thread products per block of
    samples (dagnet/blocks.py), or one GEMM over the batch: both give the reference's
    gradients, read from NCHW or from grad_buffer's layout."""
    from dagnet import reference
    from dagnet.ops import conv as conv_module
    from dagnet.ops import conv_blocks, direct

    monkeypatch.setattr(conv_module, "BLOCKED", blocked)
    monkeypatch.setattr(conv_blocks, "BLOCK_COLUMNS", 40)  # blocks of one or two samples
    monkeypatch.setattr(direct, "ENABLED", False)  # the columns for the 3x3 too
    x, w, b = conv_inputs((3, 4, 6, 6), w_shape)
    out, cache = conv_forward(x, w, b, stride, pad)
    assert cache[1] == "KNP"
    dout = np.random.default_rng(1).standard_normal(out.shape)
    want = reference.conv_backward(dout, x, w, stride, pad)
    laid = conv_module.grad_buffer(cache, dout.shape, dout.dtype)
    laid[...] = dout
    for d in (dout, laid):
        for got, ref in zip(conv_backward(d, cache), want):
            assert norm_error(got, ref) < 1e-12
        assert conv_backward(d, cache, need_dx=False)[0] is None
