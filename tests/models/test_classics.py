"""The classic families in the zoo: their structure and parameter counts against the published
networks, the full-size ImageNet definitions built and run at batch 1, the options' errors."""
import time

import numpy as np
import pytest

import dagnet
from dagnet.errors import DagnetError
from dagnet.models import (alexnet, densenet_small, get_model, resnet18, resnet20, resnet50,
                           squeezenet, vgg11, vgg11_bn, vgg16)
from tests.models.classic_sizes import FULL_SIZE, small


def param_count(g) -> int:
    return sum(int(np.prod(g.shape_of(p))) for p in g.params)


def conv_biases(g) -> int:
    """dagnet's convs always have a bias; torchvision's ResNets and DenseNets have none."""
    return sum(g.shape_of(n.inputs[1])[0] for n in g if n.op == "conv2d")


def ops(g, op) -> list:
    return [n.name for n in g if n.op == op]


# -- the published counts ---------------------------------------------------------------------
def test_resnet20_is_the_cifar_resnet():
    g = resnet20()
    assert len(ops(g, "conv2d")) == 1 + 3 * 3 * 2 + 2  # stem, 18 convs, 2 projection skips
    assert len(ops(g, "add")) == 9
    expected = {"stem.relu": (16, 32, 32), "stage1.block3.relu2": (16, 32, 32),
                "stage2.block1.conv1": (32, 16, 16), "stage2.block1.skip": (32, 16, 16),
                "stage3.block3.relu2": (64, 8, 8), "pool": (64,), "scores": (10,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert g.node("stage1.block1.add").inputs == ["stage1.block1.bn2", "stem.relu"]  # identity
    assert g.node("stage2.block1.add").inputs == ["stage2.block1.bn2", "stage2.block1.skip_bn"]
    # the paper's 0.27M (its option-A skips have no params; these projections add 2,848)
    assert param_count(g) == 273_258
    assert sum(int(np.prod(g.shape_of(p.name))) for p in g.params if ".skip" in p.name) == 2_848


def test_resnet18_counts_match_torchvision_plus_conv_biases():
    g = resnet18(input_shape=(3, 224, 224), num_classes=1000, stem="imagenet")
    assert param_count(g) - conv_biases(g) == 11_689_512  # torchvision.models.resnet18()
    g = resnet18()  # the CIFAR form: a 3x3 stem, no max pool
    assert g.shape_of("stage4.block2.relu2") == (512, 4, 4) and "stem.pool" not in g
    with pytest.raises(DagnetError, match="stem must be 'cifar'.*or 'imagenet'"):
        resnet18(stem="tiny")


def test_resnet50_counts_match_torchvision_plus_conv_biases():
    g = resnet50()
    assert param_count(g) - conv_biases(g) == 25_557_032  # torchvision.models.resnet50()
    assert param_count(g) == 25_583_592
    assert len(ops(g, "conv2d")) == 53 and len(ops(g, "add")) == 16
    expected = {"stem.pool": (64, 56, 56), "stage1.block3.relu3": (256, 56, 56),
                "stage2.block1.conv2": (128, 28, 28), "stage4.block3.relu3": (2048, 7, 7),
                "pool": (2048,), "scores": (1000,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    with pytest.raises(DagnetError, match="width must be > 0"):
        resnet50(width=0)


def test_vgg_counts_match_torchvision():
    assert param_count(vgg16()) == 138_357_544  # torchvision.models.vgg16()
    g = vgg11()
    assert len(ops(g, "conv2d")) == 8 and len(ops(g, "max_pool2d")) == 5
    assert g.shape_of("pool5") == (512, 1, 1) and param_count(g) == 9_225_610
    bn = vgg11_bn()
    assert bn.name == "vgg11_bn" and vgg11(batchnorm=True) == bn
    assert ops(bn, "batchnorm") == [f"bn{i}" for i in range(1, 9)]
    assert param_count(bn) == 9_225_610 + 2 * (64 + 128 + 2 * 256 + 4 * 512)
    with pytest.raises(DagnetError, match=r"vgg11: input H, W must be at least 32 \(5 2x2 pools\)"):
        vgg11(input_shape=(1, 28, 28))


def test_alexnet_is_torchvisions():
    g = alexnet()
    assert param_count(g) == 61_100_840  # torchvision.models.alexnet()
    expected = {"conv1": (64, 55, 55), "pool1": (64, 27, 27), "pool2": (192, 13, 13),
                "conv5": (256, 13, 13), "pool3": (256, 6, 6), "fc1": (4096,), "scores": (1000,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert ops(g, "dropout") == ["drop1", "drop2"] and g.node("fc1").inputs[0] == "drop1"


def test_squeezenet_fire_modules_concatenate():
    g = squeezenet()
    fires = [n for n in ops(g, "concat")]
    assert fires == [f"fire{i}.concat" for i in range(2, 10)]
    assert g.node("fire2.concat").inputs == ["fire2.expand1x1_relu", "fire2.expand3x3_relu"]
    expected = {"stem.pool": (64, 16, 16), "fire3.concat": (128, 16, 16),
                "fire5.concat": (256, 8, 8), "fire9.concat": (512, 4, 4),
                "classifier": (10, 4, 4), "scores": (10,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert "affine" not in {n.op for n in g} and g.node("scores").op == "global_avg_pool"
    assert param_count(g) == 727_626


def test_densenet_small_concatenates_every_layer():
    g = densenet_small()
    assert len(ops(g, "concat")) == 12
    assert g.node("block1.layer2.concat").inputs == ["block1.layer1.concat", "block1.layer2.conv"]
    expected = {"stem": (24, 32, 32), "block1.layer4.concat": (72, 32, 32),
                "trans1.pool": (36, 16, 16), "block2.layer4.concat": (84, 16, 16),
                "trans2.pool": (42, 8, 8), "block3.layer4.concat": (90, 8, 8), "pool": (90,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert param_count(g) == 77_056
    with pytest.raises(DagnetError, match="at least one block"):
        densenet_small(blocks=())


# -- full size: build, compile, one batch-1 forward -------------------------------------------
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "vgg16" else n
                                  for n in FULL_SIZE])
def test_full_size_definition_runs_at_batch_1(name):
    g = get_model(name)
    assert g.shape_of("x") == (3, 224, 224) and g.shape_of("scores") == (1000,)
    plan = dagnet.compile(g, mode="eval")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    start = time.perf_counter()
    scores = plan.predict(x)
    assert scores.shape == (1, 1000) and np.isfinite(scores).all()
    assert time.perf_counter() - start < 120  # a hang, not a speed check


@pytest.mark.parametrize("name", FULL_SIZE)
def test_narrow_full_size_definitions_train(name):
    """The same architectures, narrow and on small images, take a training step."""
    plan = dagnet.compile(get_model(name, **small(name)), dtype="float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *plan.input_specs["x"]["shape"]))
    loss, grads = plan.loss_and_grads(x, np.array([1, 2]))
    assert np.isfinite(loss) and set(grads) == set(plan.params)
