"""A reference interpreter: evaluates a Graph op by op in topological order, forward and
backward, with no fusion, pruning, in-place or memory planning (like fx's Interpreter or JAX's
eval_jaxpr).

It is the oracle the compiled ExecutionPlan is tested against, so it is deliberately a tiny
loop of its own and shares nothing with the plan's Executor (dagnet/runtime/executor.py): a bug
in the executor, the passes or a fused kernel cannot hide by being in both. Keep it short and
obvious; do not make it reuse the runtime.
"""
from __future__ import annotations

import numpy as np

from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph
from dagnet.infer import constant_array
from dagnet.ir import topological_order
from dagnet.ops import get_op


def _order(graph: Graph) -> list:
    return [graph.node(n) for n in topological_order(graph)]


def interpret(graph: Graph, feeds: dict, params: dict, state: dict | None = None,
              mode: str = "train", seed: int = 0, dtype=None):
    """Forward: returns (values {node: array}, caches {node: cache}). Float constants take
    `dtype`, by default that of the first float feed or param (else float64)."""
    state = {} if state is None else state
    rng = np.random.default_rng(seed)
    if dtype is None:
        floats = [a.dtype for a in [*feeds.values(), *params.values()]
                  if np.asarray(a).dtype.kind == "f"]
        dtype = floats[0] if floats else np.float64
    values, caches = {}, {}
    for n in _order(graph):
        if n.op == INPUT:
            values[n.name] = feeds[n.name]
        elif n.op == PARAM:
            values[n.name] = params[n.name]
        elif n.op == CONSTANT:
            values[n.name] = constant_array(n.attrs, dtype)
        else:
            op = get_op(n.op, n.name)
            values[n.name], caches[n.name] = op.forward(
                [values[s] for s in n.inputs], n.attrs, mode=mode, state=state.get(n.name), rng=rng)
    return values, caches


def interpret_backward(graph: Graph, caches: dict, seeds: dict) -> dict:
    """Backward from seed gradients {node: dout}; returns the gradient of every value reached."""
    grads = dict(seeds)
    for n in reversed(_order(graph)):
        if n.op in LEAVES or n.name not in grads:
            continue
        op = get_op(n.op, n.name)
        for port, (src, g) in enumerate(zip(n.inputs, op.backward(grads[n.name], caches[n.name], n.attrs))):
            if g is not None and op.needs_grad(port):
                grads[src] = grads[src] + g if src in grads else g
    return grads


def loss_and_grads(graph: Graph, feeds: dict, params: dict, state: dict | None = None,
                   seed: int = 0):
    """(total loss, {param: grad}) for graphs with loss nodes: the ground truth for plans."""
    values, caches = interpret(graph, feeds, params, state, "train", seed)
    losses = [n.name for n in graph.losses]
    seeds = {name: np.asarray(1.0, dtype=values[name].dtype) for name in losses}
    grads = interpret_backward(graph, caches, seeds)
    loss = float(sum(np.sum(values[name]) for name in losses))
    return loss, {p: grads.get(p, np.zeros_like(v)) for p, v in params.items()}
