"""reshape (0, -1, unbatched), flatten at any axis, concat on any axis, slice, split, pad, tile,
gather: float64 gradient and forward-mode checks on values with and without the batch axis
(size-1 dims included), values against numpy, parity with torch for the output and every
gradient, the batch axis kept, and one-line errors naming the op, the shapes and the fix."""
import math

import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.errors import AttrError, FeedError, ShapeError
from dagnet.ops import get_op
from dagnet.ops.slicing import slice_bounds
from tests.ops.harness import check_op

DTYPES = [np.float32, np.float64]


def parity(*args):
    pytest.importorskip("torch")
    from tests.ops.test_torch_parity_ops import assert_parity

    assert_parity(*args)


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- reshape and flatten -------------------------------------------------------------------------
@pytest.mark.parametrize("shape, target, batched, want", [
    ((2, 3, 4), [0, -1], False, (2, 12)), ((2, 3, 4), [-1, 0], False, (8, 3)),
    ((1, 3, 1), [3], False, (3,)), ((5, 3, 4), [0, 2, -1], True, (5, 3, 2, 2)),
    ((2, 1, 6), [0, 3, -1], True, (2, 1, 3, 2)), ((6,), [1, -1, 1], False, (1, 6, 1))])
def test_reshape_zero_copies_and_minus_one_infers(shape, target, batched, want):
    x = rand(shape)
    attrs = {"shape": target} if batched else {"shape": target, "batched": False}
    out, _ = check_op("reshape", [x], attrs, batched=(batched,), expected=x.reshape(want))
    assert out.shape == want


def test_reshape_records_an_unbatched_input_and_refuses_bad_targets():
    g = Graph()
    u = g.input("u", (2, 3, 4), batched=False)
    r = g.reshape(u, [0, -1])
    assert r.attrs == {"shape": [0, -1], "batched": False} and g.shape_of(r) == (2, 12)
    assert Graph.from_spec(g.to_spec()).shape_of(r.name) == (2, 12)
    x = g.input("x", (3, 4))
    assert "batched" not in g.reshape(x, [0, 2, 2]).attrs
    with pytest.raises(ShapeError, match=r"reshape\d \(reshape, inputs u \(2, 3, 4\)\): reshape: "
                                         r"shape \[0, 0, 0, 0\] copies \(0\) axis 3 of x \(2, 3, "
                                         r"4\), which has no such axis; give the size there"):
        g.reshape(u, [0, 0, 0, 0])
    with pytest.raises(ShapeError, match=r"cannot reshape shape \(2, 3, 4\) \(24 values\) to "
                                         r"\(5, -1\); the target must hold 24 values"):
        g.reshape(u, [5, -1])
    bad = g.add_node("reshape", [u], {"shape": [24], "batched": True}, "bad")
    with pytest.raises(ShapeError, match=r"batched is true but x \(2, 3, 4\) is not batched"):
        g.shape_of(bad)


@pytest.mark.parametrize("shape, axis", [
    ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), 3), ((2, 1, 4), -1), ((5,), 1)])
def test_flatten_unbatched_at_any_axis(shape, axis):
    x = rand(shape)
    k = axis + len(shape) if axis < 0 else axis
    want = (math.prod(shape[:k]), math.prod(shape[k:]))
    out, _ = check_op("flatten", [x], {"axis": axis}, batched=(False,), expected=x.reshape(want))
    assert out.shape == want


def test_flatten_keeps_the_batch_axis():
    g = Graph()
    x = g.input("x", (3, 4, 5))
    assert g.shape_of(g.flatten(x)) == (60,) and g.shape_of(g.flatten(x, axis=-3)) == (60,)
    with pytest.raises(ShapeError, match=r"flatten: axis 2 of x \(N, 3, 4, 5\) would mix the "
                                         r"batch axis N with other axes; .*give axis 1"):
        g.flatten(x, axis=2)
    with pytest.raises(AttrError, match=r"flatten: axis 5 is out of range for x \(N, 3, 4, 5\); "
                                        r"use -4..4"):
        g.flatten(x, axis=5)


# -- concat ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes, axis, batched", [
    ([(2, 3), (4, 3)], 0, False), ([(2, 3, 1), (2, 3, 2)], -1, False),
    ([(2, 3, 1), (2, 3, 4), (2, 3, 1)], 2, True), ([(1, 1, 2), (1, 3, 2)], 1, True)])
