"""MobileNet-v2 and GoogLeNet in the zoo: their structure and parameter counts against
torchvision's definitions (mobilenet_v2(), googlenet(aux_logits=False)), the options and their
errors, the original GoogLeNet's LRN form exported to ONNX, MobileNet-v2 learning a few hundred
Fashion-MNIST images, and their summaries folding the repeated blocks with a total per stage.
(ONNX against onnxruntime, the spec files and the batch-1 runs: tests/models/test_classics*.py
and test_zoo.py, which take every model of classic_sizes.SMALL / FULL_SIZE.)"""
import os
import re

import numpy as np
import pytest

import dagnet
from dagnet.errors import DagnetError
from dagnet.models import googlenet, mobilenet_v2
from dagnet.models.mobilenet import divisible
from dagnet.summary import summary_rows
from dagnet.viz.summary import default_depth, folded_summary
from tests.models.test_classics import conv_biases, ops, param_count  # torchvision counts have no conv biases


# -- MobileNet-v2 -----------------------------------------------------------------------------
def test_mobilenet_v2_counts_match_torchvision_plus_conv_biases():
    g = mobilenet_v2(input_shape=(3, 224, 224), num_classes=1000, stem="imagenet")
    assert param_count(g) - conv_biases(g) == 3_504_872  # torchvision.models.mobilenet_v2()
    assert param_count(g) == 3_521_928
    # 52 convs: the stem, 17 blocks of expand-depthwise-project (the first without expand), head
    assert len(ops(g, "conv2d")) == 1 + 17 * 3 - 1 + 1
    assert len(ops(g, "add")) == 10  # a skip wherever a block keeps its shape
    expected = {"stem.conv": (32, 112, 112), "stage1.block1.project_bn": (16, 112, 112),
                "stage2.block1.dw": (96, 56, 56), "stage4.block4.add": (64, 14, 14),
                "stage7.block1.project_bn": (320, 7, 7), "head.relu": (1280, 7, 7),
                "pool": (1280,), "scores": (1000,)}
    assert {k: g.shape_of(k) for k in expected} == expected


def test_inverted_residual_block():
    g = mobilenet_v2()
    names = [n.name for n in g if n.name.startswith("stage3.block2.") and n.op != "param"]
    assert names == [f"stage3.block2.{k}" for k in ("expand", "expand_bn", "expand_relu", "dw",
                                                   "dw_bn", "dw_relu", "project", "project_bn",
                                                   "add")]
    dw = g.node("stage3.block2.dw")
    assert dw.attrs["groups"] == 192 and g.shape_of(dw.inputs[1]) == (192, 1, 3, 3)  # depthwise
    relu6 = g.node("stage3.block2.dw_relu")
    assert relu6.op == "clip" and relu6.attrs == {"min": 0.0, "max": 6.0}
    assert g.node("stage3.block2.add").inputs == ["stage3.block2.project_bn",
                                                  "stage3.block1.project_bn"]
    assert "stage1.block1.expand" not in g  # expansion 1: no expand conv
    assert "stage3.block1.add" not in g and "stage5.block1.add" not in g  # shape changes


def test_mobilenet_v2_options():
    # the CIFAR stem keeps 32x32 at stride 1: total stride 16, 2x2 maps before pooling
    assert mobilenet_v2().shape_of("head.relu") == (1280, 2, 2)
    assert mobilenet_v2(input_shape=(1, 28, 28)).shape_of("stage2.block2.add") == (24, 14, 14)
    assert param_count(mobilenet_v2()) == 2_253_738
    # torchvision's rounding: multiples of 8, the head's 1280 kept below width 1
    assert [divisible(v) for v in (32 * 0.5, 16 * 0.35, 24 * 0.35, 100)] == [16, 8, 8, 104]
    half = mobilenet_v2(width=0.5)
    assert half.shape_of("stem.conv") == (16, 32, 32) and half.shape_of("head.conv") == (1280, 2, 2)
    assert mobilenet_v2(width=1.4).shape_of("head.conv") == (1792, 2, 2)
    assert "drop" not in mobilenet_v2(dropout=0)
    with pytest.raises(DagnetError, match="width must be > 0"):
        mobilenet_v2(width=0)
    with pytest.raises(DagnetError, match="stem must be 'cifar'.*or 'imagenet'"):
        mobilenet_v2(stem="tiny")


