"""Specs: the sequential and general forms, the lossless round trip through YAML and JSON, and
every SpecError naming its key path."""
import json
import pathlib

import pytest
import yaml

import dagnet
from dagnet import Graph
from dagnet.errors import AttrError, ShapeError, SpecError
from dagnet.models import MODELS
from dagnet.spec import graph_from_spec, graph_to_spec, load_spec, save_spec

LENET_SPEC = """
name: lenet
input: {shape: [1, 28, 28]}
layers:
  - {type: conv, num_filters: 20, filter_size: 5, stride: 1, pad: 0}
  - {type: relu}
  - {type: pool, size: 2, stride: 2}
  - {type: conv, num_filters: 50, filter_size: 5, stride: 1, pad: 0}
  - {type: relu}
  - {type: pool, size: 2, stride: 2}
  - {type: affine, hidden: 500}
  - {type: relu}
  - {type: affine, hidden: 10}
loss: softmax
"""


def lenet_by_hand():
    g = Graph("lenet")
    x = g.input("x", (1, 28, 28))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, 20, 5, name="conv1"), name="relu1"), 2, name="pool1")
    h = g.max_pool2d(g.relu(g.conv2d(h, 50, 5, name="conv2"), name="relu2"), 2, name="pool2")
    h = g.relu(g.affine(h, 500, name="fc1"), name="relu3")
    g.softmax_cross_entropy(g.affine(h, 10, name="scores"), y)
    return g


def seq(*layers, **top):
    """A sequential spec dict on a (1, 8, 8) input."""
    return {"name": "t", "input": {"shape": [1, 8, 8]}, "layers": list(layers), **top}


def general(*nodes, **top):
    """A general-form spec dict whose first node is the input x (2, 8, 8)."""
    return {"name": "t", "nodes": [{"name": "x", "op": "input", "shape": [2, 8, 8]}, *nodes],
            **top}


def odd_graph():
    """Declared outputs, a shared weight, add(x, x), tuple attrs and a node listed before
    its input: everything the round trip must keep."""
    g = Graph("odd")
    x = g.input("x", (2, 6, 6))
    w = g.param("shared.w", (72, 4), init="xavier", fan_in=72, fan_out=4)
    b = g.param("shared.b", (4,), init="constant", value=0.5, decay=False)
    a = g.affine(x, 4, name="a", w=w, b=b)
    g.affine(x, 4, name="b", w=w, b=b)
    g.add_node("max_pool2d", ["x"], {"size": (2, 2), "stride": (2, 1), "pad": 0}, name="pool")
    g.add_node("tanh", ["later"], name="early")
    g.add(a, a, name="later")
    g.outputs = ["b", "early", "pool"]
    return g


# -- round trip ------------------------------------------------------------------------------
ROUND_TRIP_GRAPHS = {**{name: fn for name, fn in MODELS.items()}, "odd": odd_graph}


@pytest.mark.parametrize("name", list(ROUND_TRIP_GRAPHS))
def test_round_trip_through_yaml_and_json_text(name):
    g = ROUND_TRIP_GRAPHS[name]()
    spec = graph_to_spec(g)
    assert graph_from_spec(spec) == g
    assert graph_from_spec(yaml.safe_dump(spec, sort_keys=False)) == g
    assert graph_from_spec(json.dumps(spec)) == g


@pytest.mark.parametrize("ext", [".yaml", ".yml", ".json"])
@pytest.mark.parametrize("name", ["lenet_bn", "resnet_small", "odd"])
def test_round_trip_through_files(tmp_path, name, ext):
    g = ROUND_TRIP_GRAPHS[name]()
    path = tmp_path / f"model{ext}"
    save_spec(g, path)
    assert load_spec(path) == g
    assert graph_from_spec(str(path)) == g
    assert Graph.from_spec(path) == g


def test_saved_yaml_has_one_node_per_line(tmp_path):
    g = dagnet.models.lenet()
    save_spec(g, tmp_path / "lenet.yaml")
    lines = (tmp_path / "lenet.yaml").read_text().splitlines()
    assert lines[:2] == ["name: lenet", "nodes:"]
    assert lines[2:] and all(line.startswith("- {name: ") for line in lines[2:])
    assert len(lines) == 2 + len(g)


