"""transpose, squeeze, unsqueeze: float64 gradient and forward-mode checks on values with and
without the batch axis, views of their input, parity with torch, the batch axis kept leading,
and errors that name the shapes and the rule."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import AttrError, ShapeError
from dagnet.ops import get_op
from tests.ops.harness import check_op

DTYPES = [np.float32, np.float64]


def parity(*args):
    """assert_parity of tests/ops/test_torch_parity_ops.py, imported only when torch is here
    (that module skips itself without it)."""
    pytest.importorskip("torch")
    from tests.ops.test_torch_parity_ops import assert_parity

    assert_parity(*args)


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("shape, perm, batched", [
    ((2, 3, 4), [0, 2, 1], True), ((2, 3, 4, 5), [0, 3, 1, 2], True), ((3, 4), None, False),
    ((2, 3, 4), [2, 0, 1], False), ((5,), [0], False), ((2, 1, 3), [0, -1, -2], True)])
def test_transpose(shape, perm, batched):
    x = rand(shape)
    attrs = {} if perm is None else {"perm": perm}
    check_op("transpose", [x], attrs, batched=(batched,),
             expected=np.transpose(x, None if perm is None else [p % len(shape) for p in perm]))
    out, _ = get_op("transpose").forward([x], attrs)
    assert np.shares_memory(out, x)  # a view


@pytest.mark.parametrize("shape, axes, batched, want", [
    ((2, 1, 4), [1], True, (2, 4)), ((2, 3, 1, 1), [-1, 2], True, (2, 3)),
    ((1, 3), [0], False, (3,)), ((1,), [0], False, ())])
def test_squeeze(shape, axes, batched, want):
    x = rand(shape)
    out, _ = check_op("squeeze", [x], {"axes": axes}, batched=(batched,))
    assert out.shape == want


@pytest.mark.parametrize("shape, axes, batched, want", [
    ((2, 4), [1], True, (2, 1, 4)), ((2, 3), [-1, 1], True, (2, 1, 3, 1)),
    ((3,), [0], False, (1, 3)), ((), [0, 1], False, (1, 1))])
def test_unsqueeze(shape, axes, batched, want):
    x = rand(shape)
    out, _ = check_op("unsqueeze", [x], {"axes": axes}, batched=(batched,))
    assert out.shape == want


def test_the_batch_axis_stays_leading_and_bad_axes_are_named():
    g = Graph()
    x = g.input("x", (3, 1, 4))
    with pytest.raises(ShapeError, match=r"transpose: perm \[1, 0, 2, 3\] moves the batch axis N "
                                         r"of x \(N, 3, 1, 4\); .*keep perm\[0\] = 0"):
        g.transpose(x, perm=[1, 0, 2, 3])
    with pytest.raises(AttrError, match=r"perm must be an integer or a list of distinct"):
        g.transpose(x, perm=[0, 1, 1, 2])
    with pytest.raises(AttrError, match=r"transpose: perm \[0, 1, 2\] is not a permutation of "
                                        r"the 4 axes of x \(N, 3, 1, 4\)"):
        g.transpose(x, perm=[0, 1, 2])
    with pytest.raises(ShapeError, match=r"squeeze: axis 1 of x \(N, 3, 1, 4\) has size 3; "
                                         r"squeeze drops only axes of size 1"):
        g.squeeze(x, axes=[1])
    with pytest.raises(ShapeError, match=r"squeeze: axis 0 of x \(N, 3, 1, 4\) has the batch axis N"):
        g.squeeze(x, axes=[0])
    with pytest.raises(ShapeError, match=r"unsqueeze: axes \[0\] put a new axis before the batch "
                                         r"axis N"):
        g.unsqueeze(x, axes=[0])
    with pytest.raises(AttrError, match=r"unsqueeze: axes \[9\]: axis 9 is out of range"):
        g.unsqueeze(x, axes=[9])


def test_attention_heads_split_and_merged_through_a_plan():
    """(N, T, H*D) -> (N, H, T, D) and back, as multi-head attention does, with gradients."""
    g = Graph("heads")
    x = g.input("x", (5, 6))
    h = g.transpose(g.reshape(x, shape=(5, 2, 3), name="split"), perm=[0, 2, 1, 3], name="heads")
    scores = g.matmul(h, g.transpose(h, perm=[0, 1, 3, 2], name="kT"), name="scores")  # (N,2,5,5)
    y = g.sum(g.unsqueeze(g.squeeze(g.sum(scores, axes=[-1], keepdims=True, name="r"),
                                    axes=[-1], name="sq"), axes=[1], name="un"), name="y")
    g.outputs = [y]
    assert g.shape_of("heads") == (2, 5, 3) and g.shape_of("un") == (1, 2, 5)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 5, 6))}
    plan = dagnet.compile(g, dtype="float64", wrt=["x"])
    plan.forward(feeds)
    grad = plan.backward({"y": np.array(1.0)})["x"]
    x0 = feeds["x"]
    hh = x0.reshape(2, 5, 2, 3).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(plan.forward(feeds)["y"], np.sum(hh @ hh.transpose(0, 1, 3, 2)))
    f = dagnet.compile(g, dtype="float64", mode="eval")
    num = dagnet.numerical_gradient(lambda: f.forward(feeds)["y"], x0)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
    _, t = dagnet.jvp(g, feeds, {"x": np.ones_like(x0)})
    np.testing.assert_allclose(t["y"], np.sum(grad), rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_parity(dtype):
    x = rand((2, 3, 1, 4)).astype(dtype)
    parity("transpose", [x], {"perm": [0, 3, 1, 2]}, lambda t: t.permute(0, 3, 1, 2),
                  dtype, (0,))
    parity("squeeze", [x], {"axes": [2]}, lambda t: t.squeeze(2), dtype, (0,))
    parity("unsqueeze", [x], {"axes": [1, -1]},
                  lambda t: t.unsqueeze(1).unsqueeze(-1), dtype, (0,))


@pytest.mark.parametrize("shape, target, batched, want", [
    ((2, 1, 4), [1, 3, 1], True, (2, 3, 4)), ((3, 1), [2, 3, 5], False, (2, 3, 5)),
    ((), [2, 2], False, (2, 2)), ((2, 1), [1, 1, 3], True, None)])
def test_expand(shape, target, batched, want):
    x = rand(shape)
    if want is None:  # an unbatched shape with more axes than the batch
        with pytest.raises(ShapeError, match=r"expand: cannot broadcast x \(N, 1\), shape "
                                             r"\(1, 1, 3\).*the batch axis stays the leading one"):
            get_op("expand").infer_shape([(None, 1), (1, 1, 3)][:1], {"shape": target})
        return
    out, _ = check_op("expand", [x], {"shape": target}, batched=(batched,),
                      expected=np.broadcast_to(x, np.broadcast_shapes(shape, tuple(target))))
    assert out.shape == want


@pytest.mark.parametrize("dtype", DTYPES)
def test_expand_torch_parity(dtype):
    x = rand((2, 1, 4)).astype(dtype)
    parity("expand", [x], {"shape": [1, 3, 1]}, lambda t: t.expand(2, 3, 4), dtype, (0,))
