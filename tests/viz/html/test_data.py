"""The explorer's data: graph, plan, groups, memory, film strip and run, as the page reads them."""
import dagnet
from dagnet.graph import PARAM
from dagnet.viz import live_bytes
from dagnet.viz.graph import AUTO_FOLD_OPS, annotated
from dagnet.viz.html import explorer_data, run_data
from dagnet.viz.html.filmstrip import frames
from tests.viz import lenet, resnet
from tests.viz.html import chain, replay


def test_graph_nodes_fold_params_into_their_ops():
    g = lenet()
    d = explorer_data(g)["graph"]
    assert [n["name"] for n in d["nodes"]] == [n.name for n in g if n.op != PARAM]
    conv1 = next(n for n in d["nodes"] if n["name"] == "conv1")
    assert conv1["shape"] == [20, 24, 24] and conv1["params"] == 520 and conv1["ports"] == ["x", "w", "b"]
    assert d["params"]["conv1.w"] == {"shape": [20, 1, 5, 5], "count": 500, "init": "he", "decay": True,
                                      "users": ["conv1"]}
    assert d["total_params"] == sum(p.meta["params"] for p in annotated(g) if p.op == PARAM)


def test_plan_steps_carry_fusion_kernels_buffers_and_lifetimes():
    plan = dagnet.compile(lenet())
    d = explorer_data(plan)
    steps = d["plan"]["steps"]
    assert [s["name"] for s in steps] == [s.name for s in plan.steps]
    first = steps[0]
    assert first["pattern"] == "conv2d+relu+max_pool2d" and first["members"] == ["conv1", "relu1", "pool1"]
    assert first["kernel"] == plan.kernel_note(plan.steps[0]) != ""
    assert first["buffer"] == plan.steps[0].buffer and first["live"] == list(plan.graph.node(first["name"]).meta["live"])
    assert first["bytes"] == 20 * 12 * 12 * 4
    assert first["skips"] == ["x"]  # nothing needs the input's gradient
    assert d["plan"]["backward"]["order"] == [s.name for s in plan.backward_steps]


def test_groups_nest_runs_blocks_fused_steps_and_near_misses():
    plan = dagnet.compile(resnet(blocks=3))
    groups = {g["id"]: g for g in explorer_data(plan)["groups"]["plan"]}
    assert groups["run0"]["label"] == "b × 3" and groups["run0"]["parent"] is None
    assert [groups[f"run0/{k}"]["parent"] for k in range(3)] == ["run0"] * 3
    fused = [g for g in groups.values() if g["kind"] == "fused"]
    assert fused and all(g["collapsible"] and g["step"] is not None for g in fused)
    inside = [g for g in fused if g["members"][0].startswith("b2.")]
    assert inside and all(g["parent"] == "run0/1" for g in inside)
    misses = [g for g in groups.values() if g["kind"] == "miss"]
    assert len(misses) == len(plan.graph.meta["fusion"]["near_misses"]) > 0
    # conv2d+batchnorm's mode miss, and each block's output feeding the next block's conv and
    # add (the generic chain bn+add+relu stops there)
    assert all("batchnorm" in g["lines"][0] or "must be kept" in " ".join(g["lines"]) for g in misses)


def test_big_graphs_open_with_their_runs_folded():
    small, big = resnet(blocks=2), resnet(blocks=10)
    assert sum(1 for n in big if n.op not in ("input", "param")) > AUTO_FOLD_OPS
    for g, folded in ((small, False), (big, True)):
        runs = [x for x in explorer_data(g, passes=False)["groups"]["graph"] if x["kind"] == "run"]
        assert runs and all(r["collapsed"] is folded for r in runs)


