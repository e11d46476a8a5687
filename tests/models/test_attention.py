"""The attention-era zoo models, vit_tiny and mixer_tiny: their structure, the patches against a
plain numpy reference, a training step equal to torch's own layers (nn.MultiheadAttention,
nn.LayerNorm, F.unfold), their diagrams and folded summaries, and a few epochs on real
Fashion-MNIST images in which the loss falls. (Spec files, overrides, init and the registry:
test_zoo.py, over every model; ONNX: test_attention_onnx.py.)"""
import math
import os

import numpy as np
import pytest

import dagnet
from dagnet.errors import DagnetError
from dagnet.models import mixer_tiny, vit_tiny
from tests.viz import needs_dot, svg_groups, svg_text

FASHION = "/usr/share/datasets/fashion-mnist/"
MODELS = {"vit_tiny": vit_tiny, "mixer_tiny": mixer_tiny}


def param_count(g) -> int:
    return sum(int(np.prod(g.shape_of(p))) for p in g.params)


def ops(g, op) -> list:
    return [n.name for n in g if n.op == op]


# -- structure --------------------------------------------------------------------------------
def test_vit_tiny_attention_is_written_out():
    g = vit_tiny()
    assert param_count(g) == 71_946
    expected = {"patches": (49, 16), "embed": (49, 64), "pos": (49, 64),
                "block1.attn.q_heads": (4, 49, 16), "block1.attn.k_heads": (4, 16, 49),
                "block1.attn.scores": (4, 49, 49), "block1.attn.context": (4, 49, 16),
                "block1.attn.merge": (49, 64), "block1.mlp.fc1": (49, 128),
                "block2.add2": (49, 64), "pool": (64,), "scores": (10,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    a = "block1.attn"
    assert g.node(f"{a}.qk").inputs == [f"{a}.q_heads", f"{a}.k_heads"]
    scale = g.node(g.node(f"{a}.scores").inputs[1])
    assert scale.op == "constant" and scale.attrs["value"] == 1 / math.sqrt(16)
    assert g.node(f"{a}.softmax").attrs == {"axis": -1}
    assert g.node(f"{a}.context").inputs == [f"{a}.softmax", f"{a}.v_heads"]
    # pre-norm residuals: each block adds to its input what its sublayer made of ln(input)
    assert g.node("block1.ln1").inputs[0] == "pos"
    assert g.node("block1.add1").inputs == ["pos", f"{a}.out"]
    assert g.node("block1.add2").inputs == ["block1.add1", "block1.mlp.fc2"]
    assert g.node("block2.ln1").inputs[0] == "block1.add2"
    assert len(ops(g, "softmax")) == 2 and len(ops(g, "layer_norm")) == 5
    assert len(ops(g, "gelu")) == 2 and len(ops(g, "matmul")) == 1 + 2 * (4 + 2 + 2)


def test_mixer_tiny_mixes_tokens_then_channels():
    g = mixer_tiny()
    assert param_count(g) == 48_300
    expected = {"block1.tokens.in": (64, 49), "block1.tokens.fc1": (64, 64),
                "block1.tokens.out": (49, 64), "block1.channels.fc1": (49, 128),
                "block2.add2": (49, 64), "pool": (64,)}
    assert {k: g.shape_of(k) for k in expected} == expected
    assert g.node("block1.tokens.in").inputs == ["block1.ln1"]
    assert g.node("block1.add1").inputs == ["embed", "block1.tokens.out"]
    assert ops(g, "softmax") == [] and len(ops(g, "gelu")) == 4


def test_options_and_their_errors():
    g = vit_tiny(input_shape=(3, 32, 32), patch=8, dim=24, depth=3, heads=3, mlp_hidden=48)
    assert g.shape_of("patches") == (16, 192) and g.shape_of("block3.attn.scores") == (3, 16, 16)
    assert g.node("block3.attn.scores.y").attrs["value"] == 1 / math.sqrt(8)
    g = mixer_tiny(patch=7, dim=32, depth=1, token_hidden=8, channel_hidden=16)
    assert g.shape_of("block1.tokens.fc1") == (32, 8) and "block2.ln1" not in g
    with pytest.raises(DagnetError, match=r"vit_tiny: heads = 5 must divide dim = 64"):
        vit_tiny(heads=5)
    with pytest.raises(DagnetError, match=r"mixer_tiny: patch = 5 must divide the image's "
                                          r"height and width, got input_shape \(1, 28, 28\)"):
        mixer_tiny(patch=5)
    with pytest.raises(DagnetError, match=r"vit_tiny: depth=0: each must be an int >= 1"):
        vit_tiny(depth=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_patches_are_the_image_squares_row_by_row(name):
    g = MODELS[name](input_shape=(2, 8, 12), patch=4)
    plan = dagnet.compile(g, mode="eval", dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 12))
    got = plan.forward({"x": x}, mode="eval", outputs=["patches"])["patches"]
    want = np.stack([np.stack([x[n, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].ravel()
                               for i in range(2) for j in range(3)]) for n in range(3)])
    np.testing.assert_array_equal(got, want)


# -- one training step, equal to torch's ----------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_training_step_matches_torch(name):
    """Loss and every gradient in float64 equal torch's, then one SGD step on both and the
    next loss equal too (1e-10)."""
    torch = pytest.importorskip("torch")
    from tests.models import torch_attention

    plan = dagnet.compile(MODELS[name](), dtype="float64", seed=3)
    rng = np.random.default_rng(1)
    for p in plan.params.values():  # biases, norms and the position table away from 0 and 1
        p += 0.1 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((5, 1, 28, 28)), rng.integers(0, 10, 5)
    net = getattr(torch_attention, name.split("_")[0])().double()
    torch_attention.load_params(net, plan.params)
    assert set(torch_attention.param_map(net)) == set(plan.params)

    def torch_loss():
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        return loss.item()

    loss, grads = plan.loss_and_grads(x, y)
    assert loss == pytest.approx(torch_loss(), rel=1e-12)
    theirs = torch_attention.grads(net)
    for k, g in grads.items():
        np.testing.assert_allclose(g, theirs[k], rtol=1e-10, atol=1e-12, err_msg=k)
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.1 * p.grad
    for k, g in grads.items():
        plan.params[k] -= 0.1 * g
    loss2, _ = plan.loss_and_grads(x, y)
    assert loss2 == pytest.approx(torch_loss(), rel=1e-10) and loss2 != loss


# -- pictures -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_summary_folds_the_repeated_blocks(name):
    from dagnet.viz.summary import folded_summary

    text = folded_summary(MODELS[name](), 1)
    rows = {line.split()[0]: line for line in text.splitlines()[3:-2]}
    assert list(rows) == ["x", "y", "patches", "embed"] + (["pos"] if name == "vit_tiny" else []) \
        + ["block1", "block2", "norm", "pool", "scores", "loss"]
    assert "like block1" in rows["block2"]
    # the second block's 1/sqrt(d) constant folds with it instead of splitting its row
    assert text.count("block2") == 1


@needs_dot
@pytest.mark.parametrize("name", list(MODELS))
def test_plan_and_graph_diagrams_fold_the_second_block(name, tmp_path):
    """The plan draws block1 in full and block2 as one box, its constant (vit's 1/sqrt(d))
    inside it; the declared graph folds both blocks."""
    from dagnet.viz import render_graph, render_plan

    plan = dagnet.compile(MODELS[name]())
    render_plan(plan, tmp_path / "plan.svg", blocks="fold")
    boxes = svg_groups(tmp_path / "plan.svg", "node")
    assert "block1.ln1" in boxes and "block/0" in boxes and "pool" in boxes
    assert not [b for b in boxes if b.startswith("block2.")]
    assert "block × 1 more" in svg_text(tmp_path / "plan.svg")
    render_graph(plan.source, tmp_path / "graph.svg", blocks="fold")
    boxes = svg_groups(tmp_path / "graph.svg", "node")
    assert "block/0" in boxes and not [b for b in boxes if b.startswith("block")
                                       and b != "block/0"]


# -- a few epochs on Fashion-MNIST --------------------------------------------------------------
@pytest.fixture(scope="module")
def fashion():
    if not os.path.isdir(FASHION):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    from dagnet.data.idx import load_mnist_like
    from dagnet.data.preprocess import normalize_splits

    raw = load_mnist_like()
    data, _ = normalize_splits({"X_train": raw["X_train"][:300], "y_train": raw["y_train"][:300],
                                "X_val": raw["X_test"][:300], "y_val": raw["y_test"][:300]})
    return data


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_falls_in_a_few_epochs_on_fashion_mnist(name, fashion):
    """300 images, 3 epochs of Adam (about 3 s each): the loss falls from log(10) and the
    held-out accuracy is far above chance."""
    from dagnet.train import Solver

    s = Solver(dagnet.compile(MODELS[name](), seed=0), fashion, update_rule="adam",
               optim_config={"learning_rate": 2e-3}, batch_size=50, num_epochs=3,
               num_train_samples=None, verbose=False, print_every=None)
    s.train()
    per_epoch = [np.mean(s.loss_history[i:i + 6]) for i in range(0, 18, 6)]
    assert len(s.loss_history) == 18 and per_epoch[0] > 2.0
    assert per_epoch[2] < per_epoch[1] < per_epoch[0] - 0.2 and per_epoch[2] < 1.8, per_epoch
    assert s.val_acc_history[-1] > 0.35, s.val_acc_history