def test_round_trip_of_a_fused_graph():
    plan = dagnet.compile(dagnet.models.lenet_bn())
    fused = plan.graph
    assert any("+" in n.op for n in fused)
    assert graph_from_spec(yaml.safe_dump(graph_to_spec(fused))) == fused


def test_graph_methods_delegate_to_the_spec_module():
    g = lenet_by_hand()
    assert g.to_spec() == graph_to_spec(g)
    assert Graph.from_spec(g.to_spec()) == g


def test_to_spec_is_plain_data_detached_from_the_graph():
    g = odd_graph()
    spec = g.to_spec()
    pool = next(n for n in spec["nodes"] if n["name"] == "pool")
    pool["size"][0] = 99
    assert g.node("pool").attrs["size"] == [2, 2]
    assert "outputs" not in lenet_by_hand().to_spec()  # the default outputs stay default


# -- sequential form -------------------------------------------------------------------------
def test_sequential_lenet_equals_the_builder_graph():
    g = graph_from_spec(LENET_SPEC)
    assert g == lenet_by_hand()
    assert g.shape_of("pool2") == (50, 4, 4)


def test_sequential_aliases_and_names():
    g = graph_from_spec(seq(
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1, "init": "xavier"},
        {"type": "spatial_batchnorm", "eps": 1.0e-3},
        {"type": "leaky_relu", "alpha": 0.1},
        {"type": "max_pool2d", "pool_size": 2},
        {"type": "conv", "num_filters": 4, "filter_size": 3, "pad": 1, "name": "second"},
        {"type": "avg_pool", "size": 2},
        {"type": "flatten"},
        {"type": "fc", "units": 6, "weight_scale": 0.01, "init": "gaussian"},
        {"type": "bn"},
        {"type": "relu"},
        {"type": "dropout", "p": 0.25},
        {"type": "dense", "num_outputs": 3},
        loss="svm", init="gaussian", weight_scale=0.001))
    ops = {n.name: n.op for n in g if n.op not in ("input", "param")}
    assert ops == {"conv1": "conv2d", "bn1": "batchnorm", "leaky_relu1": "leaky_relu",
                   "pool1": "max_pool2d", "second": "conv2d", "avgpool1": "avg_pool2d",
                   "flatten1": "flatten", "fc1": "affine", "bn2": "batchnorm", "relu1": "relu",
                   "drop1": "dropout", "scores": "affine", "loss": "svm_loss"}
    assert g.node("conv1.w").attrs["init"] == "xavier"  # per layer beats the top level
    assert g.node("second.w").attrs == {"shape": [4, 4, 3, 3], "init": "gaussian",
                                        "scale": 0.001, "decay": True}
    assert g.node("fc1.w").attrs["scale"] == 0.01
    assert g.node("leaky_relu1").attrs == {"alpha": 0.1}
    assert g.node("bn1").attrs["eps"] == 1.0e-3
    assert g.shape_of("flatten1") == (16,)
    assert g.shape_of("scores") == (3,)


def test_sequential_without_loss_has_no_labels():
    g = graph_from_spec(seq({"type": "fc", "hidden": 5}, {"type": "softmax"}, loss="none"))
    assert [n.name for n in g.inputs] == ["x"]
    assert g.outputs == ["softmax1"]
    assert graph_from_spec(seq({"type": "fc", "hidden": 5}, loss=None)).outputs == ["fc1"]


def test_sequential_default_loss_is_softmax():
    g = graph_from_spec(seq({"type": "affine", "hidden": 3}))
    assert g.node("loss").op == "softmax_cross_entropy"
    assert g.node("loss").inputs == ["scores", "y"]
    assert g.node("y").attrs == {"shape": [], "dtype": "int64"}


