"""ONNX export and import: onnxruntime and torch agree with dagnet's eval-mode forward."""
import contextlib
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import dagnet  # noqa: E402
from dagnet import Graph  # noqa: E402
from dagnet.errors import DagnetError  # noqa: E402
from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.onnx import OnnxError, OnnxModel, UnsupportedOnnxError, export, load  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOL = 1e-5


# -- helpers -------------------------------------------------------------------------------
def run_ort(model, feeds: dict) -> list:
    """onnxruntime's outputs, in the model's output order."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_dagnet(graph, params, state, feeds: dict, outputs=None, dtype="float32") -> list:
    """dagnet's eval-mode outputs (default: graph.outputs), in order."""
    plan = dagnet.compile(graph, mode="eval", params=params, state=state, dtype=dtype)
    names = outputs or graph.outputs
    out = plan.forward(feeds, mode="eval", outputs=names)
    return [out[n] for n in names]


def randomized_plan(graph, seed=0):
    """An eval plan whose params, biases and batchnorm statistics are all non-trivial."""
    plan = dagnet.compile(graph, mode="eval", seed=seed)
    rng = np.random.default_rng(seed)
    for p in plan.params.values():
        p += (0.1 * rng.standard_normal(p.shape)).astype(p.dtype)
    for st in plan.state.values():
        st["running_mean"][...] = 0.1 * rng.standard_normal(st["running_mean"].shape)
        st["running_var"][...] = rng.uniform(0.5, 2.0, st["running_var"].shape)
    return plan


def float_feeds(graph, batch=3, seed=1) -> dict:
    """Random float feeds: a batch for a batched input, one array of its shape otherwise."""
    rng = np.random.default_rng(seed)
    return {n.name: rng.standard_normal((batch,) * n.attrs.get("batched", True)
                                        + tuple(n.attrs["shape"])).astype(np.float32)
            for n in graph.inputs if np.dtype(n.attrs["dtype"]).kind == "f"}


def structure(graph):
    """(non-param nodes without losses and label inputs, {param: shape}, outputs)."""
    nodes = [(n.name, n.op, n.inputs, n.attrs) for n in graph
             if n.op != "param" and n.kind != "loss"
             and not (n.op == "input" and np.dtype(n.attrs["dtype"]).kind != "f")]
    params = {n.name: tuple(n.attrs["shape"]) for n in graph.params}
    return nodes, params


def scores_of(graph):
    """What export makes the model's outputs: the scores each loss reads, else the outputs."""
    return [l.inputs[0] for l in graph.losses] or graph.outputs