def test_concat_on_any_axis(shapes, axis, batched):
    xs = [rand(s, i) for i, s in enumerate(shapes)]
    check_op("concat", xs, {"axis": axis}, batched=(batched,) * len(xs),
             expected=np.concatenate(xs, axis=axis))


# -- slice ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start, end, step, dim", [
    (0, 5, 1, 5), (-3, -1, 1, 5), (1, 100, 2, 5), (-100, 3, 1, 5), (4, -100, -1, 5),
    (-1, -6, -2, 5), (10, 0, -1, 5), (3, 3, 1, 5), (0, 2 ** 63 - 1, 3, 7), (-2 ** 63, 2, -1, 4)])
def test_slice_bounds_clamp_as_numpy_and_onnx(start, end, step, dim):
    a = np.arange(dim)
    # ONNX clamps start to [0, dim-1] and end to [-1, dim-1] for negative steps; numpy agrees
    # with that once ends below -dim become "before the first" (None)
    want = a[slice(start, None if end < -dim and step < 0 else end, step)]
    np.testing.assert_array_equal(a[slice_bounds(start, end, step, dim)], want)


@pytest.mark.parametrize("shape, attrs, batched", [
    ((2, 5, 4), {"starts": [1], "ends": [4], "axes": [1]}, True),
    ((2, 5, 4), {"starts": [-1, 0], "ends": [-100, 4], "axes": [1, -1], "steps": [-2, 3]}, True),
    ((5, 1, 3), {"starts": [0, 0, 2], "ends": [5, 1, -1000], "steps": [2, 1, -1]}, False),
    ((6,), {"starts": [4], "ends": [0], "steps": [-1]}, False)])
def test_slice(shape, attrs, batched):
    x = rand(shape)
    idx = get_op("slice").index(attrs, x.shape)
    out, _ = check_op("slice", [x], attrs, batched=(batched,), expected=x[idx])
    assert out.size


def test_slice_errors_name_the_op_shapes_and_fix():
    g = Graph()
    x = g.input("x", (5, 4))
    with pytest.raises(ShapeError, match=r"slice: axes \[0\] slice the batch axis N of x "
                                         r"\(N, 5, 4\); slice the axes of each example"):
        g.slice(x, starts=[0], ends=[1])
    with pytest.raises(AttrError, match=r"slice: steps \[0\] hold a 0"):
        g.slice(x, starts=[0], ends=[1], axes=[1], steps=[0])
    with pytest.raises(AttrError, match=r"slice: starts \[0, 1\], ends \[1\], axes \[1\] and "
                                        r"steps \[1, 1\] need one entry per sliced axis each"):
        g.slice(x, starts=[0, 1], ends=[1], axes=[1])
    with pytest.raises(AttrError, match=r"slice: axes \[3\]: axis 3 is out of range"):
        g.slice(x, starts=[0], ends=[1], axes=[3])


# -- split ------------------------------------------------------------------------------------------
def test_split_makes_one_node_per_part_and_their_gradients_sum():
    g = Graph("split")
    x = g.input("x", (6, 3))
    a, b, c = g.split(x, sizes=[1, 2, 3], name="s")
    assert [n.name for n in (a, b, c)] == ["s.0", "s.1", "s.2"]
    assert [g.shape_of(n) for n in (a, b, c)] == [(1, 3), (2, 3), (3, 3)]
    y = g.sum(g.concat(g.mul(c, 2.0), a, g.mul(b, b), axis=1), name="y")
    g.outputs = [y]
    feeds = {"x": rand((2, 6, 3))}
    plan = dagnet.compile(g, dtype="float64", wrt=["x"])
    plan.forward(feeds)
    grad = plan.backward({"y": np.array(1.0)})["x"]
    x0 = feeds["x"]
    want = np.concatenate([np.ones((2, 1, 3)), 2 * x0[:, 1:3], 2 * np.ones((2, 3, 3))], axis=1)
    np.testing.assert_allclose(grad, want, rtol=1e-12)
    assert [n.name for n in g.split(x, parts=2)] == ["split1.0", "split1.1"]
    assert [n.name for n in g.split(x, parts=2)] == ["split2.0", "split2.1"]


@pytest.mark.parametrize("shape, attrs, batched, want", [
    ((2, 6, 3), {"sizes": [2, 4], "index": 1}, True, (2, 4, 3)),
    ((5, 1), {"axis": 0, "parts": 3, "index": 2}, False, (1, 1)),
    ((4, 7), {"axis": -1, "parts": 3, "index": 0}, False, (4, 3))])
