"""relu's input gradient (dagnet/relu_grad.py): the compiled kernel, the numpy path and the
loop reference give the same bits, signed zeros and NaN included, in every layout the ops hand
it; every op that applies relu's mask gives +0.0 at dead units."""
import numpy as np
import pytest

from dagnet import reference
from dagnet import relu_grad as rg
from dagnet.kernels import HAVE_CYTHON
from dagnet.ops import get_op

WORD = {np.float32: np.uint32, np.float64: np.uint64}


def specials(shape, dtype, seed=0):
    """dout and y with NaN, +-Inf, +-0.0 and tiny values in both, on random signs."""
    rng = np.random.default_rng(seed)
    d, y = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    for a, k in ((d, 0), (y, 3)):
        flat = a.reshape(-1)
        for j, v in enumerate((np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45)):
            flat[(j + k) % 7::9 + j] = v
    return d, y


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(WORD[a.dtype.type]),
        np.ascontiguousarray(b).view(WORD[b.dtype.type]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1000,), (13, 77), (3, 5, 7, 9), (2, 3, 1, 1), (4, 2, 3)])
def test_kernel_numpy_and_reference_agree_bitwise(dtype, shape):
    d, y = specials(shape, dtype)
    want = reference.relu_grad(d, y)
    assert same_bits(rg.relu_grad_numpy(d, y), want)
    assert same_bits(rg.relu_grad(d, y), want)
    # the select's semantics: +0.0 at dead units whatever dout holds, dout's bits elsewhere
    dead = ~(y > 0)
    assert not np.signbit(want[dead]).any() and (want[dead] == 0).all()
    assert same_bits(want[~dead], d[~dead])
    assert np.isnan(want[~dead & np.isnan(d)]).all()


@pytest.mark.skipif(not HAVE_CYTHON, reason="the compiled kernel is not built")
def test_the_kernel_runs_on_the_layouts_ops_hand_it(monkeypatch):
    calls = []
    real = rg._special_ext.relu_grad
    monkeypatch.setattr(rg._special_ext, "relu_grad", lambda *a: calls.append(1) or real(*a),
                        raising=False)
    monkeypatch.setattr(rg, "_special_ext", rg._special_ext)
    d, y = specials((4, 6, 5, 7), np.float32)
    want = reference.relu_grad(d, y)
    # a conv's GEMM-layout gradient: the (N, F, H, W) view of an (F, N, H, W) array
    gemm = np.empty((6, 4, 5, 7), np.float32).transpose(1, 0, 2, 3)
    assert rg.relu_grad(d, y, out=gemm) is gemm and same_bits(gemm, want)
    assert same_bits(rg.relu_grad(d.transpose(1, 0, 2, 3), y.transpose(1, 0, 2, 3)),
                     want.transpose(1, 0, 2, 3))
    inplace = d.copy()
    assert rg.relu_grad(inplace, y, out=inplace) is inplace and same_bits(inplace, want)
    assert len(calls) == 3
    # rows that are not contiguous take numpy's path, the same bits
    assert same_bits(rg.relu_grad(d[..., ::2], y[..., ::2]), want[..., ::2])
    assert len(calls) == 3


def test_kernel_off_and_odd_inputs_take_numpy_the_same_bits(monkeypatch):
    d, y = specials((3, 4, 5), np.float32)
    on = rg.relu_grad(d, y)
    monkeypatch.setattr(rg, "KERNEL", False)
    assert same_bits(rg.relu_grad(d, y), on)
    assert rg.relu_grad(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)).shape == (0, 3)
    got = rg.relu_grad(np.array(-2.0), np.array(-1.0))
    assert got.shape == () and got == 0 and not np.signbit(got)
    d16, y16 = d.astype(np.float16), y.astype(np.float16)
    half, want = rg.relu_grad(d16, y16), reference.relu_grad(d16, y16)
    assert half.dtype == np.float16 and np.array_equal(half.view(np.uint16), want.view(np.uint16))


def test_relu_backward_matches_torch_threshold_backward():
    """Bitwise, signed zeros and NaN/Inf in dout included; a NaN y (from a NaN input) is
    the one difference: torch passes dout there (y <= 0 is false), dagnet gives 0 (y > 0
    is false), as its batchnorm + relu kernels always have."""
    torch = pytest.importorskip("torch")
    d, y = specials((4, 3, 8, 8), np.float32)
    y[np.isnan(y)] = 1.0
    (got,) = get_op("relu").backward(d, y, {})
    want = torch.ops.aten.threshold_backward(torch.from_numpy(d), torch.from_numpy(y), 0).numpy()
    assert same_bits(got, want)


@pytest.mark.parametrize("name,downstream", [
    ("conv2d+relu", "conv_backward"), ("affine+relu", "affine_backward"),
    ("conv2d+relu+max_pool2d", "maxpool_backward"),
    ("conv2d+batchnorm+relu+max_pool2d", "maxpool_backward")])
def test_fused_relu_steps_mask_as_relu_does(name, downstream, monkeypatch):
    """The gradient each fused step hands on past relu is relu_grad's: +0.0 at dead units
    (the product dout * (y > 0) gave -0.0 where dout < 0), dout's own bits at live ones."""
    from dagnet.ops import fused

    seen = []
    real = getattr(fused, downstream)
    monkeypatch.setattr(fused, downstream, lambda g, *a, **k: seen.append(g.copy()) or real(
        g, *a, **k))
    rng = np.random.default_rng(1)
    conv, bn = name.startswith("conv"), "batchnorm" in name
    x = rng.standard_normal((2, 3, 6, 6) if conv else (5, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3) if conv else (7, 4)).astype(np.float32)
    inputs = [x, w, np.zeros(4, np.float32)] + [np.ones(4, np.float32),
                                                np.zeros(4, np.float32)] * bn
    op = get_op(name)
    attrs = {"members": [{"op": m, "attrs": {}} for m in op.chain]}
    out, cache = op.forward(inputs, attrs)
    if cache[0] == "rows":
        pytest.skip("the row kernel applies the mask itself (ops/convpool.py)")
    dout = -np.abs(rng.standard_normal(out.shape)).astype(np.float32)  # -0.0 by a product
    op.backward(dout, cache, attrs)
    assert seen, f"{name}: its backward did not reach {downstream}"
    # the mask is relu's output, which the step keeps last in its cache
    relu_out = cache[-1] if not isinstance(cache[-1], tuple) else cache[-1][-1]
    assert same_bits(seen[0].astype(np.float32), reference.relu_grad(dout, relu_out))