def make_model(nodes, inputs, outputs, initializers=None, opset=17, check=True):
    """A model from onnx.helper pieces; inputs/outputs as {name: shape} (None: unknown)."""
    f = TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "helper_model",
        [helper.make_tensor_value_info(k, f, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, f, s) for k, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = helper.find_min_ir_version_for(list(m.opset_import))
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m


def arr(*shape, seed=0, scale=0.5):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def check_against_ort(model, input_shapes=None, batch=3):
    """Import `model`, run both, compare every output; returns the OnnxModel."""
    m = load(model, input_shapes=input_shapes)
    feeds = float_feeds(m.graph, batch)
    want = run_ort(model, feeds)
    got = run_dagnet(m.graph, m.params, m.state, feeds)
    assert [w.shape for w in want] == [g.shape for g in got]
    for w, g in zip(want, got):
        assert norm_error(g, w) < TOL
    return m


# -- graphs with every op ------------------------------------------------------------------
def convs_graph():
    g = Graph("convs")
    x = g.input("x", (3, 10, 10))
    h = g.relu(g.batchnorm(g.conv2d(x, 6, 3, pad=1, name="c1"), name="bn1"), name="r1")
    p = g.max_pool2d(h, 2, name="mp")                                               # (6, 5, 5)
    s = g.add(p, g.leaky_relu(g.conv2d(p, 6, 3, pad=1, name="c2"), 0.1, name="lr"), name="skip")
    a = g.avg_pool2d(s, size=3, stride=2, pad=1, name="ap")                          # (6, 3, 3)
    c = g.elu(g.conv2d(s, 4, (3, 1), stride=2, pad=(1, 0), name="c3"), alpha=0.5, name="e3")
    cat = g.concat(a, c, name="cat")                                                 # (10, 3, 3)
    gp = g.global_avg_pool(g.max_pool2d(cat, 3, stride=2, pad=1, name="mp2"), name="gap")
    t = g.flatten(g.tanh(g.conv2d(cat, 10, 2, stride=2, pad=1, floor=True, name="c4"),
                         name="t4"), name="flat")                                    # (40,)
    cc = g.concat(gp, t, name="cat2")                                                # (50,)
    fc = g.affine(g.add(cc, g.relu(cc, name="r2"), cc, name="sum3"), 5, name="fc")
    g.softmax_cross_entropy(fc, g.input("y", (), dtype="int64"))
    return g


def dense_graph():
    g = Graph("dense")
    x = g.input("x", (4, 5))
    h = g.sigmoid(g.batchnorm(g.affine(x, 16, name="fc1"), eps=1e-3, name="bn1"), name="sg")
    r = g.tanh(g.reshape(g.dropout(h, p=0.3, name="drop"), (4, 4), name="rs"), name="th")
    g.softmax(g.affine(r, 6, name="fc2"), name="probs")
    return g


def two_inputs_graph():
    g = Graph("two_inputs")
    cat = g.concat(g.input("a", (2, 6, 6)), g.input("b", (3, 6, 6)), name="cat")
    p = g.avg_pool2d(g.relu(g.conv2d(cat, 4, 3, pad=1, name="conv"), name="relu"), 2, name="pool")
    g.outputs = [g.global_avg_pool(p, name="gap"), p]
    return g


def layers_graph():
    """The activations and normalisation layers (one graph of their own), round-tripped at
    the opset that has every one of them natively (older opsets: test_layers_at_older_opsets)."""
    g = Graph("layers")
    x = g.input("x", (3, 4, 4))
    h = g.prelu(g.gelu(x, name="gelu"), name="pr")
    h = g.add(g.softplus(h, name="sp"), g.softsign(h, name="ss"), g.selu(h, name="selu"),
              g.mish(h, name="mish"), name="acts")
    h = g.hardswish(g.hardsigmoid(h, alpha=0.2, name="hsig"), name="hsw")
    h = g.add(g.softmax(h, axis=1, name="sm_c"), g.log_softmax(h, axis=-2, name="lsm_h"),
              g.gelu(h, approximate="tanh", name="gelu_t"), name="mix")
    f = g.prelu(g.flatten(h, name="flat"), shared=True, name="pr_shared")
    g.outputs = [g.log_softmax(f, name="lsm"), g.softmax(f, name="sm")]
    return g


layers_graph.opset = 21


def tensor_math_graph():
    """Every tensor-math op: values with and without the batch axis, params and constants."""
    g = Graph("tensor_math")
    x = g.input("x", (3, 4))
    t = g.input("t", (4,), batched=False)
    w = g.param("w", (4, 5), init="xavier", fan_in=4, fan_out=5)
    h = g.add(g.matmul(g.mul(x, t, name="xt"), w, name="h"), np.linspace(-1, 1, 5), name="hb")
    m = g.where(g.greater(h, 0.0, name="pos"), g.exp(g.neg(h, name="n"), name="e"),
                g.clip(h, min=-0.5, name="c"), name="wh")
    r = g.mean(g.pow(g.abs(m, name="a"), 1.5, name="p"), axes=[1], keepdims=True, name="red")
    n2 = g.reciprocal(g.add(g.l2(m, axes=[2], keepdims=True, name="l2"), 1.0, name="l21"), name="rc")
    s = g.sub(g.div(m, g.add(r, 1.0, name="r1"), name="d"), g.sqrt(n2, name="sq"), name="s")
    s = g.maximum(g.sin(s, name="si"), g.cos(s, name="co"), name="mx")
    s = g.minimum(g.erf(s, name="er"), g.sign(s, name="sg"), name="mn")
    cmp = [g.op(op, s, 0.1, name=op) for op in ("equal", "less", "less_equal", "greater_equal")]
    s = g.add(s, *cmp, name="masks")
    e = g.einsum(s, g.constant(np.ones((5, 2))), equation="nij,jk->nik", name="es")
    p = g.prod(g.max(g.min(e, axes=[2], keepdims=True, name="mi"), axes=[1], name="ma"), name="pr")
    tr = g.transpose(g.unsqueeze(e, axes=[1, -1], name="un"), perm=[0, 4, 3, 2, 1], name="tr")
    sqz = g.expand(g.squeeze(tr, axes=[-1], name="sqz"), shape=[1, 4, 1, 1], name="ex")  # (N, 4, 2, 3)
    g.outputs = [s, g.sum(s, axes=[0], name="tot"), g.argmax(s, axis=-1, name="am"), e, p, sqz,
                 g.log(g.add(g.abs(e, name="ae"), 1.0, name="ae1"), name="lg")]
    return g


def windows_graph():
    """Grouped, depthwise, dilated and asymmetrically padded convs, a transposed conv, ceil_mode
    and count_include_pad=False pools, resizes, the block moves, a global max pool."""
    g = Graph("windows")
    x = g.input("x", (4, 12, 12))
    d = g.relu(g.conv2d(x, 4, 3, pad=1, groups=4, name="dw"), name="r1")             # (4, 12, 12)
    gc = g.conv2d(d, 6, 3, stride=2, pad=[0, 1, 2, 1], dilation=2, groups=2, floor=True,
                  name="gdil")                                                        # (6, 5, 5)
    up = g.conv_transpose(gc, 4, 3, stride=2, pad=1, output_padding=1, name="up")    # (4, 10, 10)
    mp = g.max_pool2d(up, 3, stride=2, pad=1, ceil_mode=True, name="mp")            # (4, 6, 6)
    ap = g.avg_pool2d(up, 3, stride=2, pad=1, ceil_mode=True,
                      count_include_pad=False, name="ap")                             # (4, 6, 6)
    dp = g.max_pool2d(up, 2, stride=1, dilation=3, name="dmp")                       # (4, 7, 7)
    s = g.add(mp, ap, name="s")
    bil = g.resize(s, scale=2, mode="bilinear", name="bil")                          # (4, 12, 12)
    d2s = g.depth_to_space(g.space_to_depth(bil, 2, name="s2d"), 2, mode="CRD", name="d2s")
    near = g.resize(dp, scale=(1.5, 2), coordinates="asymmetric", nearest_mode="floor",
                    name="near")                                                      # (4, 10, 14)
    g.outputs = [g.global_max_pool(d2s, name="gmp"), near]
    return g


def sequence_graph():
    g = Graph("sequence")
    x = g.input("x", (3, 20))
    c = g.conv1d(x, 6, 3, pad=[1, 2], dilation=2, groups=3, name="c1")              # (6, 19)
    p = g.max_pool1d(c, 3, stride=2, pad=1, ceil_mode=True, name="mp1")              # (6, 10)
    a = g.avg_pool1d(c, 3, stride=2, pad=1, ceil_mode=True, count_include_pad=False,
                     name="ap1")                                                      # (6, 10)
    g.add(p, a, name="sum")
    return g


GRAPHS = {"convs": convs_graph, "dense": dense_graph, "two_inputs": two_inputs_graph,
          "tensor_math": tensor_math_graph, "windows": windows_graph,
          "sequence": sequence_graph, "layers": layers_graph}


def roundtrip(graph, tmp_path, opset=17):
    """Export a randomized plan of graph, check it, compare onnxruntime, load it back and
    compare the structure and the numbers; returns the model."""
    plan = randomized_plan(graph)
    path = tmp_path / f"{graph.name}.onnx"
    model = export(plan, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    feeds = float_feeds(graph)
    outputs = scores_of(graph)
    want = run_dagnet(graph, plan.params, plan.state, feeds, outputs)
    for got, w in zip(run_ort(model, feeds), want):
        assert norm_error(got.astype(np.float64), w.astype(np.float64)) < TOL
    m = load(path)
    assert structure(m.graph) == structure(graph)
    assert set(m.params) == set(plan.params)
    for k, v in m.params.items():
        np.testing.assert_array_equal(v, plan.params[k])
    back = run_dagnet(m.graph, m.params, m.state, feeds, outputs)
    for got, w in zip(back, want):
        assert norm_error(got.astype(np.float64), w.astype(np.float64)) < TOL
    return model


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_op_round_trips_and_matches_onnxruntime(name, tmp_path):
    roundtrip(GRAPHS[name](), tmp_path, opset=getattr(GRAPHS[name], "opset", 17))


def test_flatten_feeding_affine_is_dropped_on_import(tmp_path):
    """affine flattens each example itself, so load() skips a Flatten that only feeds Gemms."""
    g = Graph("flat_fc")
    g.affine(g.flatten(g.relu(g.input("x", (2, 3, 3)), name="r"), name="flat"), 4, name="fc")
    plan = randomized_plan(g)
    export(plan, tmp_path / "m.onnx")
    m = load(tmp_path / "m.onnx")
    assert "flat" not in m.graph and m.graph.node("fc").inputs[0] == "r"
    feeds = float_feeds(g)
    (got,), (want,) = run_dagnet(m.graph, m.params, m.state, feeds), run_dagnet(g, plan.params,
                                                                                plan.state, feeds)
    assert norm_error(got, want) < TOL


def test_every_op_is_covered_by_the_test_graphs():
    from dagnet.onnx.mapping import EXPORTS

    from tests.test_onnx_layers import LAYER_GRAPHS  # the normalisations' and embedding's
    from tests.test_onnx_shapes import SHAPE_GRAPHS  # slice, split, pad, tile, gather

    used = {n.op for f in (*GRAPHS.values(), *LAYER_GRAPHS, *SHAPE_GRAPHS) for n in f()}
    assert set(EXPORTS) <= used


def zoo():
    models = pytest.importorskip("dagnet.models")
    return models.MODELS


@pytest.mark.parametrize("name", ["two_layer_net", "fc_net", "three_layer_convnet", "lenet",
                                  "lenet_bn", "convnet_deep", "resnet_small"])
def test_zoo_model_matches_onnxruntime_and_round_trips(name, tmp_path):
    models = zoo()
    if name not in models:
        pytest.skip(f"{name} is not in the zoo")
    roundtrip(models[name](), tmp_path)


def test_every_zoo_model_is_tested():
    from tests.models.classic_sizes import SMALL  # tests/models/test_classics_onnx.py

    from tests.models.test_attention_onnx import NAMES as ATTENTION  # at opset 20: Gelu

    assert set(zoo()) <= {"two_layer_net", "fc_net", "three_layer_convnet", "lenet", "lenet_bn",
                          "convnet_deep", "resnet_small", *SMALL, *ATTENTION}


# -- export details ------------------------------------------------------------------------
def test_loss_and_labels_are_not_exported_and_batch_is_dynamic(tmp_path):
    g = convs_graph()
    model = export(randomized_plan(g), tmp_path / "m.onnx")
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["fc"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert "softmax_cross_entropy" not in str(model)
    for batch in (1, 7):
        (out,) = run_ort(model, float_feeds(g, batch))
        assert out.shape == (batch, 5)


def test_export_uses_standard_ops(tmp_path):
    model = export(randomized_plan(convs_graph()), tmp_path / "m.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"Conv", "BatchNormalization", "Relu", "MaxPool", "LeakyRelu", "Add", "Sum",
                   "AveragePool", "Elu", "Concat", "GlobalAveragePool", "Flatten", "Tanh", "Gemm"}
    avg = next(n for n in model.graph.node if n.op_type == "AveragePool")
    assert helper.get_attribute_value(next(a for a in avg.attribute
                                           if a.name == "count_include_pad")) == 1
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert helper.get_attribute_value(next(a for a in gemm.attribute if a.name == "transB")) == 0
    inits = {i.name for i in model.graph.initializer}
    assert {"bn1.running_mean", "bn1.running_var", "c1.w", "c1.b", "fc.w"} <= inits


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fused_graph_exports_as_its_original_ops(mode, tmp_path):
    g = convs_graph()
    plan = dagnet.compile(g, mode=mode)
    assert any(s.fused for s in plan.steps)

    def nodes(model):
        return sorted((n.op_type, list(n.input), list(n.output), str(n.attribute))
                      for n in model.graph.node)

    declared = export(plan, tmp_path / "a.onnx")
    compiled = export(plan.graph, tmp_path / "b.onnx", params=plan.params, state=plan.state)
    assert nodes(compiled) == nodes(declared)


@pytest.mark.parametrize("opset", [13, 17, onnx.defs.onnx_opset_version()])
def test_export_opsets(opset, tmp_path):
    model = roundtrip(dense_graph(), tmp_path, opset=opset)
    assert model.opset_import[0].version == opset


def test_float64_plan_exports_doubles(tmp_path):
    g = dense_graph()
    plan = dagnet.compile(g, mode="eval", dtype="float64")
    model = export(plan, tmp_path / "m.onnx")
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    feeds = {k: v.astype(np.float64) for k, v in float_feeds(g).items()}
    (got,) = run_ort(model, feeds)
    (want,) = run_dagnet(g, plan.params, plan.state, feeds, dtype="float64")
    assert norm_error(got, want) < 1e-10
    m = load(tmp_path / "m.onnx")
    assert m.params["fc1.w"].dtype == np.float64
    (back,) = run_dagnet(m.graph, m.params, m.state, feeds, dtype="float64")
    assert norm_error(back, want) < 1e-10


def test_export_errors(tmp_path):
    g, path = dense_graph(), tmp_path / "m.onnx"
    with pytest.raises(OnnxError, match="export needs the params"):
        export(g, path)
    with pytest.raises(OnnxError, match="'fc1.w' is missing"):
        export(g, path, params={})
    with pytest.raises(OnnxError, match="opset must be in"):
        export(randomized_plan(g), path, opset=11)
    with pytest.raises(OnnxError, match="takes a Graph or an ExecutionPlan"):
        export("model.yaml", path)


# -- optional dependency -------------------------------------------------------------------
def test_importing_dagnet_does_not_import_onnx():
    code = "import sys, dagnet, dagnet.onnx; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_onnx_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(OnnxError, match=r"pip install onnx onnxruntime.*-e '\.\[onnx\]'"):
        load("model.onnx")
    with pytest.raises(OnnxError, match=r"pip install onnx onnxruntime.*-e '\.\[onnx\]'"):
        export(dense_graph(), "model.onnx")


# -- import of models built with onnx.helper -----------------------------------------------
def test_import_dense_ops():
    """MatMul + Add (bias first), Gemm with transB/alpha/beta and without C, a 2-D
    BatchNormalization, Dropout, Identity, a Constant shape for Reshape, and activations."""
    mk = helper.make_node
    nodes = [
        mk("MatMul", ["x", "W1"], ["mm1"]),
        mk("Add", ["b1", "mm1"], ["a1"]),
        mk("LeakyRelu", ["a1"], ["l1"], alpha=0.2),
        mk("Dropout", ["l1", "ratio"], ["d1"]),
        mk("Gemm", ["d1", "W2", "C2"], ["g2"], transB=1, alpha=0.5, beta=2.0),
        mk("BatchNormalization", ["g2", "s", "b", "m", "v"], ["bn2"], epsilon=1e-3),
        mk("Elu", ["bn2"], ["e2"], alpha=0.7),
        mk("Identity", ["e2"], ["i2"]),
        mk("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, 2, 5]))),
        mk("Reshape", ["i2", "shape"], ["r2"]),
        mk("Sigmoid", ["r2"], ["s2"]),
        mk("Flatten", ["s2"], ["f2"]),
        mk("Gemm", ["f2", "W3"], ["g3"]),
        mk("Tanh", ["g3"], ["t3"]),
        mk("MatMul", ["t3", "W4"], ["m4"]),
        mk("Softmax", ["m4"], ["y"]),
    ]
    inits = {"W1": arr(12, 16), "b1": arr(16, seed=1), "ratio": np.float32(0.25),
             "W2": arr(10, 16, seed=2), "C2": arr(10, seed=3), "s": arr(10, seed=4) + 1,
             "b": arr(10, seed=5), "m": arr(10, seed=6), "v": np.abs(arr(10, seed=7)) + 0.5,
             "W3": arr(10, 4, seed=8), "W4": arr(4, 3, seed=9)}
    model = make_model(nodes, {"x": ["N", 12]}, {"y": ["N", 3]}, inits)
    m = check_against_ort(model)
    ops = [n.op for n in m.graph if n.op not in ("input", "param")]
    assert ops == ["affine", "leaky_relu", "dropout", "affine", "batchnorm", "elu", "reshape",
                   "sigmoid", "affine", "tanh", "affine", "softmax"]
    assert m.graph.node("d1").attrs == {"p": 0.25}
    assert m.graph.node("a1").inputs == ["x", "W1", "b1"]  # MatMul + Add became one affine
    np.testing.assert_allclose(m.params["W2"], 0.5 * inits["W2"].T)
    assert set(m.state) == {"bn2"}


def test_import_conv_ops():
    """Conv without bias and with SAME padding, MaxPool with an exact ceil_mode, AveragePool
    counting padding, a Conv whose stride does not tile, Sum, Concat, GlobalAveragePool feeding
    an Add and a graph output (its (N, C, 1, 1) shape kept), ReduceMean over (H, W)."""
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "Wc1"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2]),
        mk("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn1"]),
        mk("Relu", ["bn1"], ["r1"]),
        mk("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        mk("AveragePool", ["r1"], ["a1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
           count_include_pad=1),
        mk("Conv", ["a1", "Wc2", "Bc2"], ["c2"], strides=[2, 2]),
        mk("Sum", ["p1", "c2", "c2"], ["s1"]),
        mk("Concat", ["s1", "p1"], ["cat"], axis=1),
        mk("GlobalAveragePool", ["cat"], ["gap"]),
        mk("Add", ["gap", "gap"], ["g2"]),
        mk("ReduceMean", ["g2", "axes"], ["rm"], keepdims=0),
        mk("Add", ["rm", "rm"], ["y"]),
    ]
    inits = {"Wc1": arr(4, 3, 3, 3), "s": arr(4, seed=1) + 1, "b": arr(4, seed=2),
             "m": arr(4, seed=3), "v": np.abs(arr(4, seed=4)) + 0.5, "Wc2": arr(4, 4, 2, 2, seed=5),
             "Bc2": arr(4, seed=6), "axes": np.array([2, 3])}
    model = make_model(nodes, {"x": ["N", 3, 9, 9]}, {"y": ["N", 8], "gap": ["N", 8, 1, 1]},
                       inits, opset=18)
    m = check_against_ort(model)
    g = m.graph
    assert g.node("c1").attrs == {"stride": 2, "pad": 1}
    assert g.node("c2").attrs == {"stride": 2, "pad": 0, "floor": True}
    assert g.node("gap").op == "global_avg_pool" and g.node("rm").op == "global_avg_pool"
    assert np.all(m.params["c1.b"] == 0)  # a Conv without bias gets a zero one