def test_split(shape, attrs, batched, want):
    out, _ = check_op("split", [rand(shape)], attrs, batched=(batched,))
    assert out.shape == want


def test_split_errors():
    g = Graph()
    x = g.input("x", (5, 4))
    with pytest.raises(ShapeError, match=r"split: sizes \[2, 2\] sum to 4, but axis 1 of x "
                                         r"\(N, 5, 4\) has 5; make them sum to 5"):
        g.split(x, sizes=[2, 2])
    with pytest.raises(ShapeError, match=r"split: 4 parts of axis 1 of x \(N, 5, 4\) \(5\) would "
                                         r"leave the last empty"):
        g.split(x, parts=4)
    with pytest.raises(ShapeError, match=r"split: axis 0 is the batch axis N"):
        g.split(x, parts=2, axis=0)
    with pytest.raises(AttrError, match=r"give sizes \(a list, one per part\) or parts"):
        g.split(x)
    assert len(list(g)) == 1  # a failing split leaves no part behind


# -- pad and tile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape, pads, axes, batched", [
    ((2, 3, 4), [0, 1, 2, 0, 2, 1], None, True), ((3, 1), [1, 0, 2, 0], None, False),
    ((2, 4, 3), [2, 1], [-1], True), ((5,), [3, 2], None, False)])
def test_pad_against_numpy(mode, shape, pads, axes, batched):
    if mode == "reflect" and shape == (3, 1):
        pads = [1, 0, 1, 0]  # reflect mirrors at most n - 1 positions
    x = rand(shape)
    rank = len(shape)
    ax = list(range(rank)) if axes is None else [a % rank for a in axes]
    width = [(0, 0)] * rank
    for k, a in enumerate(ax):
        width[a] = (pads[k], pads[k + len(ax)])
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]
    kw = {"constant_values": 1.5} if mode == "constant" else {}
    attrs = {"pads": pads, "mode": mode, "value": 1.5, **({} if axes is None else {"axes": axes})}
    check_op("pad", [x], attrs, batched=(batched,), expected=np.pad(x, width, np_mode, **kw))


def test_pad_negative_pads_crop():
    x = rand((4, 5))
    check_op("pad", [x], {"pads": [-1, 2, 0, -2], "mode": "edge"}, batched=(False,),
             expected=np.pad(x[1:, :3], [(0, 0), (2, 0)], "edge"))


def test_pad_errors():
    g = Graph()
    x = g.input("x", (3, 4))
    with pytest.raises(ShapeError, match=r"pad: pads \[1, 0, 0, 0, 0, 0\] pad the batch axis N "
                                         r"of x \(N, 3, 4\); give 0 there"):
        g.pad(x, pads=[1, 0, 0, 0, 0, 0])
    with pytest.raises(AttrError, match=r"pad: pads \[1, 1\] need 6 numbers for x \(N, 3, 4\)"):
        g.pad(x, pads=[1, 1])
    with pytest.raises(ShapeError, match=r"pad: reflect pads \(3, 0\) on axis 1 of x "
                                         r"\(N, 3, 4\) reach past the mirrored 2 positions"):
        g.pad(x, pads=[3, 0], axes=[1], mode="reflect")
    with pytest.raises(ShapeError, match=r"crop all 4 positions"):
        g.pad(x, pads=[-4, 0], axes=[2])
    with pytest.raises(AttrError, match=r"pad1 \(pad\): mode must be one of constant, reflect, edge, wrap"):
        g.pad(x, pads=[1, 1], axes=[2], mode="circular")


@pytest.mark.parametrize("shape, reps, batched", [
    ((2, 2, 3), [1, 2, 3], True), ((1, 3), [3, 1], False), ((2,), [4], False)])
def test_tile(shape, reps, batched):
    x = rand(shape)
    check_op("tile", [x], {"repeats": reps}, batched=(batched,), expected=np.tile(x, reps))


def test_tile_errors():
    g = Graph()
    x = g.input("x", (3,))
    with pytest.raises(ShapeError, match=r"tile: repeats \[2, 1\] repeat the batch axis N of "
                                         r"x \(N, 3\); give 1 there"):
        g.tile(x, repeats=[2, 1])
    with pytest.raises(AttrError, match=r"tile: repeats \[2\] need one number per axis of x "
                                        r"\(N, 3\) \(2\)"):
        g.tile(x, repeats=[2])


