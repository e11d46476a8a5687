"""ONNX export and import of the shape ops (reshape with 0 and -1, flatten at any axis, concat,
slice, split, pad, tile, gather) on values with and without the batch axis: round trips,
onnxruntime at several opsets, and models written with onnx.helper as other exporters write
them."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import dagnet  # noqa: E402
from dagnet import Graph  # noqa: E402
from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.onnx import OnnxError, export, load  # noqa: E402
from tests.test_onnx import (TOL, randomized_plan, run_dagnet, run_ort,  # noqa: E402
                             structure)


def batched_graph():
    g = Graph("shapes_batched")
    x = g.input("x", (4, 6))
    p = g.pad(x, pads=[1, 2, 0, 1], axes=[1, 2], mode="reflect", name="p")        # (N, 5, 9)
    e = g.pad(p, pads=[0, 0, 1, 0, 0, 2], mode="edge", name="e")                   # (N, 5, 12)
    c0 = g.pad(e, pads=[0, -1, 1, 0, 0, -2], value=0.5, name="c0")                 # (N, 4, 11)
    s = g.slice(c0, starts=[-1, 0], ends=[-100, 9], axes=[1, 2], steps=[-2, 3],
                name="s")                                                          # (N, 2, 3)
    t = g.tile(s, repeats=[1, 2, 3], name="t")                                      # (N, 4, 9)
    a, b = g.split(t, sizes=[4, 5], axis=2, name="sp")                             # (N, 4, 4|5)
    ga = g.gather(a, [[3, 0], [0, 1]], axis=2, name="ga")                          # (N, 4, 2, 2)
    r = g.reshape(ga, [4, 4], name="r")  # batched: import resolves 0 and -1         (N, 4, 4)
    cat = g.concat(r, b, axis=2, name="cat")                                       # (N, 4, 9)
    g.outputs = [g.flatten(cat, name="f"), a]
    return g


def unbatched_graph():
    g = Graph("shapes_unbatched")
    u = g.input("u", (3, 4, 5), batched=False)
    r = g.reshape(u, [0, -1], name="r")                                            # (3, 20)
    f = g.flatten(u, axis=2, name="f")                                             # (12, 5)
    s = g.slice(f, starts=[-1], ends=[-1000], steps=[-4], name="s")                # (3, 5)
    ga = g.gather(r, [2, 0], axis=0, name="ga")                                     # (2, 20)
    p = g.pad(ga, pads=[1, 0, 0, -15], mode="edge", name="p")                       # (3, 5)
    cat = g.concat(s, p, axis=0, name="cat")                                        # (6, 5)
    parts = g.split(cat, sizes=[2, 2, 2], axis=0, name="sp")
    g.outputs = [g.tile(parts[1], repeats=[2, 1], name="t"), parts[2], parts[0]]
    return g


SHAPE_GRAPHS = (batched_graph, unbatched_graph)


def feeds_of(graph, batch=3):
    rng = np.random.default_rng(1)
    return {n.name: rng.standard_normal((batch,) * n.attrs.get("batched", True)
                                        + tuple(n.attrs["shape"])).astype(np.float32)
            for n in graph.inputs}


def roundtrip(graph, tmp_path, opset):
    plan = randomized_plan(graph)
    path = tmp_path / f"{graph.name}_{opset}.onnx"
    model = export(plan, path, opset=opset)
    feeds = feeds_of(graph)
    want = run_dagnet(graph, plan.params, plan.state, feeds)
    for got, w in zip(run_ort(model, feeds), want):
        assert got.shape == w.shape and norm_error(got, w) < TOL
    m = load(path)
    back = run_dagnet(m.graph, m.params, m.state, feeds, graph.outputs)
    for got, w in zip(back, want):
        assert norm_error(got, w) < TOL
    return model, m


@pytest.mark.parametrize("make", SHAPE_GRAPHS)
@pytest.mark.parametrize("opset", [13, 17, 18, 19])
def test_shape_ops_round_trip_and_match_onnxruntime(make, opset, tmp_path):
    graph = make()
    model, m = roundtrip(graph, tmp_path, opset)
    if opset >= 18:  # Pad's axes input: every node comes back as it was
        assert structure(m.graph) == structure(graph)
    ops = {n.op_type for n in model.graph.node}
    assert {"Slice", "Split", "Pad", "Tile", "Gather", "Concat", "Flatten"} <= ops
    splits = [n for n in model.graph.node if n.op_type == "Split"]
    assert len(splits) == 1 and len(splits[0].output) in (2, 3)  # one Split for all the parts


def test_wrap_pad_needs_opset_19(tmp_path):
    g = Graph("wrap")
    g.pad(g.input("x", (3, 4)), pads=[1, 2], axes=[2], mode="wrap", name="p")
    with pytest.raises(OnnxError, match=r"p: pad mode wrap needs opset 19"):
        export(randomized_plan(g), tmp_path / "w.onnx", opset=18)
    roundtrip(g, tmp_path, 19)


def _model(nodes, inputs, outputs, inits=(), opset=13):
    f = TensorProto.FLOAT
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(k, f, s)
                                           for k, s in inputs.items()],
                              [helper.make_tensor_value_info(k, f, None) for k in outputs],
                              list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


@pytest.mark.parametrize("opset", [9, 11, 13, 18])
def test_models_as_other_exporters_write_them(opset):
    """Slice/Pad with attributes (old opsets) or inputs, Split with and without sizes, a Gather
    of a constant table by constant indices, Reshape/Flatten of an unbatched value."""
    old = opset < 10
    if old:
        sl = helper.make_node("Slice", ["x"], ["s"], starts=[1, 1], ends=[4, 5],
                              axes=[1, 2])
    else:
        sl = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"])
    pad = (helper.make_node("Pad", ["s"], ["p"], pads=[0, 0, 1, 0, 0, 1], mode="edge")
           if opset < 11 else helper.make_node("Pad", ["s", "pads"], ["p"], mode="edge"))
    split = (helper.make_node("Split", ["p", "sizes"], ["a", "b"], axis=2) if opset >= 13
             else helper.make_node("Split", ["p"], ["a", "b"], axis=2))
    nodes = [sl, pad, split, helper.make_node("Mul", ["a", "b"], ["y"])]
    inits = [_ints("st", [1, -1]), _ints("en", [4, -100]), _ints("ax", [1, 2]),
             _ints("sp", [1, -2]), _ints("pads", [0, 0, 1, 0, 0, 1]), _ints("sizes", [3, 3])]
    if old:
        inits = []
    model = _model(nodes, {"x": [2, 5, 7]}, ["y"], inits, opset)
    x = np.random.default_rng(0).standard_normal((2, 5, 7)).astype(np.float32)
    (want,) = run_ort(model, {"x": x})
    m = load(model)
    (got,) = run_dagnet(m.graph, m.params, m.state, {"x": x})
    assert got.shape == want.shape and norm_error(got, want) < TOL


def test_gather_of_a_table_by_int64_input_ids_and_unbatched_reshape():
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
             helper.make_node("Gather", ["u", "pick"], ["cols"], axis=1),
             helper.make_node("Reshape", ["cols", "shape"], ["r"]),
             helper.make_node("Flatten", ["u"], ["fl"], axis=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", i64, ["N", 3]),
                     helper.make_tensor_value_info("u", f, [4, 5])],
        [helper.make_tensor_value_info(k, f, None) for k in ("rows", "r", "fl")],
        [helper.make_tensor("table", f, [6, 2], np.arange(12.0).tolist()),
         _ints("pick", [4, 0, 4]), _ints("shape", [0, -1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"ids": np.array([[0, 5, 5], [1, 2, 3]], np.int64),
             "u": np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)}
    want = run_ort(model, feeds)
    m = load(model, unbatched=["u"])
    assert m.graph.node("rows").op == "embedding" and m.graph.node("cols").op == "gather"
    got = run_dagnet(m.graph, m.params, m.state, feeds, ["rows", "r", "fl"])
    for a, b in zip(got, want):
        assert a.shape == b.shape and norm_error(a, b) < TOL


def test_batch_mixing_imports_are_refused_by_name():
    model = _model([helper.make_node("Split", ["x"], ["a", "b"], axis=0)], {"x": ["N", 4]},
                   ["a", "b"])
    with pytest.raises(dagnet.DagnetError, match=r"a \(split.*split: axis 0 is the batch axis N"):
        load(model)


def test_backend_reads_every_input_unbatched_where_the_batch_reading_fails():
    """A Split over axis 0 of a vector: no batch to read, so the backend imports the input with
    its full shape; a Concat of two (N, 2) inputs along axis 1 keeps the batch reading."""
    backend = pytest.importorskip("dagnet.onnx.backend")
    x = np.arange(7, dtype=np.float32)
    a, b = backend.run_node(helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2),
                            [x])
    np.testing.assert_array_equal(a, x[:4])
    np.testing.assert_array_equal(b, x[4:])
    u, v = np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32)
    (c,) = backend.run_node(helper.make_node("Concat", ["u", "v"], ["c"], axis=0), [u, v])
    np.testing.assert_array_equal(c, np.concatenate([u, v]))
    rep = backend.prepare(helper.make_model(helper.make_graph(
        [helper.make_node("Concat", ["u", "v"], ["c"], axis=1)], "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [3, 2]) for k in "uv"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [3, 4])])))
    (c,) = rep.run([u, v])
    assert rep._built[2].input_specs["u"]["batched"]  # read as a batch of 3
    np.testing.assert_array_equal(c, np.concatenate([u, v], axis=1))