def test_shared_initializer_is_one_param():
    mk = helper.make_node
    nodes = [mk("Gemm", ["x", "W"], ["h"]), mk("Relu", ["h"], ["r"]), mk("Gemm", ["r", "W"], ["y"])]
    m = check_against_ort(make_model(nodes, {"x": ["N", 6]}, {"y": ["N", 6]}, {"W": arr(6, 6)}))
    assert m.graph.node("h").inputs[1] == m.graph.node("y").inputs[1] == "W"
    assert [p.name for p in m.graph.params].count("W") == 1


def test_load_returns_an_unpackable_model(tmp_path):
    path = tmp_path / "m.onnx"
    export(randomized_plan(dense_graph()), path)
    m = load(path)
    assert isinstance(m, OnnxModel)
    graph, params, state = m
    assert graph is m.graph and params is m.params and state is m.state
    assert set(state) == {"bn1"}


def test_unsupported_ops_are_listed_in_one_error():
    mk = helper.make_node
    nodes = [
        mk("CumSum", ["x", "axis"], ["padded"], name="pad0"),
        mk("Conv", ["padded", "W"], ["c"], name="conv"),
        mk("BitShift", ["c", "c"], ["sq"], name="shift", direction="LEFT"),
        mk("MyOp", ["sq"], ["z"], domain="com.example", name="custom"),
        mk("Det", ["z"], ["y"]),  # unnamed: the error names its output
    ]
    inits = {"axis": np.array(1), "W": arr(2, 1, 3, 3)}
    model = make_model(nodes, {"x": ["N", 1, 5, 5]}, {"y": None}, inits, check=False)
    with pytest.raises(UnsupportedOnnxError) as e:
        load(model)
    msg = str(e.value)
    for item in ("CumSum (node 'pad0')", "BitShift (node 'shift')", "com.example.MyOp (node 'custom')",
                 "Det (node 'y')"):
        assert item in msg
    assert "Conv (node" not in msg
    assert isinstance(e.value, DagnetError)