FASHION = "/usr/share/datasets/fashion-mnist/"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_mobilenet_v2_learns_a_few_hundred_fashion_mnist_images():
    """A narrow MobileNet-v2 (width 0.25, no dropout) on 128 images, 5 epochs of Adam: the loss
    over all 128 (train-mode batchnorm) falls by more than a quarter (measured: 2.50 to 1.26,
    on 1 thread and 2). In float64, not float32: the gradients of the conv biases before
    batchnorm are zero in exact arithmetic, and Adam scales their float32 rounding noise (above
    its eps of 1e-8) to full-size steps, so the float32 loss after 5 epochs went anywhere from
    0.96 to 1.88 with the summation order of the batchnorm kernels (float64's noise stays
    far under eps)."""
    from dagnet.data.idx import load_mnist_like
    from dagnet.data.preprocess import normalize_splits
    from dagnet.train.solver import Solver

    raw = load_mnist_like()
    data, _ = normalize_splits({"X_train": raw["X_train"][:128], "y_train": raw["y_train"][:128],
                                "X_val": raw["X_test"][:32], "y_val": raw["y_test"][:32]})
    plan = dagnet.compile(mobilenet_v2(input_shape=(1, 28, 28), width=0.25, dropout=0), seed=0,
                          dtype="float64")
    before = plan.loss_and_grads(data["X_train"], data["y_train"])[0]
    s = Solver(plan, data, update_rule="adam", batch_size=16, num_epochs=5,
               optim_config={"learning_rate": 3e-3}, verbose=False, num_train_samples=None)
    s.train()
    after = plan.loss_and_grads(data["X_train"], data["y_train"])[0]
    assert np.isfinite(s.loss_history).all() and after < 0.75 * before, (before, after)
    assert s.train_acc_history[-1] > s.train_acc_history[0] + 0.1


