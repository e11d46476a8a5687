"""The model zoo: shapes and parameter counts, options, the YAML specs in models/specs equal to
the functions' defaults, the registry, and every model compiling to a plan that trains."""
import inspect

import numpy as np
import pytest
import yaml

import dagnet
from dagnet import Graph
from dagnet.errors import DagnetError
from dagnet.models import (MODELS, SPEC_DIR, convnet_deep, fc_net, get_model, lenet, lenet_bn,
                           resnet_small, spec_path, three_layer_convnet, two_layer_net)
from dagnet.spec import graph_to_spec, load_spec
from tests.models.classic_sizes import small


def param_count(g: Graph) -> int:
    return sum(int(np.prod(g.shape_of(p))) for p in g.params)


def layers(g: Graph) -> list[str]:
    """The op nodes' names in order."""
    return [n.name for n in g if n.op not in ("input", "param")]


# -- registry -------------------------------------------------------------------------------
def test_registry_lists_every_model_with_docs_and_common_arguments():
    assert list(MODELS) == ["two_layer_net", "fc_net", "three_layer_convnet", "lenet",
                            "lenet_bn", "convnet_deep", "resnet_small", "resnet20", "resnet18",
                            "vgg11", "vgg11_bn", "squeezenet", "densenet_small", "mobilenet_v2",
                            "vit_tiny", "mixer_tiny", "resnet50", "vgg16", "alexnet", "googlenet"]
    for name, fn in MODELS.items():
        params = inspect.signature(fn).parameters
        assert {"input_shape", "num_classes", "init", "weight_scale"} <= set(params), name
        assert fn.__doc__ and "->" in fn.__doc__, name  # one line what, then shapes
        g = fn()
        assert g.name == name
        assert g.outputs == ["loss"] and g.node("loss").inputs == ["scores", "y"]
        assert not any("+" in n.name for n in g)


def test_get_model():
    assert get_model("lenet") == lenet()
    kw = {"hidden_dims": [20], "dropout": 0.5}
    assert get_model("fc_net", **kw) == fc_net(**kw)
    with pytest.raises(DagnetError, match=r"unknown model 'lenett'\. Did you mean 'lenet'\? "
                                          r"Known models: two_layer_net, fc_net, .*resnet_small"):
        get_model("lenett")
    with pytest.raises(DagnetError, match=r"lenet: .*'hidden'.*it takes input_shape, num_classes"):
        get_model("lenet", hidden=3)


@pytest.mark.parametrize("name", list(MODELS))
def test_input_shape_and_classes_are_overridable(name):
    shape = (3, 63, 63) if name == "alexnet" else (3, 32, 32)  # alexnet's smallest input
    g = get_model(name, input_shape=shape, num_classes=7)
    assert g.shape_of("x") == shape
    assert g.shape_of("scores") == (7,)


@pytest.mark.parametrize("name", list(MODELS))
def test_init_and_weight_scale_reach_every_weight(name):
    g = get_model(name, init="gaussian", weight_scale=1e-3)
    weights = [p for p in g.params if p.attrs["decay"]]
    assert weights and all(p.attrs["init"] == "gaussian" and p.attrs["scale"] == 1e-3
                           for p in weights)
    assert all(p.attrs["init"] in ("zeros", "ones") for p in g.params if not p.attrs["decay"])


# -- the YAML specs -------------------------------------------------------------------------
GENERAL_FORM = ("resnet_small", "resnet20", "resnet18", "resnet50", "squeezenet", "densenet_small",
                "mobilenet_v2", "googlenet", "vit_tiny", "mixer_tiny")


@pytest.mark.parametrize("name", [n for n in GENERAL_FORM if n != "resnet_small"])
def test_written_spec_files_are_current(name):
    """The big general-form specs were written by dagnet.models.spec_writer: writing them again
    gives the same text (edit the function, then rewrite the file)."""
    from dagnet.models.spec_writer import main

    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main([name])
    assert out.getvalue() == spec_path(name).read_text()