def _conv(**attrs):
    return helper.make_node("Conv", ["x", "W"], ["y"], name="conv7", **attrs)


@pytest.mark.parametrize("node, inits, fragment", [
    (_conv(), {"W": arr(2, 2, 3, 3, 3)}, r"Conv node 'conv7': weight shape \(2, 2, 3, 3, 3\): "
     r"dagnet imports 1-D and 2-D"),
    (_conv(dilations=[2, 2, 2]), {}, r"dilations \[2, 2, 2\] has 3 values for a 2-D window"),
    (helper.make_node("ConvTranspose", ["x", "W"], ["y"]), {"W": arr(2, 2, 3)},
     "2-D ConvTranspose only"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[2, 2, 2, 2]), {},
     r"pad \(2, 2\) must be at most half the window"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2]), {},
     r"kernel_shape \[2, 2, 2\]: dagnet imports 1-D and 2-D windows"),
    (helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic"),
     {"sc": np.array([1, 1, 2, 2], np.float32)}, "mode 'cubic'"),
    (helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear", antialias=1),
     {"sc": np.array([1, 1, 0.5, 0.5], np.float32)}, "antialias=1 when shrinking"),
    (helper.make_node("Resize", ["x", "", "sc"], ["y"]),
     {"sc": np.array([1, 2, 2, 2], np.float32)}, "resize the batch or the channels"),
    (helper.make_node("Gemm", ["x", "W"], ["y"], transA=1), {"W": arr(2, 4)}, "transA=1"),
    (helper.make_node("Reshape", ["x", "shape"], ["y"]), {"shape": np.array([5, -1])},
     "must keep the batch"),
    (helper.make_node("Flatten", ["x"], ["y"], axis=2), {}, "axis=2"),
    (helper.make_node("Concat", ["x", "W"], ["y"], axis=1), {}, "'W' is a constant"),
    (helper.make_node("Relu", ["W"], ["y"]), {}, "graph output 'y' is a constant: .*folded"),
    (helper.make_node("Identity", ["W"], ["y"]), {}, "graph output 'y' is a constant: .*folded"),
    (helper.make_node("ArgMax", ["x"], ["y"], select_last_index=1), {}, "select_last_index=1"),
    (helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32), {}, "Cast to type 6"),
    (helper.make_node("LeakyRelu", ["x"], ["y"], alpha=-0.1), {},
     r"LeakyRelu node 'y'.*alpha must be a positive number, got -0.1"),
    (helper.make_node("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], training_mode=1),
     {"s": np.ones(2, np.float32)}, "training_mode=1"),
])
def test_import_errors_name_the_node_and_the_fix(node, inits, fragment):
    inits = {"W": arr(2, 2, 3, 3), **inits}
    shape = ["N", 2, 5, 5] if node.op_type != "Gemm" else ["N", 2]
    model = make_model([node], {"x": shape}, {"y": None}, inits, check=False)
    with pytest.raises(OnnxError, match=fragment):
        load(model)


