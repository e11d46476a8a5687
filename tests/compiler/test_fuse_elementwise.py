"""Generic elementwise fusion: chains grouped by fusion kind after the hand-written patterns,
structurally (before -> expected) and numerically (check=True, fused vs unfused plans)."""
import importlib

import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.compiler import infer_shapes, validate
from dagnet.compiler.fuse import fuse
from dagnet.ops import get_op
from dagnet.ops.fused_elementwise import inplace_plan
from tests.compiler import nets

fuse_module = importlib.import_module("dagnet.compiler.fuse")  # the module, not the function


@pytest.fixture(autouse=True)
def elementwise_fusion(monkeypatch):
    """The grouping is off by default (compiler/fuse.py says why): these tests turn it on."""
    monkeypatch.setattr(fuse_module, "ELEMENTWISE", True)



def run_fuse(g, **kw):
    return fuse(infer_shapes(validate(g)), **kw)


def residual_join():
    """bn -> add(skip) -> relu, the skip joining on port 1; x * sigmoid(x) on port 1 too."""
    g = Graph("join")
    x = g.input("x", (3, 4))
    h = g.batchnorm(g.affine(x, 3, name="fc"), name="bn")
    r = g.relu(g.add(h, g.sigmoid(h, name="gate"), name="sum"), name="r")
    g.mul(g.input("s", (3,), batched=False), r, name="scaled")
    return g


def test_structure_records_link_ports_arities_and_shapes():
    got = run_fuse(residual_join())
    # bn has two users (add, gate): the chain starts after it
    fused = {f["node"]: f for f in got.meta["fusion"]["fused"]}
    assert list(fused) == ["gate+sum+r+scaled"]
    node = got.node("gate+sum+r+scaled")
    assert node.op == "fused_elementwise" and node.inputs == ["bn", "bn", "s"]
    assert node.meta["pattern"] == "elementwise(sigmoid+add+relu+mul)"
    records = node.attrs["members"]
    assert [(r["name"], r["port"], r["arity"], r["shape"], r["batched"]) for r in records] == [
        ("gate", None, 1, [3], True), ("sum", 1, 2, [3], True), ("r", 0, 1, [3], True),
        ("scaled", 1, 2, [3], True)]
    miss = next(m for m in got.meta["fusion"]["near_misses"] if m["pattern"] == "elementwise")
    assert miss["nodes"] == ["bn", "gate"] and "'bn' has 2 users (gate, sum)" in miss["reason"]


def test_hand_written_patterns_keep_priority():
    g = Graph("p")
    x = g.input("x", (4,))
    h = g.relu(g.affine(x, 4, name="fc"), name="relu")          # affine+relu: hand-written
    g.tanh(g.add(h, 1.0, name="b"), name="t")                    # then the generic chain
    got = run_fuse(g)
    assert [f["pattern"] for f in got.meta["fusion"]["fused"]] == ["affine+relu",
                                                                    "elementwise(add+tanh)"]
    monkey = run_fuse(g, elementwise=False)
    assert [f["pattern"] for f in monkey.meta["fusion"]["fused"]] == ["affine+relu"]


def test_an_anchor_starts_a_chain_and_outputs_block_it():
    g = Graph("a")
    x = g.input("x", (3, 4))
    m = g.matmul(x, g.param("w", (4, 5)), name="mm")
    t = g.tanh(g.add(m, np.zeros(5), name="bias"), name="t")
    g.outputs = [t, "bias"]
    got = run_fuse(g)
    assert [f["members"] for f in got.meta["fusion"]["fused"]] == [["mm", "bias"]]
    assert any(m["reason"] == "'bias' is a requested output" for m in got.meta["fusion"]["near_misses"])


def test_random_stateful_and_non_chainable_ops_stay_out():
    g = Graph("o")
    x = g.input("x", (4,))
    h = g.dropout(g.relu(g.sub(x, 1.0, name="s"), name="r"), 0.5, name="d")
    h = g.sum(g.exp(h, name="e"), axes=[1], keepdims=True, name="total")
    g.argmax(g.tanh(g.reshape(h, [1], name="view"), name="t"), axis=1, name="label")
    got = run_fuse(g)
    # a reduction ends a chain (TVM fuses an elementwise producer into it); a view (reshape)
    # and an int64 output (argmax) stay out, so tanh stands alone
    assert [f["members"] for f in got.meta["fusion"]["fused"]] == [["s", "r"], ["e", "total"]]