# -- general form ------------------------------------------------------------------------------
def test_general_form_builder_nodes_make_their_params():
    g = graph_from_spec(general(
        {"name": "conv1", "op": "conv2d", "inputs": ["x"], "filters": 2, "size": 3, "pad": 1},
        {"name": "bn1", "op": "batchnorm", "inputs": ["conv1"]},
        {"name": "sum", "op": "add", "inputs": ["bn1", "x"]},
        {"name": "fc", "op": "affine", "inputs": ["sum"], "units": 3, "init": "gaussian",
         "weight_scale": 0.1},
        outputs=["fc", "sum"]))
    assert [n.name for n in g] == ["x", "conv1.w", "conv1.b", "conv1", "bn1.gamma", "bn1.beta",
                                   "bn1", "sum", "fc.w", "fc.b", "fc"]
    assert g.node("conv1").inputs == ["x", "conv1.w", "conv1.b"]
    assert g.node("fc.w").attrs == {"shape": [128, 3], "init": "gaussian", "scale": 0.1,
                                    "decay": True}
    assert g.outputs == ["fc", "sum"]


def test_general_form_explicit_nodes_share_params_and_may_come_first():
    g = graph_from_spec({"name": "t", "nodes": [
        {"name": "out", "op": "add", "inputs": ["a", "b"]},
        {"name": "x", "op": "input", "shape": [3]},
        {"name": "w", "op": "param", "shape": [3, 2]},
        {"name": "bias", "op": "param", "shape": [2], "init": "zeros"},
        {"name": "a", "op": "affine", "inputs": ["x", "w", "bias"]},
        {"name": "b", "op": "affine", "inputs": ["x", "w", "bias"]},
    ]})
    assert g.shape_of("out") == (2,)
    assert g.node("w").attrs == {"shape": [3, 2], "init": "gaussian", "decay": True}
    assert g.node("bias").attrs["decay"] is False  # constant-initialised: no weight decay
    assert g.consumers("w") == [("a", 1), ("b", 1)]


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, match", [
    ("name: [unclosed", r"spec text: not valid YAML"),
    ("- just\n- a list", r"spec: the top level must be a mapping"),
    ("{\"name\": \"t\", \"layers\": [}", r"spec text: not valid YAML"),
    ("just some words", r"top level must be a mapping.*got str"),
])
def test_not_yaml_or_json(text, match):
    with pytest.raises(SpecError, match=match):
        graph_from_spec(text)


def test_bad_files(tmp_path):
    (tmp_path / "bad.json").write_text("{'single': 'quotes'}")
    with pytest.raises(SpecError, match=r"bad\.json: not valid JSON"):
        load_spec(tmp_path / "bad.json")
    with pytest.raises(SpecError, match=r"missing\.yaml: spec file not found"):
        graph_from_spec(str(tmp_path / "missing.yaml"))
    (tmp_path / "spec.txt").write_text("name: t")
    with pytest.raises(SpecError, match=r"unknown spec extension '\.txt'"):
        load_spec(tmp_path / "spec.txt")
    with pytest.raises(SpecError, match=r"unknown spec extension '\.toml'"):
        save_spec(lenet_by_hand(), tmp_path / "spec.toml")
    with pytest.raises(SpecError, match=r"expected a file path, a YAML/JSON string or a dict"):
        graph_from_spec(42)


def test_python_yaml_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = (f"name: !!python/object/apply:os.system ['touch {marker}']\n"
            f"input: {{shape: [1, 8, 8]}}\nlayers: [{{type: relu}}]\n")
    (tmp_path / "evil.yaml").write_text(evil)
    with pytest.raises(SpecError, match=r"not valid YAML.*python/object/apply:os\.system"):
        graph_from_spec(evil)
    with pytest.raises(SpecError, match=r"evil\.yaml: not valid YAML"):
        load_spec(tmp_path / "evil.yaml")
    assert not marker.exists()


