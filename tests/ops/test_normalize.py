"""layer_norm, group_norm, instance_norm, lrn and embedding: gradients in float64, the fast
code against the loop references, the builder's params, plans, and the errors."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph, reference
from dagnet.errors import AttrError, DTypeError, FeedError, ShapeError
from dagnet.gradcheck import gradcheck_plan
from dagnet.ops import get_op
from dagnet.ops.embedding import embedding_backward
from dagnet.ops.lrn import lrn_forward
from dagnet.ops.normalize import standardise, standardise_backward
from tests.ops.harness import check_op

rng = np.random.default_rng(0)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def affine_params(name, x_shape, attrs, seed=1):
    op = get_op(name)
    shape = op.param_shapes(x_shape[1:], op.read_attrs(attrs))["gamma"]
    return [randn(*shape, seed=seed) + 1, randn(*shape, seed=seed + 1)]


# -- gradients, values --------------------------------------------------------------------------
LAYER = [((3, 4, 5), -1), ((2, 3, 4, 4), 1), ((2, 3, 4, 4), -2), ((4, 6), 1), ((2, 1, 5), -1),
         ((1, 3, 1, 4), 2), ((2, 5, 1), -1)]


@pytest.mark.parametrize("shape,axis", LAYER)
def test_layer_norm_gradients_and_values(shape, axis):
    x = randn(*shape) * 3 + 2
    gamma, beta = affine_params("layer_norm", shape, {"axis": axis})
    axes = tuple(range(axis % len(shape), len(shape)))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    expected = gamma * (x - mean) / np.sqrt(var + 1e-5) + beta
    # a normalised axis of one value (shape (2, 5, 1), axis -1) has xhat 0: gamma gets 0
    check_op("layer_norm", [x, gamma, beta], {"axis": axis}, expected=expected)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 3), 3), ((2, 8), 2), ((3, 6, 5), 6),
                                          ((2, 4, 2, 3), 1), ((1, 6, 1, 1), 2)])
def test_group_norm_gradients_and_values(shape, groups):
    x = randn(*shape) * 2 - 1
    gamma, beta = affine_params("group_norm", shape, {"groups": groups})
    xg = x.reshape(shape[0], groups, -1)
    xhat = ((xg - xg.mean(axis=2, keepdims=True)) /
            np.sqrt(xg.var(axis=2, keepdims=True) + 1e-5)).reshape(shape)
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = gamma.reshape(per_channel) * xhat + beta.reshape(per_channel)
    check_op("group_norm", [x, gamma, beta], {"groups": groups}, expected=expected)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 2, 7), (1, 1, 2, 3)])
def test_instance_norm_is_group_norm_with_a_group_per_channel(shape):
    x = randn(*shape)
    gamma, beta = affine_params("instance_norm", shape, {})
    expected, _ = get_op("group_norm").forward([x, gamma, beta], {"groups": shape[1]})
    check_op("instance_norm", [x, gamma, beta], {}, expected=expected)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("shape", [(2, 7, 3, 3), (3, 4), (2, 1, 5)])
def test_lrn_gradients_and_values_match_the_reference(size, shape):
    x = randn(*shape)
    attrs = {"size": size, "alpha": 0.5, "beta": 0.75, "bias": 2.0}
    check_op("lrn", [x], attrs, expected=reference.lrn(x, size, 0.5, 0.75, 2.0))


@pytest.mark.parametrize("ids_shape", [(4,), (4, 3), (2, 3, 2)])
def test_embedding_gradients_and_values(ids_shape):
    ids = np.random.default_rng(2).integers(0, 5, ids_shape)
    w = randn(5, 3)
    out, grads = check_op("embedding", [ids, w], {}, expected=w[ids])
    assert out.shape == ids_shape + (3,) and grads[0] is None


# -- the fast code against the loop references ------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_standardise_matches_the_reference_and_its_jacobian(dtype, tol):
    rows = (randn(5, 17) * 4 + 3).astype(dtype)
    g = randn(5, 17, seed=1).astype(dtype)
    xhat, inv_std = standardise(rows.copy(), 1e-5)
    assert xhat.dtype == dtype
    np.testing.assert_allclose(xhat, reference.standardise_rows(rows.astype(np.float64), 1e-5),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(
        standardise_backward(g, xhat, inv_std),
        reference.standardise_rows_backward(g.astype(np.float64), rows.astype(np.float64), 1e-5),
        rtol=tol * 10, atol=tol * 10)


def test_lrn_float32_matches_the_reference_and_keeps_its_dtype():
    x = randn(3, 6, 4, 4).astype(np.float32)
    y, _ = lrn_forward(x, 5, 1e-2, 0.75, 1.0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference.lrn(x.astype(np.float64), 5, 1e-2, 0.75, 1.0),
                               rtol=1e-6, atol=1e-7)


def test_embedding_backward_matches_the_reference_with_repeats_and_unused_rows():
    ids = np.array([[3, 3, 0], [7, 3, 0]])
    dout = randn(2, 3, 4)
    got = embedding_backward(dout, ids, 9)
    np.testing.assert_allclose(got, reference.embedding_backward(dout, ids, 9), rtol=1e-15)
    assert not got[[1, 2, 4, 5, 6, 8]].any()
    assert embedding_backward(np.zeros((0, 4)), np.zeros((0,), np.int64), 3).shape == (3, 4)


# -- builder, plans ------------------------------------------------------------------------------
def test_builder_makes_the_params_each_norm_needs():
    g = Graph()
    x = g.input("x", (6, 4, 4))
    t = g.input("t", (7,), dtype="int64")
    g.layer_norm(x, axis=1, name="whole")
    g.layer_norm(x, name="last")
    g.group_norm(x, num_groups=3, name="gn")
    g.instance_norm(x, name="inorm")
    g.lrn(x, 5, k=2.0, name="lrn")
    g.embedding(t, num_embeddings=10, embedding_dim=8, name="emb")
    shapes = {n.name: tuple(n.attrs["shape"]) for n in g.nodes if n.op == "param"}
    assert shapes == {"whole.gamma": (6, 4, 4), "whole.beta": (6, 4, 4), "last.gamma": (4,),
                      "last.beta": (4,), "gn.gamma": (6,), "gn.beta": (6,),
                      "inorm.gamma": (6,), "inorm.beta": (6,), "emb.w": (10, 8)}
    assert g.node("emb.w").attrs["init"] == "gaussian" and g.node("emb.w").attrs["scale"] == 1.0
    assert g.node("lrn").attrs["bias"] == 2.0
    assert g.shape_of("emb") == (7, 8)
    from viz.style import family_of

    assert [family_of(g.node(n)) for n in ("whole", "gn", "inorm", "lrn", "emb")] == \
        ["norm"] * 4 + ["dense"]


def test_a_token_model_trains_and_its_plan_gradients_check():
    g = Graph("tokens")
    t = g.input("t", (6,), dtype="int64")
    y = g.input("y", (), dtype="int64")
    h = g.layer_norm(g.embedding(t, 12, 8))
    h = g.gelu(g.group_norm(g.reshape(h, (8, 6)), 2))
    g.softmax_cross_entropy(g.affine(g.lrn(h, 3), 3), y)
    plan = dagnet.compile(g, dtype="float64", seed=0)
    feeds = {"t": rng.integers(0, 12, (4, 6)), "y": rng.integers(0, 3, 4)}
    errors = gradcheck_plan(plan, feeds)
    assert max(errors.values()) < 1e-7, errors
    first = plan.loss_and_grads(feeds)[0]
    for _ in range(30):
        loss, grads = plan.loss_and_grads(feeds)
        for p, gr in grads.items():
            plan.params[p] -= 0.1 * gr
    assert loss < 0.5 * first


def test_eval_mode_equals_train_mode():
    for name, attrs in (("layer_norm", {}), ("group_norm", {"groups": 2}), ("instance_norm", {})):
        x = randn(2, 4, 3)
        params = affine_params(name, x.shape, attrs)
        op = get_op(name)
        np.testing.assert_array_equal(op.forward([x, *params], attrs, mode="train")[0],
                                      op.forward([x, *params], attrs, mode="eval")[0])


# -- errors --------------------------------------------------------------------------------------
def test_shape_and_attr_errors_name_the_node_and_the_fix():
    g = Graph()
    x = g.input("x", (6, 4, 4))
    with pytest.raises(ShapeError, match=r"gn: group_norm: 4 groups do not divide the 6 "
                                         r"channels.*one of \[1, 2, 3, 6\]"):
        g.group_norm(x, 4, name="gn")
    with pytest.raises(ShapeError, match=r"instance_norm.*\(6,\).*no positions"):
        g.instance_norm(g.input("f", (6,)))
    with pytest.raises(AttrError, match="axis 0 is the batch axis"):
        g.layer_norm(x, axis=0)
    with pytest.raises(AttrError, match="axis 4 is out of range"):
        g.layer_norm(x, axis=4)
    with pytest.raises(ShapeError, match=r"ln \(layer_norm.*gamma has shape \(4,\).*\(6, 4, 4\)"):
        g.op("layer_norm", x, g.param("s", (4,)), g.param("b", (4,)), axis=1, name="ln")
    with pytest.raises(AttrError, match="groups"):
        g.group_norm(x)
    with pytest.raises(AttrError, match="size"):
        g.lrn(x)


def test_embedding_refuses_float_ids_and_ids_out_of_range():
    op = get_op("embedding")
    w = randn(4, 2)
    with pytest.raises(DTypeError, match="'ids' must be an integer array, got float64"):
        op.forward([np.zeros((2, 3)), w], {})
    with pytest.raises(FeedError, match=r"id 4 is outside the table's rows \[0, 4\)"):
        op.forward([np.array([[0, 4]]), w], {})
    with pytest.raises(FeedError, match=r"id -1"):
        op.forward([np.array([[-1, 0]]), w], {})
    g = Graph()
    with pytest.raises(ShapeError, match=r"emb .*table 'w' must have 2 dims"):
        g.op("embedding", g.input("t", (3,), dtype="int64"), g.param("w", (4,)), name="emb")
