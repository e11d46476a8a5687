"""Random DAGs with fan-out and merges (add, concat), element-wise and broadcasting ops (the
chains the generic elementwise fusion groups: per-channel bias and scale params, products,
differences, gates through a comparison), batchnorm, small convs, pooling and affine layers
compile, and their fused and unfused plans agree with the reference interpreter (float64,
1e-10), in train mode (loss and every gradient) and in eval mode.

DAGNET_FUZZ_EXAMPLES=2000 runs more graphs than CI's 150 (the same first 150, then more)."""
import copy
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagnet
from dagnet import Graph
from dagnet.compiler.params import init_params, init_state
from dagnet.interpreter import interpret
from dagnet.interpreter import loss_and_grads as interpret_loss_and_grads

COUNTS = Counter()
TOL = 1e-10

EXAMPLES = int(os.environ.get("DAGNET_FUZZ_EXAMPLES", "150"))

KINDS = ["conv1", "conv3", "conv_relu", "conv_bn_relu", "relu", "tanh", "sigmoid", "leaky_relu",
         "elu", "add", "add3", "concat", "bn", "bias", "scale", "mul", "sub", "gelu", "neg",
         "gate"]


@st.composite
def random_dags(draw):
    """A Graph on a (C, H, W) input whose values all keep H x W, so any two can merge; every
    op reads a randomly chosen earlier value (fan-out), then a head that pools, flattens and
    classifies. Returns (graph, number of ops)."""
    c, hw = draw(st.integers(1, 3)), draw(st.sampled_from([4, 6]))
    g = Graph("random")
    x = g.input("x", (c, hw, hw))
    y = g.input("y", (), dtype="int64")
    values = [(x, c)]  # (node, channels); all of spatial size hw x hw
    pick = lambda: values[draw(st.integers(0, len(values) - 1))]  # noqa: E731
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(KINDS))
        src, ch = pick()
        name = f"n{i}"
        if kind in ("conv1", "conv3", "conv_relu", "conv_bn_relu"):
            size = 1 if kind == "conv1" else 3
            f = draw(st.integers(1, 3))
            h = g.conv2d(src, f, size, pad=size // 2, init="xavier", name=f"{name}.conv")
            if kind == "conv_bn_relu":
                h = g.batchnorm(h, name=f"{name}.bn")
            if kind in ("conv_relu", "conv_bn_relu"):
                h = g.relu(h, name=f"{name}.relu")
            values.append((h, f))
        elif kind == "bn":
            values.append((g.batchnorm(src, name=name), ch))
        elif kind in ("add", "add3"):
            same = [v for v in values if v[1] == ch]
            k = 2 if kind == "add" else 3
            others = [same[draw(st.integers(0, len(same) - 1))][0] for _ in range(k - 1)]
            values.append((g.add(src, *others, name=name), ch))  # may be add(v, v): two edges
        elif kind in ("bias", "scale"):  # an unbatched (C, 1, 1) param broadcast over H x W
            p = g.param(f"{name}.p", (ch, 1, 1), init="uniform", low=0.5, high=1.5)
            values.append(((g.add if kind == "bias" else g.mul)(src, p, name=name), ch))
        elif kind in ("mul", "sub", "gate"):
            same = [v for v in values if v[1] == ch]
            other = same[draw(st.integers(0, len(same) - 1))][0]
            if kind == "gate":  # the link through a comparison passes no gradient
                h = g.where(g.greater(src, 0.0, name=f"{name}.pos"), src, other, name=name)
            else:
                h = getattr(g, kind)(src, other, name=name)  # may be mul(v, v): two edges
            values.append((h, ch))
        elif kind == "concat":
            other, och = pick()
            if ch + och <= 8:
                values.append((g.concat(src, other, name=name), ch + och))
        else:
            op = getattr(g, kind)
            values.append((op(src, name=name), ch))
    h, ch = values[-1] if draw(st.booleans()) else pick()
    head = draw(st.sampled_from(["pool", "relu_pool", "flatten", "gap"]))
    if head == "relu_pool":  # conv+relu+max_pool2d can fuse when h is a conv
        h = g.max_pool2d(g.relu(h, name="head.relu"), 2, name="head.pool")
    elif head == "pool":
        h = g.max_pool2d(h, 2, name="head.pool")
    elif head == "gap":
        h = g.global_avg_pool(h, name="head.gap")
    if draw(st.booleans()):  # affine+relu fusion
        h = g.relu(g.affine(h, 5, init="xavier", name="fc1"), name="fc1.relu")
    g.softmax_cross_entropy(g.affine(h, 3, init="xavier", name="scores"), y)
    return g


def feeds_for(g, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = next(node for node in g.inputs if node.name == "x")
    return {"x": rng.standard_normal((n,) + tuple(x.attrs["shape"])), "y": rng.integers(0, 3, n)}


def close(a, b):
    return np.allclose(a, b, rtol=TOL, atol=1e-12)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nrandom DAGs: {COUNTS['graphs']} graphs, {COUNTS['ops']} op nodes, "
          f"{COUNTS['fused']} fused steps, {COUNTS['generic']} of them generic chains "
          f"({COUNTS['fan_out']} values with fan-out, "
          f"{COUNTS['merges']} merges), all equal to the interpreter within {TOL:g}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_dags(), st.integers(0, 2 ** 16))
def test_fused_and_unfused_plans_agree_with_the_interpreter(g, seed):
    feeds = feeds_for(g, seed=seed)
    params = init_params(g, seed, "float64")  # every param, pruned ones too (the interpreter runs all)
    fused = dagnet.compile(g, dtype="float64", seed=seed, params=params)
    unfused = dagnet.compile(g, dtype="float64", seed=seed, fuse=False, params=params)
    state0 = init_state(g, "float64")
    loss_f, grads_f = fused.loss_and_grads(feeds)
    loss_u, grads_u = unfused.loss_and_grads(feeds)
    loss_i, grads_i = interpret_loss_and_grads(g, feeds, params, copy.deepcopy(state0), seed=seed)
    assert abs(loss_f - loss_i) <= TOL * max(1, abs(loss_i)), (loss_f, loss_i)
    assert abs(loss_u - loss_i) <= TOL * max(1, abs(loss_i)), (loss_u, loss_i)
    assert set(grads_f) == set(grads_u) == set(fused.params)
    for p in grads_f:
        assert close(grads_f[p], grads_i[p]), p
        assert close(grads_u[p], grads_i[p]), p
    # eval mode (conv + batchnorm folds here) against the interpreter with the same statistics
    ev = dagnet.compile(g, dtype="float64", mode="eval", params=params,
                        state=copy.deepcopy(fused.state))
    values, _ = interpret(g, feeds, params, copy.deepcopy(fused.state), mode="eval")
    assert close(ev.predict(feeds["x"]), values["scores"])
    users = g.consumer_map()
    COUNTS["graphs"] += 1
    COUNTS["ops"] += sum(1 for n in g if n.op not in ("input", "param"))
    COUNTS["fused"] += sum(s.fused for s in fused.steps) + sum(s.fused for s in ev.steps)
    COUNTS["generic"] += sum(s.op_name == "fused_elementwise" for s in [*fused.steps, *ev.steps])
    COUNTS["fan_out"] += sum(1 for n in g if n.op not in ("param",) and len(users.get(n.name, [])) > 1)
    COUNTS["merges"] += sum(1 for n in g if n.op in ("add", "concat"))