@pytest.mark.parametrize("spec, match", [
    (seq({"type": "relu"}, optimizer="sgd"), r"^spec: unknown key 'optimizer'"),
    ({**seq({"type": "relu"}), "nodes": []}, r"either 'layers' .* or 'nodes'"),
    ({"name": "t"}, r"needs 'layers' .* or 'nodes'"),
    ({"name": "t", "layers": [{"type": "relu"}]}, r"^spec: missing key 'input'"),
    ({"name": "t", "input": {"shape": [1, 8, 8], "dtyp": "float64"}, "layers": []},
     r"^input: unknown key 'dtyp'; did you mean 'dtype'\?"),
    (seq(), r"^layers: must list at least one layer"),
    (seq({"type": "conv", "num_filtres": 20, "filter_size": 5}),
     r"^layers\[0\]: unknown key 'num_filtres'; did you mean 'num_filters'\?"),
    (seq({"type": "relu"}, {"type": "fc", "hidden": 3, "filters": 2}),
     r"^layers\[1\]: unknown key 'filters'"),
    (seq({"type": "conv", "num_filters": 4, "filters": 4, "filter_size": 3}),
     r"^layers\[0\]: 'num_filters' and 'filters' give the same setting"),
    (seq({"type": "conv", "filter_size": 3}),
     r"^layers\[0\]: missing key 'filters' \(also spelled num_filters\)"),
    (seq({"hidden": 3}), r"^layers\[0\]: missing key 'type'"),
    (seq({"type": "relu"}, "relu"), r"^layers\[1\]: must be a mapping"),
    (seq({"type": "rleu"}),
     r"^layers\[0\]\.type: unknown layer type 'rleu'; did you mean 'relu'\? Known types: .*conv"),
    (seq({"type": ["relu"]}), r"^layers\[0\]\.type: unknown layer type"),
    (seq({"type": "fc", "hidden": 3}, loss="hinge2"), r"^loss: must be one of softmax"),
    (seq({"type": "fc", "hidden": 3, "name": 7}),
     r"^layers\[0\]\.name: must be a non-empty string"),
])
def test_sequential_structure_errors(spec, match):
    with pytest.raises(SpecError, match=match):
        graph_from_spec(spec)


@pytest.mark.parametrize("layer, match", [
    ({"type": "conv", "num_filters": -2, "filter_size": 5},
     r"^layers\[0\]\.num_filters: must be a positive integer, got -2$"),
    ({"type": "conv", "num_filters": "20", "filter_size": 5},
     r"^layers\[0\]\.num_filters: must be a positive integer, got '20' \(a string"),
    ({"type": "conv", "num_filters": 2, "filter_size": 0},
     r"^layers\[0\]\.filter_size: must be a positive integer or a pair"),
    ({"type": "conv", "num_filters": 2, "filter_size": 3, "stride": [1, 0]},
     r"^layers\[0\]\.stride: must be a positive integer or a pair"),
    ({"type": "conv", "num_filters": 2, "filter_size": 3, "pad": -1},
     r"^layers\[0\]\.pad: must be a non-negative integer"),
    ({"type": "conv", "num_filters": 2, "filter_size": 3, "floor": 1},
     r"^layers\[0\]\.floor: must be true or false"),
    ({"type": "conv", "num_filters": 2, "filter_size": 3, "init": "kaiming"},
     r"^layers\[0\]\.init: must be one of gaussian, he"),
    ({"type": "affine", "hidden": 0}, r"^layers\[0\]\.hidden: must be a positive integer, got 0"),
    ({"type": "affine", "units": 2.5}, r"^layers\[0\]\.units: must be a positive integer"),
    ({"type": "affine", "units": True}, r"^layers\[0\]\.units: must be a positive integer"),
    ({"type": "affine", "units": 3, "weight_scale": -1.0},
     r"^layers\[0\]\.weight_scale: must be a positive number"),
    ({"type": "dropout", "p": 1.5}, r"^layers\[0\]\.p: must be a number in \[0, 1\), got 1.5$"),
    ({"type": "bn", "eps": "1e-5"}, r"^layers\[0\]\.eps: must be a positive number.*1\.0e-5"),
    ({"type": "bn", "momentum": 2}, r"^layers\[0\]\.momentum: must be a number in \[0, 1\]"),
    ({"type": "reshape", "shape": [-1, -1]}, r"^layers\[0\]\.shape: .*at most one -1"),
    ({"type": "reshape"}, r"^layers\[0\]: missing key 'shape'"),
])
def test_sequential_value_errors_name_the_key_path(layer, match):
    with pytest.raises(SpecError, match=match):
        graph_from_spec(seq(layer, loss="none"))


