"""Derivatives for the user: dagnet.jvp (forward mode) and dagnet.jacobian (forward or
reverse mode, the user picks; both agree with each other and with finite differences).

    g = Graph(); x1 = g.input("x1", (), batched=False); x2 = ...
    values, tangents = dagnet.jvp(g, {"x1": 1.5, "x2": 0.5}, {"x1": 1.0})  # d(outputs)/dx1
    J = dagnet.jacobian(g, {"x1": 1.5, "x2": 0.5}, of=["y1", "y2"], wrt=["x1", "x2"],
                        strategy="forward")                             # J["y1"]["x2"], ...

Forward mode costs one sweep per input element (a column of the Jacobian each), reverse mode
one backward sweep per output element (a row each): forward wins for few inputs and many
outputs, reverse for a scalar loss of many params. J[of][wrt] has the shape of `of`'s value
followed by that of `wrt`'s feed (torch.autograd.functional.jacobian's layout). Forward mode
runs the ops in eval mode, reverse mode in train mode (its backward needs the train caches):
where the two differ (dropout, batchnorm) the Jacobians are of different functions.
"""
from __future__ import annotations

import numpy as np

from dagnet.compiler.forward_mode import sweep
from dagnet.compiler.pipeline import compile
from dagnet.errors import AttrError

STRATEGIES = ("forward", "reverse")


def jvp(graph, feeds: dict, tangents: dict, outputs=None, params: dict | None = None,
        dtype="float64") -> tuple[dict, dict]:
    """(values, tangents) of the outputs: each output's value and its derivative along
    `tangents` {input: direction, of the input's feed shape}; inputs not named stay fixed.

    outputs: default the graph's; params: arrays to use (default fresh ones, seed 0). An
    output that does not depend on the inputs named gets a zero tangent."""
    plan = compile(graph, outputs=outputs, fuse=False, mode="eval", dtype=dtype, params=params,
                   jvp=sorted(tangents))
    values, tans = sweep(plan, feeds, tangents)
    return ({o: values[o] for o in plan.outputs},
            {o: tans[o] if o in tans else np.zeros_like(values[o]) for o in plan.outputs})


def jacobian(graph, feeds: dict, of, wrt, strategy: str = "reverse",
             params: dict | None = None, dtype="float64") -> dict:
    """{output: {input: d output / d input}} at `feeds`, each of shape output.shape +
    input.shape, by forward mode (one JVP sweep per input element) or reverse mode (one
    backward sweep per output element)."""
    if strategy not in STRATEGIES:
        raise AttrError(f"jacobian: strategy must be one of {STRATEGIES}, got {strategy!r}")
    of, wrt = _names(of), _names(wrt)
    if strategy == "forward":
        return _forward(graph, feeds, of, wrt, params, dtype)
    return _reverse(graph, feeds, of, wrt, params, dtype)


def _names(values) -> list:
    values = [values] if isinstance(values, str) or not hasattr(values, "__iter__") else values
    return [getattr(v, "name", v) for v in values]


def _forward(graph, feeds, of, wrt, params, dtype) -> dict:
    plan = compile(graph, outputs=of, fuse=False, mode="eval", dtype=dtype, params=params, jvp=wrt)
    values, _ = sweep(plan, feeds, {w: np.zeros(np.shape(feeds[w])) for w in wrt})
    J = {o: {} for o in of}
    for w in wrt:
        shape = np.shape(feeds[w])
        columns = {o: [] for o in of}
        for k in range(int(np.prod(shape, dtype=np.int64))):
            t = {v: np.zeros(np.shape(feeds[v])) for v in wrt}
            t[w].flat[k] = 1.0
            _, tans = sweep(plan, feeds, t)
            for o in of:
                columns[o].append(tans[o] if o in tans else np.zeros_like(values[o]))
        for o in of:  # columns stacked last: output axes first, then the input's
            J[o][w] = np.stack(columns[o], axis=-1).reshape(np.shape(values[o]) + shape)
    return J


def _reverse(graph, feeds, of, wrt, params, dtype) -> dict:
    plan = compile(graph, outputs=of, fuse=False, mode="train", dtype=dtype, params=params, wrt=wrt)
    values = plan.forward(feeds, mode="eval")
    J = {o: {w: np.zeros(np.shape(values[o]) + np.shape(feeds[w])) for w in wrt} for o in of}
    for o in of:
        out = np.asarray(values[o])
        for k in range(out.size):
            seed = np.zeros_like(out)
            seed.flat[k] = 1.0
            plan.forward(feeds)
            grads = plan.backward({o: seed})
            for w in wrt:
                J[o][w].reshape(out.size, -1)[k] = np.ravel(grads[w])
    return J