def test_maxpool_indices_cannot_be_used():
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Identity", ["idx"], ["z"])]
    model = make_model(nodes, {"x": ["N", 1, 4, 4]}, {"y": None, "z": None}, check=False)
    with pytest.raises(OnnxError, match="output 'idx' is used"):
        load(model)


def test_symbolic_input_dims_need_input_shapes():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3, "H", "W"]},
                       {"y": ["N", 3, "H", "W"]})
    with pytest.raises(OnnxError, match=r"input_shapes=\{'x'"):
        load(model)
    m = check_against_ort(model, input_shapes={"x": (3, 4, 5)})
    assert m.graph.node("x").attrs["shape"] == [3, 4, 5]


# -- tensor math: models made by hand, unbatched inputs --------------------------------------
def _against_ort_unbatched(nodes, inputs, outputs, inits=None, opset=17, int_outputs=()):
    """Load a model of fixed-shape inputs with unbatched=True and compare every output."""
    model = make_model(nodes, inputs, outputs, inits, opset=opset, check=False)
    for o in model.graph.output:
        if o.name in int_outputs:
            o.type.tensor_type.elem_type = TensorProto.INT64
    m = load(model, unbatched=True)
    assert all(not m.graph.batched(n) for n in m.graph.inputs)
    rng = np.random.default_rng(3)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in inputs.items()}
    want = run_ort(model, feeds)
    got = run_dagnet(m.graph, m.params, m.state, feeds)
    for w, g in zip(want, got):
        assert w.shape == g.shape and norm_error(g.astype(np.float64), w.astype(np.float64)) < TOL
    return m