@pytest.mark.parametrize("shape, match", [
    ([0, 28, 28], r"^input\.shape: must be a list of positive integers, got \[0, 28, 28\]"),
    ("1x28x28", r"^input\.shape: must be a list of positive integers"),
])
def test_input_shape_errors(shape, match):
    with pytest.raises(SpecError, match=match):
        graph_from_spec({"input": {"shape": shape}, "layers": [{"type": "relu"}]})


def test_shape_errors_keep_their_class_and_gain_the_key_path():
    with pytest.raises(ShapeError, match=r"^layers\[0\]: conv1 \(conv2d, inputs x \(1, 8, 8\), .*kernel 9x9 is larger") as e:
        graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 9}, loss="none"))
    assert not isinstance(e.value, SpecError)
    with pytest.raises(ShapeError, match=r"^layers\[2\]: pool1 \(max_pool2d, inputs relu1 \(2, 7, 7\)\): "):
        graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 2},
                            {"type": "relu"}, {"type": "pool", "size": 2}, loss="none"))
    with pytest.raises(ShapeError, match=r"^loss: "):
        graph_from_spec(seq({"type": "conv", "num_filters": 2, "filter_size": 3}))
    with pytest.raises(AttrError, match=r"^layers\[0\]: pool1 \(max_pool2d, .*pad"):
        graph_from_spec(seq({"type": "pool", "size": 2, "pad": 2}, loss="none"))


def test_general_shape_errors_name_the_node():
    with pytest.raises(ShapeError, match=r"^nodes\[3\]: c \(conv2d, .*channels"):
        graph_from_spec(general(
            {"name": "w", "op": "param", "shape": [4, 3, 3, 3]},
            {"name": "b", "op": "param", "shape": [4], "init": "zeros"},
            {"name": "c", "op": "conv2d", "inputs": ["x", "w", "b"], "pad": 1}))
    # the same node listed before its inputs: found by the final topological sweep
    with pytest.raises(ShapeError, match=r"^nodes\[0\]: c \(conv2d, "):
        graph_from_spec({"name": "t", "nodes": [
            {"name": "c", "op": "conv2d", "inputs": ["x", "w", "b"]},
            {"name": "x", "op": "input", "shape": [2, 8, 8]},
            {"name": "w", "op": "param", "shape": [4, 3, 3, 3]},
            {"name": "b", "op": "param", "shape": [4]}]})
    with pytest.raises(ShapeError, match=r"^nodes\[2\]: s \(add, inputs x \(N, 2, 8, 8\), p \(N, 2, 4, 4\)\): add: cannot broadcast"):
        graph_from_spec(general(
            {"name": "p", "op": "max_pool2d", "inputs": ["x"], "size": 2},
            {"name": "s", "op": "add", "inputs": ["x", "p"]}))


C2 = {"name": "conv2", "op": "conv2d", "inputs": ["x"], "size": 3}


