"""The pipeline as data: the pass list, the lint after every pass, the meta-key table."""
import copy

import pytest

import dagnet
from dagnet.compiler import META, PASSES, LintError, lint, pipeline, run_passes
from dagnet.compiler.meta import GRAPH_KEYS, NODE_KEYS, table
from tests.compiler import nets

OPTIONS = [dict(), dict(fuse=False), dict(mode="eval"), dict(mode="eval", fuse=False),
           dict(wrt=["x"]), dict(inplace=False), dict(bucket_mb=0.001)]


def passes_run(graph, **options):
    names = []
    run_passes(graph, trace=lambda name, g: names.append(name), **options)
    return names


def test_the_passes_are_a_list_walked_in_order_under_their_conditions():
    assert [p.name for p in PASSES] == ["validate", "infer_shapes", "prune", "fuse", "schedule",
                                        "autodiff", "forward_mode", "memory", "buckets"]
    assert {p.name: p.condition for p in PASSES if p.condition} == {
        "fuse": "fuse=True", "autodiff": "mode=train", "forward_mode": "forward_mode=True",
        "buckets": "mode=train, buckets=True"}
    g = nets.residual()
    everything = [p.name for p in PASSES]
    assert passes_run(g) == [p for p in everything if p not in ("forward_mode", "buckets")]
    assert passes_run(g, bucket_mb=4) == [p for p in everything if p != "forward_mode"]
    small = dagnet.Graph("small")
    small.exp(small.input("x", (3,)), name="e")
    assert passes_run(small, fuse=False, jvp=["x"]) == ["validate", "infer_shapes", "prune",
                                                    "schedule", "autodiff", "forward_mode",
                                                    "memory"]
    assert passes_run(g, fuse=False) == ["validate", "infer_shapes", "prune", "schedule",
                                         "autodiff", "memory"]
    assert passes_run(g, mode="eval") == ["validate", "infer_shapes", "prune", "fuse",
                                          "schedule", "memory"]


def test_the_tests_lint_every_compile():
    """conftest.py switches the lint on: a pass that leaves an undeclared key fails compile."""
    assert pipeline.LINT is True
    bad = pipeline.Pass("prune", lambda g, o: _with_meta(pipeline.prune(g, o.outputs), "scratch"))
    passes = tuple(bad if p.name == "prune" else p for p in PASSES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "PASSES", passes)
        with pytest.raises(LintError, match=r"after pass 'prune': 'x' has meta keys \['scratch'\] "
                                             r"not declared in compiler/meta.py"):
            dagnet.compile(nets.two_layer())
        pipeline.run_passes(nets.two_layer(), lint=False)  # the flag turns it off


def _with_meta(g, key):
    g.node("x").meta[key] = 1
    return g


def compiled_graph(**options):
    return run_passes(nets.residual(), **options)


@pytest.mark.parametrize("damage, message", [
    (lambda g: g.node("fc").meta.pop("buffer"), r"'fc' lacks meta 'buffer' \(written by memory\)"),
    (lambda g: g.meta.pop("backward"), r"graph.meta lacks 'backward', which pass 'autodiff'"),
    (lambda g: g.meta.update(notes=1), r"graph.meta key 'notes' is not declared"),
    (lambda g: setattr(g.node("fc"), "inputs", ["nowhere"] + g.node("fc").inputs[1:]),
     r"'fc' reads 'nowhere', which is not a node of the graph"),
    (lambda g: g.node("fc").meta.update(step=0), r"op nodes are not numbered 0..\d+ in order"),
    (lambda g: g.node("stem+stem_bn+stem_relu").attrs["members"].pop(),
     r"fused node 'stem\+stem_bn\+stem_relu' has 2 members for the chain"),
    (lambda g: setattr(g, "outputs", g.outputs + ["gone"]), r"outputs \['gone'\] are not nodes"),
])
def test_lint_finds_each_broken_invariant(damage, message):
    g = compiled_graph()
    ran = passes_run(nets.residual())
    lint(g, ran)  # a compiled graph is clean
    damage(g)
    with pytest.raises(LintError, match=r"after pass 'memory': " + message):
        lint(g, ran)


def test_lint_knows_the_order_of_a_scheduled_graph():
    g = compiled_graph()
    nodes = list(g)
    fc = next(i for i, n in enumerate(nodes) if n.name == "fc")
    g.reorder([n.name for n in [nodes[fc]] + nodes[:fc] + nodes[fc + 1:]])
    with pytest.raises(LintError, match="scheduled 'fc' comes before its input"):
        lint(g, ["validate", "infer_shapes", "prune", "fuse", "schedule"])


@pytest.mark.parametrize("name", sorted(nets.ALL))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_every_pass_writes_only_the_keys_the_table_gives_it(name, options):
    g = nets.ALL[name]()
    before = {"graph": copy.copy(g.meta), "nodes": {n.name: dict(n.meta) for n in g}}
    written = []

    def trace(pass_name, graph):
        nonlocal before
        for key, value in graph.meta.items():
            if key not in before["graph"] or before["graph"][key] is not value:
                written.append((pass_name, "graph", key))
        for n in graph:
            old = before["nodes"].get(n.name, {})
            for key, value in n.meta.items():
                if key not in old or old[key] != value:
                    written.append((pass_name, "node", key))
        before = {"graph": copy.copy(graph.meta), "nodes": {n.name: dict(n.meta) for n in graph}}

    run_passes(g, trace=trace, **options)
    assert written
    for pass_name, scope, key in written:
        table = NODE_KEYS if scope == "node" else GRAPH_KEYS
        assert key in table and pass_name in table[key].writers, (pass_name, scope, key)


def test_the_meta_table_lists_each_key_once_with_its_writers_and_renders():
    keys = [(m.scope, m.key) for m in META]
    assert len(keys) == len(set(keys)) == 19
    names = {p.name for p in PASSES} | {"builder"}
    for m in META:
        assert m.scope in ("node", "graph") and m.holds and set(m.writers) <= names, m
        assert (m.scope == "graph") == (m.nodes == "")
        assert f"| `{m.key}` |" in table()


def test_lint_finds_a_cycle_before_the_schedule():
    g = run_passes(nets.two_layer(), fuse=False)
    g.node("fc1").inputs[0] = "relu1"  # fc1 -> relu1 -> fc1
    with pytest.raises(LintError, match="after pass 'prune': the graph has a cycle"):
        lint(g, ["validate", "infer_shapes", "prune"])