@pytest.mark.parametrize("attrs, c", [
    ({"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, True),
    ({"transA": 1}, False), ({"transB": 1, "beta": 0.5}, True)])
def test_gemm_flags_import(attrs, c):
    a_shape = (4, 3) if attrs.get("transA") else (3, 4)
    b_shape = (5, 4) if attrs.get("transB") else (4, 5)
    inits = {"B": arr(*b_shape, seed=1), **({"C": arr(5, seed=2)} if c else {})}
    node = helper.make_node("Gemm", ["A", "B", "C"] if c else ["A", "B"], ["y"], **attrs)
    m = _against_ort_unbatched([node], {"A": list(a_shape)}, {"y": [3, 5]}, inits)
    assert "matmul" in {n.op for n in m.graph}


def test_matmul_of_two_values_and_broadcasting_ops_import():
    mk = helper.make_node
    nodes = [mk("MatMul", ["a", "b"], ["ab"]), mk("Mul", ["ab", "s"], ["abs_"]),
             mk("Max", ["abs_", "ab", "z"], ["mx"]), mk("Clip", ["mx", "lo"], ["cl"]),
             mk("ReduceSum", ["cl", "ax"], ["rs"], keepdims=0),
             mk("ReduceMax", ["cl"], ["all"], keepdims=0),
             mk("ReduceL2", ["cl"], ["same"], noop_with_empty_axes=1),
             mk("Less", ["cl", "half"], ["lt"]), mk("Where", ["lt", "cl", "z"], ["wh"]),
             mk("Cast", ["wh"], ["wb"], to=TensorProto.BOOL), mk("Cast", ["wb"], ["wf"], to=TensorProto.FLOAT),
             mk("Einsum", ["a", "b"], ["ein"], equation="ij, jk -> ik"),
             mk("ArgMax", ["wh"], ["am"], axis=1, keepdims=0)]
    inits = {"s": arr(5, seed=4), "z": np.zeros(1, np.float32), "lo": np.float32(-0.2),
             "ax": np.array([1]), "half": np.float32(0.5)}
    m = _against_ort_unbatched(nodes, {"a": [3, 4], "b": [4, 5]},
                               {"rs": [3], "all": [], "same": [3, 5], "wf": [3, 5], "ein": [3, 5],
                                "am": [3]}, inits, opset=18, int_outputs=("am",))
    assert m.graph.node("s").op == "constant" and not m.params  # data initializers: constants


def test_unbatched_inputs_round_trip_through_the_model_metadata(tmp_path):
    g = Graph("u")
    x = g.input("x", (3,))
    t = g.input("t", (2, 3), batched=False)
    g.outputs = [g.add(x, g.sum(t, axes=[0], name="st"), name="y")]
    plan = dagnet.compile(g, mode="eval")
    export(plan, tmp_path / "u.onnx")
    m = load(tmp_path / "u.onnx")
    assert not m.graph.batched("t") and m.graph.batched("x") and m.graph.node("t").attrs["shape"] == [2, 3]
    assert [d.dim_param or d.dim_value for d in onnx.load(str(tmp_path / "u.onnx")).graph.input[1]
            .type.tensor_type.shape.dim] == [2, 3]


# -- torch.onnx.export ---------------------------------------------------------------------
def torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:  # the 1x1 downsampling projection
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            h = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu(h + (x if self.down is None else self.down(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU())
            self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    def lenet():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))

    return torch, {"lenet": (lenet, (1, 28, 28)), "resnet": (ResNet, (3, 16, 16))}


# torchscript folds BatchNorm into the convs in eval mode; "torchscript_bn" keeps
# BatchNormalization nodes; "dynamo" is torch's default exporter (needs onnxscript).
TORCH_EXPORTERS = ("torchscript", "torchscript_bn", "dynamo")


def torch_export(name, exporter, path):
    """(torch model in eval mode with random batchnorm statistics, input shape) after writing
    it to path with the given exporter."""
    torch, models = torch_models()
    make, shape = models[name]
    torch.manual_seed(0)
    model = make()
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, *shape)
    names = dict(input_names=["x"], output_names=["scores"])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("N")},), **names)
        else:
            keep_bn = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
            torch.onnx.export(model, (x,), str(path), dynamo=False,
                              dynamic_axes={"x": {0: "N"}, "scores": {0: "N"}},
                              **(keep_bn if exporter == "torchscript_bn" else {}), **names)
    return torch, model, shape