# -- gather -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, idx, axis, batched", [
    ((2, 5, 3), [[0, 4, -1], [2, 2, 0]], 1, (True, False)),
    ((2, 1, 4), [3, 3, 3], -1, (True, False)),
    ((6, 2), [[1, 5], [0, 1], [1, 1]], 0, (False, True)),
    ((4, 3, 1), 2, 1, (False, False)), ((4,), [0, -4, 3], 0, (False, False))])
def test_gather_scatter_adds_its_gradient(shape, idx, axis, batched):
    x, idx = rand(shape), np.array(idx, dtype=np.int64)
    out, (dx, di) = check_op("gather", [x, idx], {"axis": axis}, batched=batched,
                             expected=np.take(x, idx, axis=axis))
    assert di is None


def test_gather_graph_and_errors():
    g = Graph()
    table = g.param("table", (10, 4))
    ids = g.input("ids", (3,), dtype="int64")
    assert g.shape_of(g.gather(table, ids)) == (3, 4) and g.batched("gather1")
    x = g.input("x", (5, 4))
    assert g.shape_of(g.gather(x, [[0, 1]], axis=2)) == (5, 1, 2)
    with pytest.raises(ShapeError, match=r"gather: axis 0 is the batch axis N of x \(N, 5, 4\)"):
        g.gather(x, [0])
    with pytest.raises(ShapeError, match=r"gather: batched indices \(N, 3\) on axis 1 of x "
                                         r"\(N, 5, 4\) would put their batch axis N inside"):
        g.gather(x, ids, axis=1)
    with pytest.raises(FeedError, match=r"gather: index 7 is outside axis 1 of x \(2, 5\) "
                                        r"\(size 5\); give indices in -5..4"):
        get_op("gather").forward([rand((2, 5)), np.array([1, 7])], {"axis": 1})


# -- einsum with '...' -------------------------------------------------------------------------------
@pytest.mark.parametrize("eq, shapes, batched, want", [
    ("...ij,jk->...ik", [(2, 3, 4, 5), (5, 6)], (True, False), (2, 3, 4, 6)),
    ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 2)], (False, False), None),
    ("b...d,de->b...e", [(2, 1, 3, 4), (4, 2)], (True, False), (2, 1, 3, 2)),
    ("...i->...", [(3, 1, 4)], (True,), (3, 1)),
    ("ij...,jk->ik...", [(2, 3, 5), (3, 4)], (False, False), (2, 4, 5)),
    ("i,i", [(5,), (5,)], (False, False), ()), ("kj,ji", [(2, 3), (3, 4)], (False, False), (4, 2)),
    ("...ji", [(2, 3, 4)], (True,), (2, 4, 3))])
def test_einsum_ellipsis(eq, shapes, batched, want):
    xs = [rand(s, i) for i, s in enumerate(shapes)]
    if want is None:  # '...' covers axes of one size in every operand: no broadcasting of 1s
        with pytest.raises(ShapeError, match=r"einsum: axis 'A' has sizes 2 and 1"):
            get_op("einsum").infer_shape([tuple(x.shape) for x in xs], {"equation": eq})
        return
    out, _ = check_op("einsum", xs, {"equation": eq}, batched=batched,
                      expected=np.einsum(eq, *xs))
    assert out.shape == want


# -- spec forms ------------------------------------------------------------------------------------
def test_the_shape_ops_in_both_spec_forms():
    general = """
name: parts
nodes:
  - {name: x, op: input, shape: [6, 4]}
  - {name: idx, op: constant, value: [3, 0], dtype: int64}
  - {name: s.0, op: split, inputs: [x], axis: 1, sizes: [2, 4], index: 0}
  - {name: s.1, op: split, inputs: [x], axis: 1, sizes: [2, 4], index: 1}
  - {name: p, op: pad, inputs: [s.0], pads: [1, 0], axes: [1], mode: edge}
  - {name: g, op: gather, inputs: [s.1, idx], axis: 1}
  - {name: sl, op: slice, inputs: [p], starts: [-1], ends: [-100], axes: [1], steps: [-1]}
  - {name: c, op: concat, inputs: [sl, g], axis: 1}
  - {name: y, op: reshape, inputs: [c], shape: [0, -1]}
"""
    g = Graph.from_spec(general)
    assert g.shape_of("c") == (5, 4) and g.shape_of("y") == (5, 4)
    again = Graph.from_spec(g.to_spec())
    assert [(n.name, n.op, n.inputs, n.attrs) for n in again] == \
        [(n.name, n.op, n.inputs, n.attrs) for n in g]
    seq = Graph.from_spec({"name": "seq", "input": {"shape": [3, 8]}, "layers": [
        {"type": "pad", "pads": [1, 1], "axes": [2], "mode": "reflect"},
        {"type": "slice", "starts": [0], "ends": [8], "axes": [2], "steps": [2]},
        {"type": "tile", "repeats": [1, 2, 1]}, {"type": "flatten"}]})
    assert [seq.shape_of(n) for n in ("pad1", "slice1", "tile1", "scores")] == \
        [(3, 10), (3, 4), (6, 4), (24,)]