@pytest.mark.parametrize("nodes, match", [
    ([{**C2, "filtres": 4}],
     r"^nodes\[1\] \(conv2\): unknown key 'filtres'; did you mean 'filters'\?"),
    ([C2], r"^nodes\[1\] \(conv2\): missing key 'filters'"),
    ([{**C2, "filters": -2}],
     r"^nodes\[1\] \(conv2\)\.filters: must be a positive integer, got -2"),
    ([{"name": "c", "op": "conv2d", "inputs": ["x", "w", "b"], "filters": 4}],
     r"^nodes\[1\] \(c\): unknown key 'filters'.*list only its data input"),
    ([{"name": "p", "op": "max_pool2d", "inputs": ["x"], "size": 2, "strdie": 2}],
     r"^nodes\[1\] \(p\): unknown key 'strdie'; did you mean 'stride'\?"),
    ([{"name": "h", "op": "cnov2d", "inputs": ["x"]}],
     r"^nodes\[1\] \(h\)\.op: unknown op 'cnov2d'; did you mean 'conv2d'\? Known ops: .*relu"),
    ([{"name": "h", "op": "relu", "inputs": ["z"]}],
     r"^nodes\[1\] \(h\)\.inputs\[0\]: no node named 'z'"),
    ([{"name": "h", "op": "relu", "inputs": ["xx"]}],
     r"^nodes\[1\] \(h\)\.inputs\[0\]: no node named 'xx'; did you mean 'x'\?"),
    ([{"name": "h", "op": "relu"}], r"^nodes\[1\] \(h\): missing key 'inputs'"),
    ([{"name": "h", "op": "relu", "inputs": "x"}], r"^nodes\[1\] \(h\)\.inputs: must be a list"),
    ([{"name": "h", "op": "relu", "inputs": [3]}],
     r"^nodes\[1\] \(h\)\.inputs\[0\]: must be a non-empty string"),
    ([{"name": "h", "op": "relu", "inputs": ["x", "x"]}], r"^nodes\[1\]: h: op 'relu' takes 1"),
    ([{"name": "c", "op": "conv2d", "inputs": ["h"], "filters": 2, "size": 1},
      {"name": "h", "op": "relu", "inputs": ["x"]}],
     r"^nodes\[1\] \(c\)\.inputs\[0\]: 'h' comes later in the list"),
    ([{"name": "x", "op": "relu", "inputs": ["x"]}],
     r"^nodes\[1\] \(x\)\.name: duplicate name 'x' \(nodes\[0\] has it too\)"),
    ([{"name": "c.w", "op": "param", "shape": [2]}, {**C2, "name": "c", "filters": 2}],
     r"^nodes\[2\]: .*duplicate node name 'c\.w'"),
    ([{"name": "a+b", "op": "relu", "inputs": ["x"]}], r"^nodes\[1\] \(a\+b\): bad node name"),
    ([{"name": 5, "op": "relu", "inputs": ["x"]}],
     r"^nodes\[1\]\.name: must be a non-empty string"),
    ([{"op": "relu", "inputs": ["x"]}], r"^nodes\[1\]: missing key 'name'"),
    (["relu"], r"^nodes\[1\]: must be a mapping"),
    ([{"name": "w", "op": "param", "shape": [3, 0]}],
     r"^nodes\[1\] \(w\)\.shape: must be a list of positive integers"),
    ([{"name": "w", "op": "param", "shape": [3], "fan_in": 3}],
     r"^nodes\[1\] \(w\): give both fan_in and fan_out"),
    ([{"name": "w", "op": "param", "shape": [3], "inputs": ["x"]}],
     r"^nodes\[1\] \(w\): param nodes take no 'inputs'"),
    ([{"name": "z", "op": "input", "shape": [3], "dtype": "complex64"}],
     r"^nodes\[1\] \(z\)\.dtype: must be a float or integer dtype"),
])
def test_general_errors_name_the_key_path(nodes, match):
    with pytest.raises(SpecError, match=match):
        graph_from_spec(general(*nodes))


def test_outputs_must_name_nodes():
    with pytest.raises(SpecError,
                       match=r"^outputs\[1\]: no node named 'sumo'; did you mean 'sum'\?"):
        graph_from_spec(general({"name": "sum", "op": "add", "inputs": ["x", "x"]},
                                outputs=["sum", "sumo"]))
    with pytest.raises(SpecError, match=r"^spec: unknown key 'output'; did you mean 'outputs'\?"):
        graph_from_spec(general(output=["x"]))


def test_duplicate_sequential_names():
    with pytest.raises(SpecError, match=r"^layers\[1\]: duplicate node name 'conv1'"):
        graph_from_spec(seq({"type": "relu", "name": "conv1"},
                            {"type": "conv", "num_filters": 2, "filter_size": 3}, loss="none"))


def test_spec_files_are_read_only_as_paths(tmp_path):
    path = tmp_path / "lenet.yml"
    path.write_text(LENET_SPEC)
    assert graph_from_spec(str(path)) == graph_from_spec(pathlib.Path(path)) == lenet_by_hand()


# -- one vocabulary, a wrong input named where it is (issue 13, items 3 and 10) ---------------
RESIDUAL_NODES = [
    {"name": "x", "op": "input", "shape": [2, 8, 8]},
    {"name": "conv1", "op": "conv2d", "inputs": ["x"], "filters": 2, "size": 3, "pad": 1},
    {"name": "relu1", "op": "relu", "inputs": ["conv1"]},
    {"name": "conv2", "op": "conv2d", "inputs": ["relu1"], "filters": 2, "size": 3, "pad": 1},
    {"name": "skip", "op": "add", "inputs": ["conv2", "relu"]},
    {"name": "conv3", "op": "conv2d", "inputs": ["skip"], "filters": 2, "size": 3, "pad": 1},
]