def test_injective_members_join_and_are_never_written_over():
    g = Graph("inj")
    x, y = g.input("x", (2, 4, 4)), g.input("y", (), dtype="int64")
    h = g.concat(g.relu(x, name="r"), x, name="cat")          # concat links on port 0
    h = g.global_avg_pool(g.tanh(h, name="t"), name="gap")     # the reduction ends the chain
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    got = run_fuse(g)
    assert [f["pattern"] for f in got.meta["fusion"]["fused"]] == [
        "elementwise(relu+concat+tanh+global_avg_pool)"]
    records = got.node("r+cat+t+gap").attrs["members"]
    # concat moves elements: never over relu's value; tanh over concat's is fine in eval
    assert inplace_plan(records, train=False) == ([False, False, True, False], 3)
    plan = dagnet.compile(g, dtype="float64", check=True)
    nets.assert_plans_agree(plan, dagnet.compile(g, dtype="float64", fuse=False), nets.feeds_for(g))


def chains():
    """Graphs whose generic chains cover anchors, broadcasting, variadic add, links on port 1
    and through a comparison, unbatched params and constants; each ends in a loss."""
    out = {}
    g = Graph("mlp")
    x, y = g.input("x", (6,)), g.input("y", (), dtype="int64")
    h = g.matmul(x, g.param("w", (6, 5), init="xavier", fan_in=6, fan_out=5), name="mm")
    h = g.mul(g.tanh(g.add(h, g.param("b", (5,), init="ones"), name="bias"), name="t"), 0.5,
              name="half")
    h = g.add(h, np.linspace(0, 1, 5), g.param("c", (5,), init="ones"), name="shift")
    g.softmax_cross_entropy(g.sigmoid(h, name="sig"), y)
    out["mlp"] = g
    g = Graph("gated")
    x, y = g.input("x", (4, 5)), g.input("y", (), dtype="int64")
    a = g.affine(x, 5, name="fc")
    keep = g.greater(a, 0.0, name="pos")
    h = g.maximum(g.exp(g.neg(a, name="n"), name="e"), 0.5, name="mx")
    g.softmax_cross_entropy(g.mul(h, g.where(keep, 1.0, 2.0, name="w2"), name="scale"), y)
    out["gated"] = g
    g = Graph("bn_join")
    x, y = g.input("x", (2, 5, 5)), g.input("y", (), dtype="int64")
    h = g.batchnorm(g.conv2d(x, 2, 3, pad=1, name="conv"), name="bn")
    h = g.relu(g.add(h, x, name="add"), name="relu")
    g.softmax_cross_entropy(g.affine(h, 3, name="fc"), y)
    out["bn_join"] = g
    out["residual"] = nets.residual()
    return out