# -- a plan through all of them ----------------------------------------------------------------------
def test_a_plan_of_shape_ops_against_numerical_gradients_and_jvp():
    g = Graph("shapes")
    x = g.input("x", (4, 6))
    p = g.pad(x, pads=[1, 2, 0, 1], axes=[1, 2], mode="reflect", name="p")        # (N, 5, 9)
    s = g.slice(p, starts=[-1], ends=[-100], axes=[2], steps=[-2], name="s")      # (N, 5, 5)
    t = g.tile(s, repeats=[1, 1, 2], name="t")                                     # (N, 5, 10)
    a, b = g.split(t, sizes=[4, 6], axis=2, name="sp")
    c = g.concat(g.gather(a, [3, 0, 0, 1, 2, 2], axis=2, name="ga"), b, axis=2, name="c")
    y = g.sum(g.mul(g.flatten(c, name="f"), g.reshape(c, [-1], name="r")), name="y")
    g.outputs = [y]
    feeds = {"x": rand((2, 4, 6))}
    plan = dagnet.compile(g, dtype="float64", wrt=["x"])
    plan.forward(feeds)
    grad = plan.backward({"y": np.array(1.0)})["x"]
    f = dagnet.compile(g, dtype="float64", mode="eval")
    num = dagnet.numerical_gradient(lambda: f.forward(feeds)["y"], feeds["x"])
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
    tangent = rand((2, 4, 6), 3)
    _, tan = dagnet.jvp(g, feeds, {"x": tangent})
    np.testing.assert_allclose(tan["y"], np.sum(grad * tangent), rtol=1e-9)


# -- parity with torch --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_parity(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rand((2, 3, 4, 5)).astype(dtype)
    parity("reshape", [x], {"shape": [0, -1, 2]}, lambda t: t.reshape(2, 3, 10, 2), dtype, (0,))
    parity("flatten", [x], {"axis": 3}, lambda t: t.reshape(24, 5), dtype, (0,))
    parity("concat", [x, x[:, :, :1]], {"axis": 2}, lambda a, b: torch.cat([a, b], 2), dtype,
           (0, 1))
    attrs = {"starts": [-1, 1], "ends": [-100, 5], "axes": [3, 2], "steps": [-2, 2]}
    rows = list(range(*slice_bounds(-1, -100, -2, 5).indices(5)))
    parity("slice", [x], attrs,
           lambda t: t[:, :, 1:5:2].index_select(3, torch.tensor(rows)), dtype, (0,))
    parity("split", [x], {"axis": 3, "sizes": [2, 3], "index": 1},
           lambda t: torch.split(t, [2, 3], 3)[1], dtype, (0,))
    for mode, tmode in (("constant", "constant"), ("reflect", "reflect"), ("edge", "replicate"),
                        ("wrap", "circular")):
        parity("pad", [x], {"pads": [1, 2, 2, 1], "axes": [2, 3], "mode": mode},
               lambda t: F.pad(t, (2, 1, 1, 2), mode=tmode), dtype, (0,))
    parity("tile", [x], {"repeats": [1, 2, 1, 3]}, lambda t: t.repeat(1, 2, 1, 3), dtype, (0,))
    parity("einsum", [x, x[0, 0]], {"equation": "...ij,kj->...ik"},
           lambda a, b: torch.einsum("...ij,kj->...ik", a, b), dtype, (0, 1))
    idx = np.array([[4, 0], [4, -1]], dtype=np.int64)
    parity("gather", [x, idx], {"axis": 3},
           lambda t, i: t[:, :, :, i % 5], dtype, (0,))
