"""The window variants (groups, dilation, asymmetric pads, conv_transpose, 1-D windows, ceil_mode,
count_include_pad, global max pool) and the resampling ops: float64 gradient checks through the
op harness, and the fast kernels against the loop-based references (dagnet/reference.py,
dagnet/reference_resample.py) in float64 and float32, both GEMM layouts where conv has two."""
import numpy as np
import pytest

from dagnet import kernels
from dagnet import reference as ref
from dagnet import reference_resample as rref
from dagnet.errors import AttrError, ShapeError
from dagnet.gradcheck import norm_error
from dagnet.ops import conv as conv_module
from dagnet.ops import get_op
from dagnet.ops.conv import conv_backward, conv_forward
from dagnet.ops.conv_transpose import conv_transpose_backward, conv_transpose_forward
from dagnet.ops.pool import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from tests.ops.harness import check_op

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]


def randn(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def distinct(shape, seed=0):
    """Values far apart (no ties, no kinks within a gradient check's step)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.1 - 1.0).reshape(shape)


CONV_CASES = [  # (x shape, w shape, attrs)
    ((2, 4, 7, 7), (6, 2, 3, 3), {"groups": 2, "pad": 1}),
    ((2, 3, 6, 7), (3, 1, 3, 3), {"groups": 3, "stride": 2, "pad": 1, "floor": True}),  # depthwise
    ((2, 3, 6, 7), (6, 1, 3, 2), {"groups": 3, "pad": (1, 0)}),               # multiplier 2
    ((2, 2, 9, 8), (3, 2, 3, 3), {"dilation": 2, "pad": 2}),
    ((1, 2, 9, 10), (3, 2, 3, 2), {"dilation": (2, 3), "stride": (1, 2), "floor": True}),
    ((2, 2, 6, 6), (3, 2, 3, 3), {"pad": (0, 1, 2, 1)}),                      # top left bottom right
    ((2, 4, 8, 7), (4, 1, 3, 3), {"groups": 4, "dilation": 2, "pad": (2, 1, 1, 2), "floor": True}),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_conv2d_variant_gradients(x_shape, w_shape, attrs):
    check_op("conv2d", randn(x_shape, w_shape, w_shape[:1]), attrs)


@pytest.mark.parametrize("gemm", ["per_sample", "batch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_conv2d_variant_matches_reference(x_shape, w_shape, attrs, dtype, gemm, monkeypatch):
    monkeypatch.setattr(conv_module, "BATCH_GEMM_BELOW", 0 if gemm == "per_sample" else 10**9)
    x, w, b = randn(x_shape, w_shape, w_shape[:1])
    a = get_op("conv2d").read_attrs(attrs)
    geo = {k: a[k] for k in ("stride", "pad", "dilation", "groups")}
    want = ref.conv_forward(x, w, b, **geo)
    dout = randn(want.shape, seed=1)[0]
    out, cache = conv_forward(*(v.astype(dtype) for v in (x, w, b)), **geo)
    assert out.dtype == dtype and norm_error(out, want) < TOL[dtype]
    for g, g0 in zip(conv_backward(dout.astype(dtype), cache), ref.conv_backward(dout, x, w, **geo)):
        assert g.dtype == dtype and norm_error(g, g0) < TOL[dtype]


@pytest.mark.parametrize("ones_row", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_dilated_im2col_col2im_match_numpy_versions(x_shape, w_shape, attrs, ones_row):
    x = randn(x_shape)[0]
    a = get_op("conv2d").read_attrs(attrs)
    ksize, stride, pads, dil = w_shape[2:], a["stride"], a["pad"], a["dilation"]
    out_size = get_op("conv2d").infer_shape([x_shape[1:], w_shape, w_shape[:1]], attrs)[1:]
    cols = kernels.im2col(x, ksize, stride, pads[:2], out_size, ones_row, dilation=dil)
    want = kernels.im2col_numpy(x, ksize, stride, pads[:2], out_size, ones_row, dil)
    np.testing.assert_array_equal(cols, want)
    np.testing.assert_allclose(
        kernels.col2im(cols, x_shape, ksize, stride, pads[:2], out_size, dilation=dil),
        kernels.col2im_numpy(want, x_shape, ksize, stride, pads[:2], out_size, dil),
        rtol=1e-13, atol=1e-13)


TRANSPOSE_CASES = [  # (x shape, w shape, attrs)
    ((2, 3, 4, 5), (3, 2, 3, 3), {"stride": 2, "pad": 1, "output_padding": 1}),
    ((2, 4, 3, 3), (4, 1, 2, 3), {"groups": 2, "stride": (2, 1)}),
    ((1, 2, 4, 4), (2, 3, 3, 3), {"dilation": 2, "pad": (0, 1, 2, 1)}),
    ((2, 2, 3, 4), (2, 2, 4, 4), {"stride": 3, "pad": 1, "output_padding": (2, 0)}),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", TRANSPOSE_CASES)
def test_conv_transpose_gradients(x_shape, w_shape, attrs):
    f = w_shape[1] * attrs.get("groups", 1)
    check_op("conv_transpose", randn(x_shape, w_shape, (f,)), attrs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,attrs", TRANSPOSE_CASES)
def test_conv_transpose_matches_reference(x_shape, w_shape, attrs, dtype):
    f = w_shape[1] * attrs.get("groups", 1)
    x, w, b = randn(x_shape, w_shape, (f,))
    a = get_op("conv_transpose").read_attrs(attrs)
    geo = {k: a[k] for k in ("stride", "pad", "dilation", "groups")}
    want = ref.conv_transpose_forward(x, w, b, output_padding=a["output_padding"], **geo)
    out, cache = conv_transpose_forward(*(v.astype(dtype) for v in (x, w, b)),
                                        output_padding=a["output_padding"], **geo)
    assert out.dtype == dtype and norm_error(out, want) < TOL[dtype]
    dout = randn(want.shape, seed=1)[0]
    for g, g0 in zip(conv_transpose_backward(dout.astype(dtype), cache),
                     ref.conv_transpose_backward(dout, x, w, **geo)):
        assert g.dtype == dtype and norm_error(g, g0) < TOL[dtype]


def test_conv_transpose_is_the_adjoint_of_conv2d():
    # <conv(x), y> = <x, conv_transpose(y)> with the same weights and no bias: the definition
    x, w, y = randn((2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 4, 4))
    geo = {"stride": 2, "pad": (1, 1, 0, 0)}
    cx, _ = conv_forward(x, w, np.zeros(4), **geo)
    ty, _ = conv_transpose_forward(y, w, np.zeros(3), output_padding=0, **geo)
    assert cx.shape == y.shape and ty.shape == x.shape
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, ty), rtol=1e-12)


POOL_CASES = [  # (x shape, attrs)
    ((2, 2, 7, 7), {"size": 3, "stride": 2, "pad": 1, "dilation": 2, "floor": True}),
    ((2, 2, 7, 8), {"size": 2, "stride": 2, "ceil_mode": True}),
    ((1, 3, 8, 7), {"size": 3, "stride": 2, "pad": 1, "ceil_mode": True}),
    ((2, 2, 6, 9), {"size": (2, 3), "stride": (1, 2), "pad": (0, 1, 1, 1), "floor": True}),
    ((2, 1, 9, 9), {"size": 2, "stride": 3, "dilation": (2, 1), "ceil_mode": True}),
]


@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
def test_max_pool_variant_gradients(x_shape, attrs):
    check_op("max_pool2d", [distinct(x_shape)], attrs)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
def test_avg_pool_variant_gradients(x_shape, attrs, include):
    check_op("avg_pool2d", randn(x_shape), {**attrs, "count_include_pad": include})


def _pool_geometry(attrs):
    a = get_op("max_pool2d").read_attrs(attrs)
    return {k: a[k] for k in ("size", "stride", "pad", "dilation", "ceil_mode")}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
def test_max_pool_variant_matches_reference_and_numpy_version(x_shape, attrs, dtype):
    x, geo = distinct(x_shape).astype(dtype), _pool_geometry(attrs)
    out, cache = maxpool_forward(x, **geo)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, **geo))
    dout = randn(out.shape, seed=1)[0].astype(dtype)
    dx = maxpool_backward(dout, cache)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.maxpool_backward(dout, x, **geo), rtol=1e-6)
    argmax, _, ksize, stride, pad, dil = cache
    out_np, argmax_np = kernels.maxpool_forward_numpy(x, ksize, stride, pad, out.shape[2:], dil)
    np.testing.assert_array_equal(out_np, out)
    np.testing.assert_array_equal(argmax_np, argmax)
    np.testing.assert_allclose(
        kernels.maxpool_backward_numpy(dout, argmax, x.shape, ksize, stride, pad, dil), dx)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
def test_avg_pool_variant_matches_reference(x_shape, attrs, dtype, include):
    x, geo = randn(x_shape)[0], _pool_geometry(attrs)
    out, cache = avgpool_forward(x.astype(dtype), count_include_pad=include, **geo)
    assert out.dtype == dtype
    assert norm_error(out, ref.avgpool_forward(x, count_include_pad=include, **geo)) < TOL[dtype]
    dout = randn(out.shape, seed=1)[0]
    dx = avgpool_backward(dout.astype(dtype), cache)
    want = ref.avgpool_backward(dout, x, count_include_pad=include, **geo)
    assert dx.dtype == dtype and norm_error(dx, want) < TOL[dtype]


def test_count_include_pad_false_divides_by_the_cells_inside():
    x = np.ones((1, 1, 3, 3))
    out, _ = avgpool_forward(x, 3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(out, np.ones((1, 1, 3, 3)))  # every window: the mean of ones
    out, _ = avgpool_forward(x, 3, 1, 1, count_include_pad=True)
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9) and out[0, 0, 1, 1] == 1.0


def test_ceil_mode_keeps_a_last_window_only_when_it_starts_inside():
    op = get_op("max_pool2d")
    assert op.infer_shape([(1, 5, 5)], {"size": 2, "stride": 2, "ceil_mode": True}) == (1, 3, 3)
    # a third window would start in the trailing pad only: PyTorch and ONNX drop it
    assert op.infer_shape([(1, 4, 4)], {"size": 2, "stride": 2, "pad": 1, "ceil_mode": True}) \
        == (1, 3, 3)
    assert op.infer_shape([(1, 5, 5)], {"size": 2, "stride": 2, "floor": True}) == (1, 2, 2)


WINDOW1D_CASES = [  # (op, shapes, attrs)
    ("conv1d", [(2, 4, 11), (6, 2, 3), (6,)], {"groups": 2, "pad": (1, 2), "dilation": 2}),
    ("conv1d", [(2, 3, 9), (3, 1, 4), (3,)], {"groups": 3, "stride": 2, "floor": True}),
    ("max_pool1d", [(2, 3, 10)], {"size": 3, "stride": 2, "pad": 1, "ceil_mode": True}),
    ("avg_pool1d", [(2, 3, 10)], {"size": 3, "stride": 2, "pad": (1, 1), "ceil_mode": True,
                                  "count_include_pad": False}),
    ("max_pool1d", [(1, 2, 12)], {"size": 2, "stride": 2, "dilation": 3, "floor": True}),
]


@pytest.mark.parametrize("name,shapes,attrs", WINDOW1D_CASES)
def test_window_1d_gradients_and_its_2d_twin(name, shapes, attrs):
    inputs = [distinct(shapes[0])] + randn(*shapes[1:])
    out, grads = check_op(name, inputs, attrs)
    # the same numbers as the 2-D op on the height-1 view
    twin = {"conv1d": "conv2d", "max_pool1d": "max_pool2d", "avg_pool1d": "avg_pool2d"}[name]
    a2 = {k: (1, v) if k in ("size", "stride", "dilation") else v for k, v in attrs.items()}
    if "pad" in attrs:
        begin, end = (attrs["pad"],) * 2 if np.isscalar(attrs["pad"]) else attrs["pad"]
        a2["pad"] = (0, begin, 0, end)
    rows = [x[:, :, None] if i == 0 else (x[:, :, None] if x.ndim == 3 else x)
            for i, x in enumerate(inputs)]
    out2, _ = get_op(twin).forward(rows, a2)
    np.testing.assert_allclose(out2[:, :, 0], out, rtol=1e-12)


def test_global_max_pool_gradient_goes_to_each_plane_max():
    x = distinct((2, 3, 4, 5))
    out, (dx,) = check_op("global_max_pool", [x], {})
    np.testing.assert_array_equal(out, x.max(axis=(2, 3)))
    assert (np.count_nonzero(dx.reshape(6, -1), axis=1) == 1).all()


RESIZE_CASES = [  # (x shape, attrs)
    ((2, 2, 4, 5), {"scale": 2, "mode": "nearest"}),
    ((1, 2, 5, 4), {"scale": (1.5, 2.5), "mode": "nearest", "coordinates": "asymmetric",
                    "nearest_mode": "floor"}),
    ((2, 1, 6, 6), {"scale": 0.5, "mode": "nearest", "nearest_mode": "round_prefer_ceil"}),
    ((2, 2, 4, 5), {"scale": 2, "mode": "bilinear"}),
    ((1, 2, 5, 4), {"size": (7, 9), "mode": "bilinear", "coordinates": "align_corners"}),
    ((2, 1, 6, 7), {"scale": (0.5, 1.5), "mode": "bilinear", "coordinates": "pytorch_half_pixel"}),
    ((1, 1, 3, 4), {"size": (1, 6), "mode": "bilinear", "coordinates": "pytorch_half_pixel"}),
]


@pytest.mark.parametrize("x_shape,attrs", RESIZE_CASES)
def test_resize_gradients(x_shape, attrs):
    check_op("resize", randn(x_shape), attrs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,attrs", RESIZE_CASES)
def test_resize_matches_reference(x_shape, attrs, dtype):
    op = get_op("resize")
    x = randn(x_shape)[0]
    out, cache = op.forward([x.astype(dtype)], attrs)
    a = op.read_attrs(attrs)
    out_size, scales = out.shape[2:], op.geometry(x_shape[1:], attrs)[1]
    kw = {k: a[k] for k in ("mode", "coordinates", "nearest_mode")}
    want = rref.resize_forward(x, out_size, scales, **kw)
    assert out.dtype == dtype and norm_error(out, want) < TOL[dtype]
    dout = randn(out.shape, seed=1)[0]
    (dx,) = op.backward(dout.astype(dtype), cache, attrs)
    want_dx = rref.resize_backward(dout, x_shape, scales, **kw)
    assert dx.dtype == dtype and norm_error(dx, want_dx) < TOL[dtype]


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space_and_back(mode, block):
    x = randn((2, 2 * block * block, 3, 2))[0]
    out, _ = check_op("depth_to_space", [x], {"block": block, "mode": mode})
    np.testing.assert_array_equal(out, rref.depth_to_space(x, block, mode))
    back, _ = check_op("space_to_depth", [out], {"block": block, "mode": mode})
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(back, rref.space_to_depth(out, block, mode))


@pytest.mark.parametrize("name,in_shapes,attrs,error,match", [
    ("conv2d", [(6, 5, 5), (4, 2, 3, 3), (4,)], {"groups": 4},
     ShapeError, r"conv2d: groups=4 must divide the input channels \(6\) and the filters \(4"),
    ("conv2d", [(6, 5, 5), (4, 2, 3, 3), (4,)], {"groups": 2},
     ShapeError, r"conv2d: input has 6 channels but weight expects 4 \(2 per group x 2 groups\) "
                 r"\(w shape \(4, 2, 3, 3\)\); give w shape \(4, 3, 3, 3\)"),
    ("conv2d", [(2, 5, 5), (3, 2, 3, 3), (3,)], {"dilation": 3},
     ShapeError, r"conv2d: dilated kernel 3x3 \(dilation 3x3, spanning 7x7\) is larger than "
                 r"the padded input 5x5"),
    ("conv2d", [(2, 6, 6), (3, 2, 3, 3), (3,)], {"stride": 2, "pad": (0, 0, 2, 1)},
     ShapeError, r"stride 2 does not tile the input height: 1 \+ \(H \+ P_begin \+ P_end"),
    ("conv_transpose", [(2, 4, 4), (2, 3, 3, 3), (3,)], {"stride": 2, "output_padding": 2},
     AttrError, r"conv_transpose: output_padding \(2, 2\) must be smaller than the stride"),
    ("conv_transpose", [(2, 4, 4), (3, 3, 3, 3), (3,)], {},
     ShapeError, r"conv_transpose: input has 2 channels but weight expects 3"),
    ("conv_transpose", [(2, 2, 2), (2, 3, 2, 2), (3,)], {"pad": 2},
     ShapeError, r"conv_transpose: pads \(2, 2, 2, 2\) crop the whole output"),
    ("conv1d", [(4, 9), (2, 4, 3), (2,)], {"groups": 3},
     ShapeError, r"conv1d: groups=3 must divide"),
])
def test_bad_shapes_name_the_op_the_shapes_and_the_fix(name, in_shapes, attrs, error, match):
    with pytest.raises(error, match=match):
        get_op(name).infer_shape(in_shapes, attrs)


@pytest.mark.parametrize("attrs,match", [
    ({"scale": 2, "size": (4, 4)}, r"resize: give exactly one of scale and size, got both"),
    ({}, r"resize: give exactly one of scale and size, got neither"),
    ({"scale": 0}, r"resize: scale must be a positive number"),
    ({"scale": 2, "mode": "cubic"}, r"resize: mode must be one of"),
])
def test_resize_bad_attrs(attrs, match):
    with pytest.raises((AttrError, ShapeError), match=match):
        get_op("resize").infer_shape([(1, 4, 4)], attrs)


def test_depth_to_space_needs_channels_divisible_by_the_block_area():
    with pytest.raises(ShapeError, match=r"depth_to_space: 12 channels .* blocks of 3x3"):
        get_op("depth_to_space").infer_shape([(12, 2, 2)], {"block": 3})
    with pytest.raises(ShapeError, match=r"space_to_depth: the input's height and width \(5, 4\) must be multiples of the block 2"):
        get_op("space_to_depth").infer_shape([(4, 5, 4)], {"block": 2})