@pytest.mark.parametrize("exporter", TORCH_EXPORTERS)
@pytest.mark.parametrize("name", ["lenet", "resnet"])
def test_torch_export_imports_with_equal_forward(name, exporter, tmp_path):
    torch, model, shape = torch_export(name, exporter, tmp_path / "m.onnx")
    m = load(tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, *shape)).astype(np.float32)
    (got,) = run_dagnet(m.graph, m.params, m.state, {"x": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert norm_error(got, want) < TOL
    ops = {n.op for n in m.graph}
    if name == "resnet":
        assert {"add", "global_avg_pool"} <= ops
        assert ("batchnorm" in ops) == (exporter == "torchscript_bn")


@pytest.mark.parametrize("exporter", ["torchscript", "torchscript_bn"])
def test_imported_resnet_compiles_with_fusion_and_fine_tunes(exporter, tmp_path):
    torch_export("resnet", exporter, tmp_path / "m.onnx")
    graph, params, state = load(tmp_path / "m.onnx")
    graph.softmax_cross_entropy("scores", graph.input("y", (), dtype="int64"))
    plan = dagnet.compile(graph, mode="train", params=params, state=state, check=True)
    patterns = {s.pattern for s in plan.steps if s.fused}
    assert ("conv2d+batchnorm+relu" if exporter == "torchscript_bn" else "conv2d+relu") in patterns
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    losses = []
    for _ in range(10):
        loss, grads = plan.loss_and_grads(x, y)
        losses.append(loss)
        for k, g in grads.items():
            plan.params[k] -= 0.1 * g
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.05


def test_imported_lenet_renders(tmp_path):
    viz = pytest.importorskip("dagnet.viz")
    torch_export("lenet", "torchscript", tmp_path / "m.onnx")
    dot = viz.render_graph(load(tmp_path / "m.onnx").graph)
    assert "conv2d" in dot.source


# -- activations and normalisation layers from torch ------------------------------------------
def torch_layers_model(torch):
    """A torch model using the activations and normalisation layers dagnet imports."""
    nn = torch.nn
    # torch writes softsign, softplus (dynamo: its threshold) and mish (torchscript) as
    # element-wise decompositions (Abs, Div, Where, ...): those import with the tensor-math ops
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(4), nn.GELU(), nn.SELU(), nn.Hardsigmoid(),
                          nn.Hardswish(), nn.GELU(approximate="tanh"), nn.Softmax(dim=1),
                          nn.Flatten(), nn.Linear(64, 5), nn.PReLU(), nn.LogSoftmax(dim=1))
    with torch.no_grad():
        model[1].weight.uniform_(-0.5, 0.8)
    return model, (3, 6, 6)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_torch_exported_layers_import_with_equal_forward(exporter, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model, shape = torch_layers_model(torch)
    model.eval()
    path = tmp_path / "m.onnx"
    x = torch.randn(2, *shape)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"],
                              output_names=["scores"], opset_version=20,
                              dynamic_shapes=({0: torch.export.Dim("N")},))
        else:  # opset 20: Gelu is one node
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                              output_names=["scores"], opset_version=20,
                              dynamic_axes={"x": {0: "N"}})
    m = load(path)
    xs = np.random.default_rng(0).standard_normal((5, *shape)).astype(np.float32)
    (got,) = run_dagnet(m.graph, m.params, m.state, {"x": xs})
    with torch.no_grad():
        want = model(torch.from_numpy(xs)).numpy()
    assert norm_error(got, want) < TOL
    ops = [n.op for n in m.graph]
    assert ops.count("prelu") == 2 and ops.count("gelu") == 2
    assert {"selu", "hardsigmoid", "hardswish", "softmax", "log_softmax"} <= set(ops)


