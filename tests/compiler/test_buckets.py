"""The allreduce bucket pass: buckets follow the planned backward order, each gradient is
reduced once, after the last backward step that adds to it, and describe() says where."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.compiler.buckets import MB, plan_buckets
from dagnet.errors import DagnetError
from dagnet.models import get_model
from tests.compiler import nets


def contributors(plan) -> dict:
    """{param: backward positions of the steps that add to its gradient}."""
    out = {}
    for k, s in enumerate(plan.backward_steps):
        for src, need in zip(s.inputs, s.needs):
            if need and src in plan.params:
                out.setdefault(src, []).append(k)
    return out


@pytest.mark.parametrize("mb", [1e-6, 0.01, 1.0, 4.0, 1000.0])
@pytest.mark.parametrize("model", ["lenet", "resnet_small"])
def test_each_gradient_once_after_its_last_contribution(model, mb):
    plan = dagnet.compile(get_model(model), bucket_mb=mb)
    meta = plan.bucket_plan
    packed = [p for b in meta["buckets"] for p in b["params"]]
    assert sorted(packed) == sorted(plan.params) and not meta["no_grad"]
    last = {p: max(ks) for p, ks in contributors(plan).items()}
    order = [s.name for s in plan.backward_steps]
    for b in meta["buckets"]:
        assert b["after"] == order[b["position"]]
        # started once all of its gradients are final, and not later than the last of them
        assert b["position"] == max(last[p] for p in b["params"])
        assert b["bytes"] == sum(plan.params[p].nbytes for p in b["params"])
    # buckets start in backward order, and gradients are packed in the order they finish
    positions = [b["position"] for b in meta["buckets"]]
    assert positions == sorted(positions)
    assert [last[p] for p in packed] == sorted(last[p] for p in packed)


def test_thresholds_close_buckets():
    g = get_model("lenet")
    one = dagnet.compile(g, bucket_mb=1000.0).bucket_plan["buckets"]
    # the first bucket closes at 1 MiB at most, and fc1's weights alone are 1.5 MiB
    assert [b["after"] for b in one] == ["fc1+relu3", "conv1+relu1+pool1"]
    plan = dagnet.compile(g, bucket_mb=1e-9)
    with_params = [s.name for s in plan.backward_steps if set(s.inputs) & set(plan.params)]
    assert [b["after"] for b in plan.bucket_plan["buckets"]] == with_params
    assert len(with_params) == 4  # scores, fc1, conv2, conv1
    buckets = dagnet.compile(g, bucket_mb=4.0).bucket_plan["buckets"]
    assert buckets[0]["bytes"] >= MB and buckets[0]["after"] == "fc1+relu3"
    assert buckets[1]["params"] == ["conv2.w", "conv2.b", "conv1.w", "conv1.b"]


def test_first_bucket_size_is_its_own():
    g = get_model("lenet")
    compiled = dagnet.compile(g)
    tiny = plan_buckets(compiled.graph, bucket_bytes=10 * MB, first_bytes=1)
    assert tiny.meta["buckets"]["buckets"][0]["params"] == ["scores.w", "scores.b"]


def test_shared_param_waits_for_its_last_use():
    g = Graph("tied")
    x = g.input("x", (6,))
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.affine(x, 6, name="fc1"), name="r1")
    h = g.relu(g.affine(h, 6, name="fc2", w="fc1.w"), name="r2")  # fc1's weights again
    g.softmax_cross_entropy(g.affine(h, 3, name="fc3"), y)
    plan = dagnet.compile(g, dtype="float64", bucket_mb=1e-9, fuse=False)
    where = {p: b["after"] for b in plan.bucket_plan["buckets"] for p in b["params"]}
    # fc2 runs after fc1 in forward, so fc1 is the later of the two in backward
    assert where["fc1.w"] == "fc1" and where["fc2.b"] == "fc2"
    # before fc1's backward (fc1 is the last step: its bucket starts after the sweep), fc1.w's
    # gradient holds fc2's part alone: a bucket started there would reduce half of it
    from dagnet.runtime import Executor

    class Watch(Executor):
        seen = {}

        def step_backward(self, step, dout, cache):
            self.seen[step.name] = np.array(self.grads.get("fc1.w", 0.0))  # before this step
            return super().step_backward(step, dout, cache)

    ex = Watch(plan)
    ex.forward(nets.feeds_for(g), "train", plan.losses)
    full = ex.backward({plan.losses[0]: np.asarray(1.0)})["fc1.w"]
    assert [s.name for s in plan.backward_steps][-1] == "fc1"
    assert np.abs(Watch.seen["fc1"]).sum() > 0 and not np.allclose(Watch.seen["fc1"], full)


def test_pass_is_pure_and_needs_autodiff():
    compiled = dagnet.compile(get_model("lenet")).graph
    before = dict(compiled.meta)
    out = plan_buckets(compiled, MB)
    assert "buckets" in out.meta and compiled.meta == before
    eval_graph = dagnet.compile(get_model("lenet"), mode="eval").graph
    with pytest.raises(DagnetError, match="after plan_backward"):
        plan_buckets(eval_graph, MB)
    with pytest.raises(DagnetError, match="> 0 bytes"):
        plan_buckets(compiled, 0)


def test_describe_shows_buckets_and_where_they_start():
    plan = dagnet.compile(get_model("lenet"), bucket_mb=4.0)
    text = plan.describe()
    assert "allreduce buckets (2" in text
    assert "bucket 0: 1,584.0 KiB, starts after backward step 3/5 'fc1+relu3'" in text
    row = next(line for line in text.splitlines() if line.startswith("2 "))
    assert "allreduce bucket 0 starts after its backward" in row
    assert "allreduce" not in dagnet.compile(get_model("lenet")).describe()


def test_plan_diagram_marks_where_each_allreduce_starts():
    from dagnet.viz import render_plan

    plan = dagnet.compile(get_model("lenet"), bucket_mb=4.0)
    source = render_plan(plan, show_backward=True).source
    assert "2 allreduce buckets" in source
    assert "starts allreduce of bucket 0 (1.5 MB)" in source
    assert "starts allreduce of bucket 1" in source
    assert "allreduce" not in render_plan(dagnet.compile(get_model("lenet")), show_backward=True).source
