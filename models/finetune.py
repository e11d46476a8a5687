"""Fine-tuning a trained network on another dataset: a fresh classifier for the new classes
(replace_head) and the params to freeze up to a node (params_up_to).

    g, fresh = replace_head(imported.graph, 10)        # the last conv/affine: 10 outputs
    plan = dagnet.compile(g, params=kept_and_fresh, freeze=params_up_to(g, "stage3"))
"""
from __future__ import annotations


import networkx as nx

from dagnet.errors import GraphError
from dagnet.graph import INPUT, PARAM, Graph

#: ops that pass the classes through from the head to the scores (torchvision's SqueezeNet ends
#: conv - relu - global pool; an exported classifier may end in a flatten or a dropout)
PASS_THROUGH = ("relu", "dropout", "flatten", "reshape", "global_avg_pool", "avg_pool2d",
                "max_pool2d")
HEADS = ("affine", "conv2d")


def scores_of(graph: Graph) -> str:
    """The class-score value: what the (first) loss reads, else the single output."""
    if graph.losses:
        return graph.losses[0].inputs[0]
    outs = graph.outputs
    if len(outs) != 1:
        raise GraphError(f"graph '{graph.name}' has outputs {outs} and no loss: which are the "
                         f"class scores? Add a loss on them")
    return outs[0]


def find_head(graph: Graph) -> str:
    """The classifier: the affine or conv layer the scores come from (through PASS_THROUGH ops)."""
    scores = scores_of(graph)
    name = scores
    while True:
        node = graph.node(name)
        if node.op in HEADS:
            return name
        if node.op not in PASS_THROUGH:
            raise GraphError(f"cannot find the classifier of '{graph.name}': its scores "
                             f"'{scores}' come from {node.op} node '{name}', not from an affine "
                             f"or conv layer (through {', '.join(PASS_THROUGH)})")
        name = node.inputs[0]


def replace_head(graph: Graph, num_classes: int) -> tuple[Graph, list[str]]:
    """A copy of graph whose classifier (find_head) has num_classes outputs and fresh params
    (He-initialised weight, zero bias), shapes re-inferred downstream; and those params' names.
    (N, ..., D) -> head (N, num_classes) (or (N, num_classes, H, W) for a conv head)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise GraphError(f"replace_head: num_classes must be an integer >= 1, got {num_classes!r}")
    head = graph.node(find_head(graph))
    fresh = [p for p in head.inputs if graph.node(p).op == PARAM]
    spec = graph.to_spec()
    for item in spec["nodes"]:
        if item["name"] not in fresh:
            continue
        shape = list(item["shape"])
        out_axis = 1 if head.op == "affine" and len(shape) == 2 else 0
        shape[out_axis] = num_classes
        for key in ("fan_in", "fan_out", "scale", "value"):
            item.pop(key, None)
        is_weight = len(shape) > 1
        item.update(shape=shape, init="he" if is_weight else "zeros", decay=is_weight)
    return Graph.from_spec(spec), fresh


def params_up_to(graph: Graph, node: str) -> list[str]:
    """The params of `node` and of every op it depends on, in graph order: what to freeze so
    that only the layers after `node` train (a param names itself)."""
    n = graph.node(node, doing=f"freeze up to '{node}'")
    if n.op == INPUT:
        raise GraphError(f"cannot freeze up to '{node}': it is an input (nothing comes before "
                         f"it); name the last layer to freeze")
    if n.op == PARAM:
        return [node]
    upstream = nx.ancestors(graph.nx, node) | {node}
    return [v.name for v in graph if v.op == PARAM and v.name in upstream]