def test_prelu_slope_varying_over_the_batch_is_refused():
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    model = make_model([node], {"x": ["N", 3]}, {"y": ["N", 3]},
                       {"s": arr(2, 3)})
    with pytest.raises(OnnxError, match="PRelu node 'y'.*slope of shape \\(2, 3\\).*batch"):
        load(model)


@pytest.mark.parametrize("opset", [13, 14, 17, 18, 20])
def test_layers_at_older_opsets_decompose_and_match_onnxruntime(opset, tmp_path):
    """Below the opset that added an op (Gelu 20, Mish 18, HardSwish 14, ...) export writes
    its decomposition; onnxruntime agrees with dagnet either way."""
    g = layers_graph()
    plan = randomized_plan(g)
    model = export(plan, tmp_path / "m.onnx", opset=opset)
    ops = {n.op_type for n in model.graph.node}
    assert ("Gelu" in ops) == (opset >= 20) and ("Mish" in ops) == (opset >= 18)
    assert ("HardSwish" in ops) == (opset >= 14)
    feeds = float_feeds(g)
    for got, want in zip(run_ort(model, feeds), run_dagnet(g, plan.params, plan.state, feeds)):
        assert norm_error(got, want) < TOL


def test_hardsigmoid_without_attrs_imports_with_onnx_defaults():
    """ONNX's HardSigmoid defaults to alpha 0.2 (dagnet's and PyTorch's: 1/6)."""
    model = make_model([helper.make_node("HardSigmoid", ["x"], ["y"])], {"x": ["N", 5]},
                       {"y": ["N", 5]})
    m = check_against_ort(model)
    assert m.graph.node("y").attrs == {"alpha": 0.2, "beta": 0.5}


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis,shape", [(11, 1, ["N", 3, 4, 5]), (11, None, ["N", 3, 4]),
                                              (11, 3, ["N", 3, 4, 5]), (13, 2, ["N", 3, 4, 5]),
                                              (13, None, ["N", 3, 4])])
def test_softmax_of_every_opset_imports(op_type, opset, axis, shape):
    """Before opset 13 Softmax normalised everything from `axis` on (a reshape around the op);
    from 13 one axis."""
    attrs = {} if axis is None else {"axis": axis}
    model = make_model([helper.make_node(op_type, ["x"], ["y"], **attrs)], {"x": shape},
                       {"y": shape}, opset=opset)
    m = check_against_ort(model)
    last = (axis or 1) == len(shape) - 1
    assert [n.op for n in m.graph].count("reshape") == (2 if opset < 13 and not last else 0)


def test_softmax_over_the_batch_is_refused():
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=0)], {"x": ["N", 3]},
                       {"y": ["N", 3]})
    with pytest.raises(OnnxError, match="Softmax node 'y': axis 0 of a rank-2 value is the batch"):
        load(model)
