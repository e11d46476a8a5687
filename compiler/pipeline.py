"""compile(): the passes, listed as data and walked in order; then params and state and the
ExecutionPlan.

Each pass is a pure function Graph -> Graph, a row of PASSES: its name (as `trace`, the film
strip and the meta table know it), what it runs and the options it runs under. To add a pass,
write its module and add its row here (and its meta keys to compiler/meta.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import math

import numpy as np

from dagnet import arguments
from dagnet.errors import ArgumentError, DagnetError, GraphError
from dagnet.graph import PARAM, Graph
from dagnet.ir import Graph as IRGraph
from dagnet.compiler.autodiff import frozen_params, plan_backward
from dagnet.compiler.buckets import MB, plan_buckets
from dagnet.compiler.forward_mode import plan_jvp
from dagnet.compiler.fuse import fuse as fuse_pass
from dagnet.compiler.fusion_check import check_fusion
from dagnet.compiler.lint import lint as lint_graph
from dagnet.compiler.memory import plan_memory
from dagnet.compiler.params import (check_given, check_seed, check_state, float_dtype,
                                    init_params, init_state)
from dagnet.compiler.plan import ExecutionPlan, output_names
from dagnet.compiler.prune import prune
from dagnet.compiler.schedule import schedule
from dagnet.compiler.shapes import infer_shapes
from dagnet.compiler.validate import check_outputs, validate

MODES = ("train", "eval")
#: lint the graph after every pass (compiler/lint.py); the tests switch it on for every compile
LINT = False


@dataclass(frozen=True)
class Options:
    """What compile() was asked for, as the passes read it."""

    outputs: list
    fuse: bool = True
    mode: str = "train"
    dtype: str = "float32"
    wrt: tuple = ()
    inplace: bool = True
    bucket_mb: float | None = None  # data-parallel training: plan the gradient allreduce
    freeze: tuple = ()  # params that get no gradient (fine-tuning)
    jvp: tuple = ()  # inputs to carry tangents from (forward mode)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def buckets(self) -> bool:
        return self.bucket_mb is not None

    @property
    def forward_mode(self) -> bool:
        return bool(self.jvp)


def _validate(g: Graph, o: Options) -> Graph:
    g = validate(g)
    check_outputs(g, o.outputs)
    return g


@dataclass(frozen=True)
class Pass:
    """One compiler pass: run(graph, options) -> graph, when every option in `when` has the
    value given there (e.g. {"fuse": True}, {"mode": "train"})."""

    name: str
    run: Callable[[Graph, Options], Graph]
    when: dict = field(default_factory=dict)
    doc: str = ""

    def applies(self, options: Options) -> bool:
        return all(getattr(options, k) == v for k, v in self.when.items())

    @property
    def condition(self) -> str:
        """The options it runs under, e.g. 'fuse=True' ('' when always)."""
        return ", ".join(f"{k}={v}" for k, v in self.when.items())


PASSES = (
    Pass("validate", _validate, doc="structure: ops, arity, inputs, cycles, outputs"),
    Pass("infer_shapes", lambda g, o: infer_shapes(g), doc="shape, params and FLOPs of every value"),
    Pass("prune", lambda g, o: prune(g, o.outputs), doc="drop what no requested output needs"),
    Pass("fuse", lambda g, o: fuse_pass(g, o.outputs, o.mode), {"fuse": True},
         doc="chains that match a fused op become one node"),
    Pass("schedule", lambda g, o: schedule(g), doc="the execution order"),
    Pass("autodiff", lambda g, o: plan_backward(g, o.wrt, o.freeze), {"mode": "train"},
         doc="which gradients each step computes, the backward order"),
    Pass("forward_mode", lambda g, o: plan_jvp(g, o.jvp), {"forward_mode": True},
         doc="which steps carry a tangent of the inputs in jvp (forward-mode autodiff)"),
    Pass("memory", lambda g, o: plan_memory(g, o.mode, o.itemsize, o.inplace),
         doc="liveness, in-place steps, buffers"),
    Pass("buckets", lambda g, o: plan_buckets(g, math.ceil(o.bucket_mb * MB), o.itemsize),
         {"mode": "train", "buckets": True},
         doc="the gradient allreduce buckets of data-parallel training, in backward order"),
)


def run_passes(graph: Graph, outputs=None, fuse: bool = True, mode: str = "train",
               dtype="float32", wrt=(), inplace: bool = True, trace=None,
               lint: bool | None = None, bucket_mb: float | None = None,
               freeze=(), jvp=()) -> Graph:
    """Every pass that applies, in order; `trace(name, graph)` (optional) sees the graph after
    each one. lint: check the graph after each pass (compiler/lint.py; default LINT).
    bucket_mb: plan the data-parallel gradient allreduce in buckets of that many MiB.
    freeze: params that get no gradient. jvp: inputs whose tangents a forward-mode sweep
    carries (compiler/forward_mode.py)."""
    if mode not in MODES:
        raise DagnetError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(graph, Graph):
        raise GraphError(f"compile() needs a dagnet Graph, got {type(graph).__name__}; build one "
                         f"with dagnet.Graph() or Graph.from_spec(path)")
    options = Options(_output_names(outputs, graph), fuse, mode, np.dtype(dtype).name,
                      tuple(wrt), inplace, bucket_mb, tuple(freeze), tuple(jvp))
    lint = LINT if lint is None else lint
    ran = []
    g = graph
    for p in PASSES:
        if not p.applies(options):
            continue
        g = p.run(g, options)
        ran.append(p.name)
        if lint:
            lint_graph(g, ran)
        if trace is not None:
            trace(p.name, g)
    return g


def _output_names(outputs, graph: Graph) -> list:
    if outputs is None:
        return graph.outputs
    return output_names("compile", outputs) or graph.outputs


def compile(graph: Graph, outputs=None, fuse: bool = True, mode: str = "train",
            dtype="float32", seed: int = 0, params: dict | None = None,
            state: dict | None = None, wrt=(), inplace: bool = True,
            check: bool = False, bucket_mb: float | None = None, freeze=(),
            jvp=()) -> ExecutionPlan:
    """Compile a graph into an ExecutionPlan.

    graph: a Graph, or a model loaded by dagnet.onnx.load (its params and state come along).
    outputs: values to compute (default: the graph's losses, else its sinks); everything else
    is pruned. fuse: apply the fusion patterns. mode: "train" (plans backward; keeps what it
    needs) or "eval" (forward only; reuses dead buffers). params/state: arrays to use instead
    of fresh ones (shared, not copied). wrt: inputs to differentiate too. check: run every
    fused step and its unfused chain on a random batch and raise FusionMismatchError naming
    the first fused group whose outputs or gradients differ. bucket_mb: group the gradients
    into allreduce buckets of about that many MiB for data-parallel training (dagnet.dist).
    freeze: params, or op nodes (meaning their params), that get no gradient and no backward
    step of their own (fine-tuning; dagnet.models.finetune.params_up_to names a prefix).
    jvp: inputs to carry tangents from in a forward-mode sweep (dagnet.jvp, dagnet.jacobian).
    """
    if not isinstance(graph, (IRGraph, ExecutionPlan)) and isinstance(getattr(graph, "graph", None), IRGraph):
        # a loaded model (dagnet.onnx.load): its graph with its params and state, unless given
        params = graph.params if params is None else params
        state = graph.state if state is None and params is graph.params else state
        graph = graph.graph
    if not isinstance(graph, IRGraph):
        raise ArgumentError(f"compile: graph must be a dagnet Graph, got {type(graph).__name__}; "
                            f"build one with the builder, Graph.from_spec(path) or "
                            f"dagnet.models.get_model(name)")
    dtype = float_dtype(dtype)
    check_seed(seed)
    arguments.choice("compile", "mode", mode, ("train", "eval"))
    for name, value in (("fuse", fuse), ("inplace", inplace), ("check", check)):
        arguments.flag("compile", name, value)
    g = run_passes(graph, outputs, fuse, mode, dtype, wrt, inplace, bucket_mb=bucket_mb,
                   freeze=frozen_params(graph, freeze), jvp=jvp)
    outputs = _output_names(outputs, graph)
    kept = {n.name for n in g if n.op == PARAM}
    if params is None:
        check_state(graph, g, state)
        fresh = init_params(graph, seed, dtype)
    else:
        check_given(graph, g, params, state, dtype)
        fresh = params
    plan_params = {k: fresh[k] for k in fresh if k in kept}
    plan_state = init_state(graph, dtype) if state is None else state
    aliases = g.meta.get("fusion", {}).get("aliases", {})
    plan = ExecutionPlan(g, graph, mode, dtype, plan_params, plan_state, seed, outputs,
                         aliases, wrt)
    if check and fuse and mode == "train":
        check_fusion(plan)
    return plan