def test_every_model_has_exactly_one_spec_file():
    assert sorted(p.stem for p in SPEC_DIR.glob("*.yaml")) == sorted(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_file_builds_the_default_graph(name):
    assert load_spec(spec_path(name)) == MODELS[name]()


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_file_form(name):
    spec = yaml.safe_load(spec_path(name).read_text())
    # sequential wherever it can be: skips and branches need the general form
    assert ("nodes" in spec) == (name in GENERAL_FORM)


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip(name):
    g = MODELS[name]()
    assert Graph.from_spec(yaml.safe_dump(graph_to_spec(g))) == g


# -- shapes and parameter counts ------------------------------------------------------------
def test_lenet_shapes_and_params():
    g = lenet()
    expected = {"x": (1, 28, 28), "conv1": (20, 24, 24), "pool1": (20, 12, 12),
                "conv2": (50, 8, 8), "pool2": (50, 4, 4), "fc1": (500,), "scores": (10,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert param_count(g) == 431_080
    assert layers(g) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3",
                         "scores", "loss"]


def test_lenet_bn_puts_batchnorm_before_each_relu():
    g = lenet_bn()
    assert layers(g) == ["conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
                         "fc1", "bn3", "relu3", "scores", "loss"]
    assert [g.shape_of(f"bn{i}") for i in (1, 2, 3)] == [(20, 24, 24), (50, 8, 8), (500,)]
    assert param_count(g) == 431_080 + 2 * (20 + 50 + 500)


def test_two_layer_net():
    g = two_layer_net()
    assert layers(g) == ["fc1", "relu1", "scores", "loss"]
    assert g.shape_of("fc1") == (100,)
    assert param_count(g) == 784 * 100 + 100 + 100 * 10 + 10
    assert two_layer_net(hidden=7).shape_of("fc1") == (7,)


def test_fc_net_depth_dropout_batchnorm():
    assert layers(fc_net()) == ["fc1", "relu1", "fc2", "relu2", "scores", "loss"]
    assert layers(fc_net(hidden_dims=[])) == ["scores", "loss"]
    g = fc_net(hidden_dims=[50, 40, 30, 20], dropout=0.3, batchnorm=True)
    assert layers(g) == [f"{k}{i}" for i in range(1, 5) for k in ("fc", "bn", "relu", "drop")] \
        + ["scores", "loss"]
    assert [g.shape_of(f"fc{i}") for i in range(1, 5)] == [(50,), (40,), (30,), (20,)]
    assert g.node("drop2").attrs == {"p": 0.3}


def test_three_layer_convnet_pads_to_keep_the_size():
    g = three_layer_convnet()
    assert layers(g) == ["conv1", "relu1", "pool1", "fc1", "relu2", "scores", "loss"]
    assert (g.shape_of("conv1"), g.shape_of("pool1"), g.shape_of("fc1")) == \
        ((32, 32, 32), (32, 16, 16), (100,))
    assert g.node("conv1").attrs == {"stride": 1, "pad": 3}
    small = three_layer_convnet(input_shape=(1, 28, 28), num_filters=8, filter_size=3, hidden=20)
    assert small.shape_of("conv1") == (8, 28, 28) and small.shape_of("pool1") == (8, 14, 14)
    with pytest.raises(DagnetError, match="filter_size must be odd"):
        three_layer_convnet(filter_size=4)


def test_three_layer_convnet_with_batchnorm():
    """The course's use_batchnorm: spatial batchnorm after the conv, batchnorm after the hidden
    affine layer, each before its relu; the spec form's sequential names (bn1, bn2)."""
    g = three_layer_convnet(batchnorm=True)
    assert layers(g) == ["conv1", "bn1", "relu1", "pool1", "fc1", "bn2", "relu2", "scores", "loss"]
    assert g.shape_of("bn1") == (32, 32, 32) and g.shape_of("bn2") == (100,)
    assert param_count(g) == param_count(three_layer_convnet()) + 2 * 32 + 2 * 100
    spec = yaml.safe_load(spec_path("three_layer_convnet").read_text())
    spec["layers"][1:1] = [{"type": "spatial_batchnorm"}]
    spec["layers"][5:5] = [{"type": "batchnorm"}]
    spec["name"] = "three_layer_convnet"
    assert Graph.from_spec(spec) == g
    plan = dagnet.compile(three_layer_convnet((1, 8, 8), 4, 3, 6, batchnorm=True), dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8))
    loss, _ = plan.loss_and_grads(x, np.array([0, 1, 2]))
    assert np.isfinite(loss)


def test_convnet_deep():
    g = convnet_deep()
    assert layers(g) == ["conv1", "relu1", "conv2", "relu2", "pool1",
                         "conv3", "relu3", "conv4", "relu4", "pool2", "scores", "loss"]
    assert (g.shape_of("conv2"), g.shape_of("pool1"), g.shape_of("pool2")) == \
        ((32, 28, 28), (32, 14, 14), (64, 7, 7))
    g = convnet_deep(input_shape=(3, 32, 32), n=3, m=3, filters=8, hidden=16)
    assert g.shape_of("pool3") == (8, 4, 4)
    assert layers(g)[-6:] == ["fc1", "relu7", "fc2", "relu8", "scores", "loss"]
    assert g.shape_of("fc2") == (16,)
    with pytest.raises(DagnetError, match="one filter count per block"):
        convnet_deep(n=3, filters=[8, 16])


def test_resnet_small_structure():
    g = resnet_small()
    adds = [n for n in g if n.op == "add"]
    assert [n.name for n in adds] == ["block1.add", "block2.add", "block3.add", "block4.add"]
    assert g.node("block1.add").inputs == ["block1.bn2", "stem.relu"]  # identity skip
    skip = g.node("block3.skip")  # the downsampling block's skip: a 1x1 stride-2 conv
    assert skip.op == "conv2d" and skip.inputs[0] == "block2.relu2"
    assert g.shape_of(skip.inputs[1])[2:] == (1, 1) and skip.attrs["stride"] == 2
    assert g.node("block3.add").inputs == ["block3.bn2", "block3.skip"]
    assert g.node("features").op == "concat"
    assert g.node("features").inputs == ["gap1", "gap2"]
    expected = {"stem.relu": (16, 28, 28), "block2.relu2": (16, 28, 28),
                "block3.conv1": (32, 14, 14), "block3.skip": (32, 14, 14),
                "block4.relu2": (32, 14, 14), "gap1": (16,), "gap2": (32,), "features": (48,),
                "scores": (10,)}
    assert {k: g.shape_of(k) for k in expected} == expected


def test_resnet_small_options():
    g = resnet_small(input_shape=(3, 7, 7), blocks=1, channels=4)
    assert [n.name for n in g if n.op == "add"] == ["block1.add", "block2.add"]
    assert g.shape_of("block2.skip") == (8, 4, 4)  # odd sizes downsample too (floor)
    assert g.shape_of("features") == (12,)
    with pytest.raises(DagnetError, match="blocks must be >= 1"):
        resnet_small(blocks=0)


# -- they compile and train -----------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_compiles_with_initial_loss_near_log_classes(name):
    kw = {"input_shape": (3, 16, 16)} if name == "three_layer_convnet" else small(name)
    g = get_model(name, init="gaussian", weight_scale=1e-3, **kw)
    plan = dagnet.compile(g, dtype="float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, *g.shape_of("x")))
    loss, grads = plan.loss_and_grads(x, rng.integers(0, 10, size=4))
    assert abs(loss - np.log(10)) < 0.05
    assert set(grads) == {p.name for p in g.params}