# -- GoogLeNet --------------------------------------------------------------------------------
def test_googlenet_counts_match_torchvision_plus_conv_biases():
    g = googlenet()
    assert param_count(g) - conv_biases(g) == 6_624_904  # torchvision googlenet(aux_logits=False)
    assert param_count(g) == 6_632_184
    assert len(ops(g, "conv2d")) == 3 + 9 * 6 and len(ops(g, "batchnorm")) == 57
    assert ops(g, "concat") == [f"inception{s}.{m}.concat" for s, mods in
                                ((3, "ab"), (4, "abcde"), (5, "ab")) for m in mods]
    assert g.node("inception3.a.concat").inputs == [
        "inception3.a.branch1.conv_relu", "inception3.a.branch2.conv_relu",
        "inception3.a.branch3.conv_relu", "inception3.a.branch4.conv_relu"]
    assert g.node("inception3.a.branch4.conv").inputs[0] == "inception3.a.branch4.pool"
    assert g.node("stem.conv1_bn").attrs["eps"] == 1e-3  # torchvision's BasicConv2d
    expected = {"stem.conv1": (64, 112, 112), "stem.pool1": (64, 56, 56),
                "stem.pool2": (192, 28, 28), "inception3.a.concat": (256, 28, 28),
                "inception3.b.concat": (480, 28, 28), "pool3": (480, 14, 14),
                "inception4.e.concat": (832, 14, 14), "pool4": (832, 7, 7),
                "inception5.b.concat": (1024, 7, 7), "pool": (1024,), "scores": (1000,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert g.node("pool3").attrs["ceil_mode"] is True
    assert g.shape_of("inception3.a.branch3.conv.w") == (32, 16, 3, 3)  # torchvision's 3x3


def test_googlenet_original_variant_has_lrn_and_5x5_convs():
    g = googlenet(variant="original")
    assert ops(g, "lrn") == ["stem.norm1", "stem.norm2"] and not ops(g, "batchnorm")
    assert g.node("stem.norm1").attrs["size"] == 5
    assert g.shape_of("inception3.a.branch3.conv.w") == (32, 16, 5, 5)
    assert g.node("drop").attrs["p"] == pytest.approx(0.4)
    assert g.shape_of("inception5.b.concat") == (1024, 7, 7)
    assert param_count(g) == 6_998_552  # Caffe's bvlc_googlenet without its two aux heads
    with pytest.raises(DagnetError, match="variant must be 'torchvision'.*or 'original'"):
        googlenet(variant="caffe")
    with pytest.raises(DagnetError, match="width must be > 0"):
        googlenet(width=-1)
    # the smallest inputs whose maps fit every pool (the original's last pool is 3x3, not 2x2)
    assert googlenet(input_shape=(3, 31, 31)).shape_of("inception5.b.concat")[1:] == (1, 1)
    assert googlenet(input_shape=(3, 47, 47), variant="original").shape_of("pool4")[1:] == (1, 1)
    with pytest.raises(DagnetError, match=r"input H, W must be at least 31 .* got \(3, 30, 30\)"):
        googlenet(input_shape=(3, 30, 30))
    with pytest.raises(DagnetError, match="at least 47 .the original variant's pools"):
        googlenet(input_shape=(3, 46, 46), variant="original")


def test_googlenet_original_matches_onnxruntime(tmp_path):
    """LRN and 5x5 branches exported: onnxruntime agrees (the torchvision form is covered with
    the other classics)."""
    pytest.importorskip("onnxruntime")
    from tests.models.test_classics_onnx import TOL, randomized, scores
    from dagnet.gradcheck import norm_error
    from dagnet.onnx import export, load

    g = googlenet(input_shape=(3, 48, 48), num_classes=10, variant="original", width=0.0625)
    plan = randomized(g)
    export(plan, tmp_path / "g.onnx")
    x = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    got, want = scores(plan, tmp_path / "g.onnx", x)
    assert norm_error(got, want) < TOL
    assert ops(load(tmp_path / "g.onnx").graph, "lrn") == ["stem.norm1", "stem.norm2"]


# -- folded summaries -------------------------------------------------------------------------
def rows(text: str) -> dict:
    """{layer (indent kept): the rest of its line split on 2+ spaces}."""
    out = {}
    for line in text.splitlines()[3:-2]:
        cells = re.split(r"\s{2,}", line.strip())
        out[line[:len(line) - len(line.lstrip())] + cells[0]] = cells[1:]
    return out


def stage_totals_add_up(g, table, stages):
    per_layer = {r["name"]: r["params"] for r in summary_rows(g)}
    for stage in stages:
        want = sum(v for k, v in per_layer.items() if k.startswith(stage + "."))
        assert table[stage][2] == f"{want:,}", stage


def test_googlenet_summary_folds_its_inception_modules():
    g = googlenet()
    assert default_depth(g) == 2
    text = folded_summary(g, 2)
    table = rows(text)
    assert len(text.splitlines()) < 35  # 197 ops
    assert table["inception4"][:2] == ["100 ops", "(832, 14, 14)"]  # 5 modules of 20
    assert table["  inception4.b … e"][0] == "4 like inception4.a"
    assert table["  inception3.b"][0] == "like inception3.a"
    assert "  inception4.c" not in table and "pool3" in table
    stage_totals_add_up(g, table, ("stem", "inception3", "inception4", "inception5"))
    assert text.splitlines()[-1].split()[-2] == "6,632,184"


def test_mobilenet_v2_summary_folds_its_inverted_residuals():
    g = mobilenet_v2()
    assert default_depth(g) == 2
    text = folded_summary(g, 2)
    table = rows(text)
    assert len(text.splitlines()) < 45  # 153 ops
    assert table["  stage4.block3 … block4"][0] == "2 like stage4.block2"
    assert table["  stage2.block2"][0] == "9 ops"  # its skip: not like block1
    assert table["  stage3.block3"][0] == "like stage3.block2"
    assert "  stage4.block3" not in table and "  stage4.block4" not in table
    stage_totals_add_up(g, table, ["stem", *(f"stage{i}" for i in range(1, 8)), "head"])
    assert text.splitlines()[-1].split()[-2] == "2,253,738"