def test_a_wrong_input_names_its_own_node_and_suggests():
    with pytest.raises(SpecError, match=r"^nodes\[4\] \(skip\)\.inputs\[1\]: no node named "
                                        r"'relu'; did you mean 'relu1'\?$"):
        graph_from_spec({"name": "t", "nodes": RESIDUAL_NODES})


@pytest.mark.parametrize("op, extra", [
    ("relu", {}), ("add", {}), ("concat", {"axis": 1}), ("max_pool2d", {"size": 2}),
    ("batchnorm", {}), ("affine", {"units": 3}), ("flatten", {}), ("dropout", {"p": 0.1}),
])
def test_every_op_names_a_wrong_input_where_it_is(op, extra):
    inputs = ["relu1", "rleu1"] if op in ("add", "concat") else ["rleu1"]
    nodes = [*RESIDUAL_NODES[:3], {"name": "bad", "op": op, "inputs": inputs, **extra},
             {"name": "after", "op": "conv2d", "inputs": ["bad"], "filters": 1, "size": 1}]
    with pytest.raises(SpecError, match=rf"^nodes\[3\] \(bad\)\.inputs\[{len(inputs) - 1}\]: "
                                        r"no node named 'rleu1'; did you mean 'relu1'\?$"):
        graph_from_spec({"name": "t", "nodes": nodes})


def test_an_input_may_name_a_param_the_builder_makes():
    g = graph_from_spec(general(
        {"name": "c", "op": "conv2d", "inputs": ["x"], "filters": 2, "size": 3, "pad": 1},
        {"name": "d", "op": "conv2d", "inputs": ["c", "c.w", "c.b"], "pad": 1}))
    assert g.consumers("c.w") == [("c", 1), ("d", 1)]


def test_both_forms_speak_one_vocabulary():
    """The course names are aliases in both forms, and the builder's names work in both."""
    course = graph_from_spec(seq(
        {"type": "conv", "num_filters": 4, "filter_size": 3, "padding": 1},
        {"type": "pool", "pool_size": 2},
        {"type": "fc", "hidden": 5}, loss="none"))
    builder = graph_from_spec(seq(
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1},
        {"type": "max_pool2d", "size": 2},
        {"type": "affine", "units": 5}, loss="none"))
    assert course == builder
    nodes_course = graph_from_spec(general(
        {"name": "conv1", "op": "conv", "inputs": ["x"], "num_filters": 4, "kernel_size": 3,
         "padding": 1},
        {"name": "fc1", "op": "fc", "inputs": ["conv1"], "hidden_dim": 5}))
    nodes_builder = graph_from_spec(general(
        {"name": "conv1", "op": "conv2d", "inputs": ["x"], "filters": 4, "size": 3, "pad": 1},
        {"name": "fc1", "op": "affine", "inputs": ["conv1"], "units": 5}))
    assert nodes_course == nodes_builder
    assert nodes_course.node("conv1").attrs == {"stride": 1, "pad": 1}


def test_the_builder_speaks_the_course_names_too():
    g = Graph()
    x = g.input("x", (1, 8, 8))
    c = g.conv2d(x, num_filters=4, filter_size=3, padding=1, name="c")
    assert g.shape_of(c) == (4, 8, 8)
    with pytest.raises(AttrError, match=r"'num_filters' and 'filters' give the same setting"):
        g.conv2d(x, 4, num_filters=4, size=3)
    with pytest.raises(AttrError, match=r"no attr 'filtres'; did you mean 'filters'\?"):
        g.conv2d(x, filtres=4, size=3)


def test_explicit_nodes_take_attr_aliases_and_store_the_names():
    g = graph_from_spec(general({"name": "p", "op": "max_pool2d", "inputs": ["x"],
                                 "pool_size": 2, "padding": 0}))
    assert g.node("p").attrs == {"size": 2, "pad": 0}