def test_memory_bars_and_live_bytes_match_the_plan():
    plan = dagnet.compile(lenet())
    mem = explorer_data(plan)["memory"]
    values, work = live_bytes(plan)
    assert mem["values"] == [int(v) for v in values] and mem["work"] == [int(w) for w in work]
    bars = mem["bars"]
    assert sum(b["kind"] == "value" for b in bars) == len(plan.steps)
    assert sum(b["kind"] == "workspace" for b in bars) == len(plan.graph.meta["memory"]["workspaces"])
    planned = [b for b in bars if b["kind"] == "workspace" and b["buffer"] is not None]
    assert planned and all(str(b["buffer"]) in mem["buffers"] for b in planned)
    assert mem["peak"] == plan.graph.meta["memory"]["total"]["peak"] and mem["timeline"] == 2 * len(plan.steps)


def test_film_strip_deltas_replay_to_every_pass():
    g = lenet()
    strip = frames(g)
    assert [f["pass"] for f in strip] == ["declared", "validate", "infer_shapes", "prune", "fuse", "schedule",
                                          "autodiff", "memory"]
    snapshots = []
    dagnet.compiler.run_passes(g, trace=lambda name, s: snapshots.append(s))
    assert replay(strip)[1:] == [[n.name for n in s if n.op != PARAM] for s in snapshots]
    fuse = strip[4]
    assert {n["name"] for n in fuse["set"]} >= {"conv1+relu1+pool1", "conv2+relu2+pool2"}
    assert "conv1" in fuse["removed"] and fuse["counts"]["added"] == 3
    assert strip[2]["annotated"]["conv1"]["flops"] == "576,000"  # infer_shapes annotates every node


def test_a_graph_that_does_not_compile_keeps_its_declared_view():
    g = lenet()
    g.outputs = ["nowhere"]
    d = explorer_data(g)
    assert d["plan"] is None and d["passes"] is None and "not compiled" in d["subtitle"]
    assert len(d["graph"]["nodes"]) == sum(1 for n in g if n.op != PARAM)


def test_timings_become_times_and_heat_colors():
    plan = dagnet.compile(lenet())
    timings = {s.name: {"forward": 0.001 * (i + 1), "backward": 0.002} for i, s in enumerate(plan.steps)}
    t = explorer_data(plan, timings=timings)["plan"]["timings"]
    slowest = max(t["steps"].values(), key=lambda x: x["total"])
    assert slowest["total"] == t["slowest"] and t["total"] == sum(x["total"] for x in t["steps"].values())
    assert len({x["heat"] for x in t["steps"].values()}) == len(plan.steps)  # one shade per time


def test_run_data_reads_the_recipe_and_the_final_metrics():
    history = {"loss_history": [2.0, 1.0, 0.6, 0.4], "train_acc_history": [0.5, 0.8], "val_acc_history": [0.6, 0.7],
               "epoch_times": [3.0, 5.0], "best_val_acc": 0.7, "epoch": 2}
    solver = {"update_rule": "sgd_momentum", "schedule": {"name": "cosine", "learning_rate": 0.04, "per": "step"},
              "batch_size": 64, "num_epochs": 2, "weight_decay": 0.0, "seed": 0, "rng": {"state": 1},
              **history}
    run = run_data(history, solver, {"data": "fashion-mnist", "num_val": 5000, "split_seed": 0,
                                     "normalization": {"mean": [0.28], "std": [0.35]}})
    recipe, metrics = dict(run["recipe"]), dict(run["metrics"])
    assert recipe["update rule"] == "sgd_momentum" and recipe["learning rate"] == "0.04"
    assert recipe["schedule"] == "cosine (per step)" and recipe["batch size"] == "64" and "rng" not in recipe
    assert recipe["data"] == "fashion-mnist" and recipe["input mean"] == "0.28"
    assert metrics["loss (mean of the last epoch)"] == "0.5000" and metrics["best val accuracy"] == "0.7000 (epoch 2)"
    assert metrics["time per epoch"] == "4.0 s (total 8 s)"


def test_a_thousand_node_chain_folds_and_keeps_every_node():
    g = chain(500)
    d = explorer_data(g, passes=False)
    assert len(d["graph"]["nodes"]) == 1003 and d["graph"]["ops"] == 1001  # x, y, 1,000 ops and the loss
    (run,) = [x for x in d["groups"]["plan"] if x["kind"] == "run"]
    assert run["collapsed"] and run["label"] == "l × 499"
