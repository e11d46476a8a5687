"""Parity of the tensor-math ops with PyTorch: the output and every gradient, norm-wise within
1e-5 (float32) / 1e-10 (float64), on shapes that broadcast and have size-1 axes."""
import numpy as np
import pytest

from dagnet.ops import get_op
from tests.ops.test_torch_parity_ops import DTYPES, assert_close, assert_parity
from tests.ops.test_torch_parity_ops import randn as _randn

torch = pytest.importorskip("torch")


def randn(shape, dtype, seed=0, scale=1.0):
    return np.asarray(_randn(shape, dtype, seed, scale))

BROADCASTS = [((2, 3, 4), (4,)), ((3, 1, 4), (1, 5, 1)), ((2, 3), ()), ((1, 3, 1), (2, 1, 1, 2))]


def positive(shape, dtype, seed):
    return np.asarray(np.abs(randn(shape, dtype, seed)) + 0.5, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCASTS)
@pytest.mark.parametrize("name, fn", [
    ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div), ("pow", torch.pow),
    ("maximum", torch.maximum), ("minimum", torch.minimum)])
def test_binary(dtype, shapes, name, fn):
    x = positive(shapes[0], dtype, 1) if name == "pow" else randn(shapes[0], dtype, 1)
    y = positive(shapes[1], dtype, 2) if name == "div" else randn(shapes[1], dtype, 2)
    assert_parity(name, [x, y], {}, fn, dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_extrema_share_ties_as_torch_does(dtype):
    x = np.array([[1.0, 2.0, 3.0]], dtype)
    y = np.array([2.0], dtype)
    for name, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        assert_parity(name, [x, y], {}, fn, dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_broadcasting(dtype):
    xs = [randn((2, 3, 4), dtype, 0), randn((4,), dtype, 1), randn((3, 1), dtype, 2)]
    assert_parity("add", xs, {}, lambda a, b, c: a + b + c, dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(dtype):
    cond = (randn((3, 4), dtype, 5) > 0).astype(dtype)
    x, y = randn((2, 3, 4), dtype, 1), randn((4,), dtype, 2)
    assert_parity("where", [cond, x, y], {}, lambda c, a, b: torch.where(c != 0, a, b),
                  dtype, (1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, domain", [
    ("exp", torch.exp, None), ("log", torch.log, "pos"), ("sqrt", torch.sqrt, "pos"),
    ("reciprocal", torch.reciprocal, "pos"), ("abs", torch.abs, None), ("neg", torch.neg, None),
    ("sin", torch.sin, None), ("cos", torch.cos, None), ("erf", torch.erf, None),
    ("sign", torch.sign, None)])
def test_unary(dtype, name, fn, domain):
    x = positive((3, 4, 5), dtype, 3) if domain else randn((3, 4, 5), dtype, 3, scale=1.5)
    assert_parity(name, [x], {}, fn, dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lo, hi", [(-0.5, 0.7), (None, 0.2), (-0.3, None)])
def test_clip(dtype, lo, hi):
    attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    assert_parity("clip", [randn((4, 6), dtype, 4)], attrs, lambda x: torch.clamp(x, lo, hi),
                  dtype, (0,))


def _torch_reduce(name, axes, keepdims):
    def fn(x):
        dims = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
        if name == "sum":
            return torch.sum(x, dim=dims, keepdim=keepdims)
        if name == "mean":
            return torch.mean(x, dim=dims, keepdim=keepdims)
        if name == "max":
            return torch.amax(x, dim=dims, keepdim=keepdims)
        if name == "min":
            return torch.amin(x, dim=dims, keepdim=keepdims)
        if name == "l2":
            return torch.linalg.vector_norm(x, dim=dims, keepdim=keepdims)
        for d in sorted(dims, reverse=True):  # prod: one axis at a time
            x = torch.prod(x, dim=d, keepdim=keepdims)
        return x
    return fn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "l2"])
@pytest.mark.parametrize("axes, keepdims", [([1], False), ([0, 2], True), (None, False), ([-1], True)])
def test_reductions(dtype, name, axes, keepdims):
    x = randn((3, 4, 2), dtype, 6)
    attrs = {"keepdims": keepdims, **({} if axes is None else {"axes": axes})}
    assert_parity(name, [x], attrs, _torch_reduce(name, axes, keepdims), dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_with_ties_and_zeros(dtype):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 0.0, 0.0, 2.0]], dtype)
    for name in ("max", "min", "prod"):
        assert_parity(name, [x], {"axes": [1]}, _torch_reduce(name, [1], False), dtype, (0,))
    assert_parity("l2", [np.zeros((2, 3), dtype)], {"axes": [1]},
                  _torch_reduce("l2", [1], False), dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax(dtype):
    x = randn((4, 5, 3), dtype, 7)
    for axis in (0, 1, -1):
        ours, _ = get_op("argmax").forward([x], {"axis": axis})
        np.testing.assert_array_equal(ours, torch.argmax(torch.from_numpy(x), dim=axis).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a, b", [((2, 3, 4), (4, 5)), ((2, 4), (4,)), ((4,), (2, 4, 3)),
                                  ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (2, 4, 5))])
def test_matmul(dtype, a, b):
    assert_parity("matmul", [randn(a, dtype, 1), randn(b, dtype, 2)], {}, torch.matmul, dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eq, shapes", [
    ("ntd,dm->ntm", ((2, 3, 4), (4, 5))), ("nhtd,nhsd->nhts", ((2, 2, 3, 4), (2, 2, 5, 4))),
    ("ij->i", ((3, 4),)), ("ni,ij,j->nj", ((2, 3), (3, 4), (4,)))])
def test_einsum(dtype, eq, shapes):
    xs = [randn(s, dtype, i) for i, s in enumerate(shapes)]
    assert_parity("einsum", xs, {"equation": eq}, lambda *t: torch.einsum(eq, *t), dtype,
                  tuple(range(len(xs))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn", [("equal", torch.eq), ("less", torch.lt),
                                      ("less_equal", torch.le), ("greater", torch.gt),
                                      ("greater_equal", torch.ge)])
def test_comparisons(dtype, name, fn):
    x, y = np.round(randn((3, 4), dtype, 1)), np.round(randn((4,), dtype, 2))
    ours, _ = get_op(name).forward([x, y], {})
    assert_close(ours, fn(torch.from_numpy(x), torch.from_numpy(y)).numpy().astype(dtype), dtype, name)