@pytest.mark.parametrize("name", ["mlp", "gated", "bn_join", "residual"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fused_chains_match_their_unfused_members(name, mode):
    g = chains()[name]
    if mode == "train":
        plan = dagnet.compile(g, dtype="float64", check=True)  # each fused step vs its chain
        # bn_join's batchnorm -> add -> relu is the registered residual join's (ops/fused.py)
        want = (lambda p: p == "batchnorm+add+relu") if name == "bn_join" else \
            (lambda p: p.startswith("elementwise("))
        assert any(s.pattern and want(s.pattern) for s in plan.steps), plan.fusion_report()
        feeds = nets.feeds_for(g)
        nets.assert_plans_agree(plan, dagnet.compile(g, dtype="float64", fuse=False), feeds)
        return
    scores = g.node("loss").inputs[0]
    a = dagnet.compile(g, dtype="float64", mode=mode, outputs=[scores])
    b = dagnet.compile(g, dtype="float64", mode=mode, outputs=[scores], fuse=False, params=a.params)
    assert any(s.pattern and s.pattern.startswith("elementwise(") for s in a.steps)
    feeds = {k: v for k, v in nets.feeds_for(g).items() if k != "y"}
    np.testing.assert_allclose(a.forward(feeds)[scores], b.forward(feeds)[scores], rtol=1e-12)


def test_members_write_over_values_no_backward_reads():
    records = [{"op": "add", "shape": [4], "batched": True},
               {"op": "relu", "shape": [4], "batched": True},
               {"op": "mul", "shape": [4], "batched": True},
               {"op": "exp", "shape": [4], "batched": True},
               {"op": "add", "shape": [3, 4], "batched": True}]
    over, root = inplace_plan(records, train=True)
    # relu over add (add keeps no input); mul keeps its inputs: a new array; exp over it
    # (mul saves inputs, not its output); the last add broadcasts to a larger shape
    assert over == [False, True, False, True, False] and root == 4
    assert inplace_plan(records[:4], train=True) == ([False, True, False, True], 2)
    assert inplace_plan(records[:4], train=False) == ([False, True, True, True], 0)
    op = get_op("fused_elementwise")
    attrs = {"members": [dict(r, name=f"m{i}", attrs={}, arity=2 if r["op"] in ("add", "mul") else 1,
                              port=None if i == 0 else 0) for i, r in enumerate(records[:4])]}
    w = op.workspace([(4,), (4,), (4,)], (4,), attrs)
    assert (w.elements, w.saved) == (4, 4)  # relu's output, which mul reads back


def test_check_names_a_generic_group_whose_kernel_is_wrong(monkeypatch):
    from dagnet.errors import FusionMismatchError

    g = chains()["gated"]
    calls = {"n": 0}
    real = get_op("fused_elementwise").backward

    def wrong(self, dout, cache, attrs, needs=None):
        calls["n"] += 1
        return tuple(None if g is None else g * 1.01 for g in real(dout, cache, attrs, needs))

    monkeypatch.setattr(type(get_op("fused_elementwise")), "backward", wrong)
    with pytest.raises(FusionMismatchError, match=r"elementwise\("):
        dagnet.compile(g, dtype="float64", check=True)
    assert calls["n"]


def test_max_members_caps_a_chain(monkeypatch):
    monkeypatch.setattr(fuse_module, "MAX_MEMBERS", 3)
    g = Graph("long")
    h = g.input("x", (2,))
    for i in range(7):
        h = g.tanh(h, name=f"t{i}")
    got = run_fuse(g)
    assert [len(f["members"]) for f in got.meta["fusion"]["fused"]] == [3, 3]


def test_export_writes_a_generic_chain_as_its_members(tmp_path):
    pytest.importorskip("onnx")
    from dagnet.onnx import export, load

    g = chains()["bn_join"]
    plan = dagnet.compile(g, dtype="float64", mode="eval")
    assert any(s.op_name == "fused_elementwise" for s in plan.steps)
    model = export(plan, tmp_path / "m.onnx")
    assert [n.op_type for n in model.graph.node][-4:] == ["Add", "Relu", "Flatten", "Gemm"]
    back = load(tmp_path / "m.onnx")
    b = dagnet.compile(back, mode="eval", dtype="float64")
    x = nets.feeds_for(g)["x"]
    want = dagnet.compile(g, mode="eval", dtype="float64", params=plan.params, state=plan.state,
                          outputs=["fc"]).forward({"x": x})["fc"]
    np.testing.assert_allclose(b.forward({"x": x})[b.outputs[0]], want, rtol=1e-10)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_member_linked_on_a_later_port_does_not_write_over_its_link(mode):
    """The fuzz's find: add(b, b, a) fused after a's conv wrote b + b over a's value before
    adding it (a variadic add accumulates into `out`); the op contract lets `out` alias port
    0 only, so a member linked on another port gets an array of its own."""
    g = Graph("late_port")
    x, y = g.input("x", (1, 4, 4)), g.input("y", (), dtype="int64")
    a, b = g.conv2d(x, 2, 1, name="a"), g.conv2d(x, 2, 1, name="b")
    h = g.add(b, b, a, name="s")
    g.softmax_cross_entropy(g.affine(h, 3, name="scores"), y)
    fused = dagnet.compile(g, dtype="float64", mode=mode)
    assert [s.pattern for s in fused.steps if s.fused] == ["elementwise(conv2d+add)"]
    unfused = dagnet.compile(g, dtype="float64", mode=mode, fuse=False, params=fused.params,
                             state=fused.state)
    feeds = nets.feeds_for(g)
    if mode == "train":
        nets.assert_plans_agree(fused, unfused, feeds)
    else:
        np.testing.assert_allclose(fused.predict(feeds["x"]), unfused.predict(feeds["x"]),
                                   rtol=1e-12)
    conv_add = [{"op": "conv2d", "shape": [2, 4, 4], "batched": True, "port": None},
                {"op": "add", "shape": [2, 4, 4], "batched": True, "port": 2}]
    assert inplace_plan(conv_add, train=False) == ([False, False], 1)
    assert inplace_plan([conv_add[0], dict(conv_add[1], port=0)], train=False) == ([False, True], 0)


def _ops_written_over():
    from dagnet.ops.base import registered_ops
    from dagnet.ops.fused_elementwise import chainable, writes_over
    return sorted(n for n, op in registered_ops().items() if chainable(op) and writes_over(op))


@pytest.mark.parametrize("name", _ops_written_over())
def test_every_chainable_op_may_write_over_its_port_0(name):
    """What the in-place plan relies on (inplace_plan): forward with out=inputs[0] gives what
    it gives into a fresh array, for every op a chain may write over its link."""
    op = get_op(name)
    arity = op.arity if isinstance(op.arity, int) else op.arity[0] + 1
    rng = np.random.default_rng(1)
    inputs = [rng.uniform(0.5, 2.0, (3, 4)) for _ in range(arity)]
    attrs = {"clip": {"min": 0.7, "max": 1.5}}.get(name, {})
    want, _ = op.forward([x.copy() for x in inputs], attrs, mode="eval")
    given = [x.copy() for x in inputs]
    got, _ = op.forward(given, attrs, mode="eval", out=given[0])
    assert got is given[0]
    np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=name)
