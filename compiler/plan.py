"""ExecutionPlan: the compiler's product. Ordered Steps (one kernel call each, fused or single),
initialised params and state, the backward order and the memory plan, plus reports on them.
Its forward/backward hand the steps to its Executor (dagnet/runtime/executor.py), which holds
the run's state (caches, planned buffers).

    plan = dagnet.compile(graph)
    loss, grads = plan.loss_and_grads(x, y)     # train step numbers
    scores = plan.predict(x)                    # eval-mode forward up to the scores
    print(plan.describe()); print(plan.fusion_report())
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dagnet import arguments, runtime
from dagnet.compiler.buckets import bucket_starts, describe_buckets
from dagnet.errors import ArgumentError, DagnetError, FeedError, ShapeError
from dagnet.graph import CONSTANT, INPUT, LEAVES, PARAM, Graph
from dagnet.infer import constant_array
from dagnet.ops import Op, get_op


def output_names(owner: str, outputs) -> list[str]:
    """Node names from one name or node, or a list or tuple of them; ArgumentError otherwise."""
    if isinstance(outputs, str) or hasattr(outputs, "name"):
        outputs = [outputs]  # one name (or node) instead of a list: what was meant is clear
    names = [getattr(o, "name", o) for o in outputs] if isinstance(outputs, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ArgumentError(f"{owner}: outputs = {outputs!r:.60}; it must be a node name or a "
                            f"list of node names")
    return names


@dataclass
class Step:
    """One kernel call of the plan."""

    index: int
    name: str
    op_name: str
    op: Op = field(repr=False)
    inputs: list
    attrs: dict = field(repr=False)
    shape: tuple
    members: list  # original node names (one unless fused)
    pattern: str | None = None
    needs: tuple = ()
    inplace: bool = False
    state_key: str | None = None
    params: int = 0
    flops: int = 0
    buffer: int = -1
    workspace_buffer: int = -1
    frees: list = field(default_factory=list, repr=False)
    #: whether its value carries the batch axis (shape is then per example)
    batched: bool = True

    @property
    def fused(self) -> bool:
        return self.pattern is not None


class ExecutionPlan:
    """A compiled graph ready to run: steps, params, state; forward/backward over them."""

    def __init__(self, graph: Graph, source: Graph, mode: str, dtype, params: dict, state: dict,
                 seed: int, outputs: list[str], aliases: dict, wrt=()):
        self.graph = graph  # the compiled (pruned, fused, scheduled, annotated) graph
        self.source = source  # the graph as declared
        self.mode = mode
        self.dtype = np.dtype(dtype)
        self.params = params
        self.state = state
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.outputs = list(outputs)  # names as requested (original node names)
        self.aliases = dict(aliases)  # original output name -> fused node name
        self.output_values = [self.aliases.get(o, o) for o in self.outputs]
        self.wrt = list(wrt)
        self.input_specs = {n.name: {"shape": tuple(n.attrs["shape"]), "dtype": n.attrs["dtype"],
                                     "batched": n.attrs.get("batched", True)}
                            for n in graph if n.op == INPUT}
        #: the constants' arrays (read-only; float ones in the plan's dtype)
        self.constants = {n.name: constant_array(n.attrs, self.dtype) for n in graph
                          if n.op == CONSTANT}
        self.steps = self._make_steps()
        self._step_names = frozenset(s.name for s in self.steps)  # (a scan took ~5 us per call)
        by_name = {s.name: s for s in self.steps}
        self.backward_steps = [by_name[n] for n in graph.meta.get("backward", {}).get("order", [])]
        # params frozen at compile time (fine-tuning): no gradient, no update
        self.frozen = set(graph.meta.get("backward", {}).get("frozen", []))
        self.losses = [s.name for s in self.steps if s.op.kind == "loss"]
        # the gradient allreduce buckets of data-parallel training (compile(bucket_mb=...))
        self.bucket_plan = graph.meta.get("buckets")
        self._needed: dict = {}
        # the memory plan's buffers (bytes per example), given to ops as `out=` by the runtime;
        # False gives every value a fresh array (for debugging a suspected overwrite)
        self.buffer_bytes = dict(graph.meta.get("memory", {}).get("buffers", {}))
        self.use_planned_buffers = True
        # runs the steps and keeps the run's state: the last train forward's caches, the buffers
        self.executor = runtime.Executor(self)

    def _make_steps(self) -> list[Step]:
        steps = []
        last_use = {}
        for n in self.graph:
            if n.op in LEAVES:
                continue
            m = n.meta
            steps.append(Step(
                index=len(steps), name=n.name, op_name=n.op, op=get_op(n.op, n.name), inputs=list(n.inputs),
                attrs=n.attrs, shape=tuple(m.get("shape", ())),
                members=list(m.get("fused_group", [n.name])), pattern=m.get("pattern"),
                needs=tuple(m.get("needs", (False,) * len(n.inputs))), inplace=bool(m.get("inplace")),
                state_key=m.get("state_key", n.name), params=m.get("params", 0),
                flops=m.get("flops", 0), buffer=m.get("buffer", -1),
                workspace_buffer=m.get("workspace_buffer", -1), batched=m.get("batched", True)))
            for s in n.inputs:
                last_use[s] = len(steps) - 1
        for v, i in last_use.items():
            if v not in self.params and v not in self.input_specs and v not in self.constants:
                steps[i].frees.append(v)
        return steps

    # -- running ----------------------------------------------------------------------------
    def steps_for(self, values: tuple) -> list[Step]:
        """The steps needed to compute `values` (names of values; cached per request)."""
        if values not in self._needed:
            need = set(values)
            chosen = []
            for step in reversed(self.steps):
                if step.name in need:
                    chosen.append(step)
                    need.update(step.inputs)
            self._needed[values] = chosen[::-1]
        return self._needed[values]

    def forward(self, feeds: dict, mode: str | None = None, outputs=None) -> dict:
        """Run the forward sweep; returns {output name: array} for the requested outputs
        (default: the plan's outputs). mode: "train" (default for train plans) or "eval"."""
        mode = self.mode if mode is None else arguments.choice("forward", "mode", mode,
                                                               ("train", "eval"))
        if mode == "train" and self.mode == "eval":
            raise DagnetError("this plan was compiled with mode='eval'; compile with "
                              "mode='train' to run training steps")
        names = self.outputs if outputs is None else output_names("forward", outputs)
        values = tuple(self._resolve(o) for o in names)
        vals = self.executor.forward(feeds, mode, values)
        return {o: vals[v] for o, v in zip(names, values)}

    def _resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise DagnetError(f"outputs must be node names (str), got {name!r}")
        name = self.aliases.get(name, name)
        if name in self.params or name in self.input_specs or name in self.constants \
                or name in self._step_names:
            return name
        inner = [s.name for s in self.steps if name in s.members]
        if inner:
            raise DagnetError(f"'{name}' is inside the fused step '{inner[0]}', so its value is "
                              f"never materialised; compile with outputs=[..., '{name}'] or fuse=False")
        raise DagnetError(f"'{name}' is not a value of this plan (pruned, or not in the graph)")

    def backward(self, douts: dict | None = None) -> dict:
        """Gradients {param: grad} of the params not frozen (plus requested inputs) after a
        train-mode forward().

        Losses are seeded with 1 (several losses are summed); pass `douts` {output: array} to
        seed other outputs."""
        if self.mode == "eval":
            raise DagnetError("this plan was compiled with mode='eval' and keeps nothing for "
                              "backward; compile with mode='train'")
        if douts is not None and not isinstance(douts, dict):
            raise FeedError(f"backward(douts): douts must be a dict {{output name: gradient "
                            f"array}}, got {type(douts).__name__}")
        seeds = {}
        if douts:
            for name, d in douts.items():
                v = self._resolve(name)
                seeds[v] = self._seed(name, v, d)
        else:
            if not self.losses:
                raise DagnetError("the plan has no loss; pass douts={output: dout} to backward()")
            for v in self.losses:
                seeds[v] = np.asarray(1.0, dtype=self.dtype)
        return self.executor.backward(seeds)

    def _seed(self, name: str, value: str, d) -> np.ndarray:
        """A gradient seed for `value` as an array of the shape the last forward gave it."""
        try:
            arr = np.asarray(d, dtype=self.dtype)
        except (TypeError, ValueError):
            raise FeedError(f"backward: the gradient for '{name}' is a {type(d).__name__}, not "
                            f"an array of numbers") from None
        step = next((s for s in self.steps if s.name == value), None)
        batch = getattr(self.executor, "fed_batch", None)
        if step is not None and batch:
            # a loss is reduced over the batch (a scalar), an unbatched value has its full
            # shape; every other value is per example
            whole = step.op.kind == "loss" or not step.batched
            want = tuple(step.shape) if whole else (batch, *step.shape)
            if arr.shape != want:
                raise ShapeError(f"backward: the gradient for '{name}' has shape {arr.shape}, but "
                                 f"the forward made '{name}' of shape {want}; give a gradient of "
                                 f"that shape")
        return arr

    def feeds_for(self, x, y=None) -> dict:
        """{input: array} from positional data: x for the float input, y for the integer one."""
        if isinstance(x, dict):
            return x
        floats = [n for n, s in self.input_specs.items() if np.dtype(s["dtype"]).kind == "f"]
        ints = [n for n, s in self.input_specs.items() if np.dtype(s["dtype"]).kind != "f"]
        if len(floats) != 1:
            raise FeedError(f"the plan has float inputs {floats}; pass a dict of feeds")
        feeds = {floats[0]: x}
        if y is not None:
            if len(ints) != 1:
                raise FeedError(f"the plan has integer inputs {ints}; pass a dict of feeds")
            feeds[ints[0]] = y
        return feeds

    def regularization(self, reg: float) -> float:
        """0.5 * reg * sum of squared weights (params whose node has decay=True)."""
        return 0.5 * reg * sum(float(np.sum(self.params[p] * self.params[p])) for p in self.decayed)

    @property
    def decayed(self) -> list[str]:
        """Params that L2 weight decay applies to (weights, not biases or batchnorm's gamma/beta;
        not frozen ones, which get no gradient)."""
        return [n.name for n in self.graph if n.op == PARAM and n.attrs.get("decay", True)
                and n.name not in self.frozen]

    @property
    def trainable(self) -> list[str]:
        """The params that get a gradient: all but the frozen ones."""
        return [p for p in self.params if p not in self.frozen]

    def loss_and_grads(self, x, y=None, reg: float = 0.0):
        """(loss, {param: grad}) for one batch; reg adds 0.5*reg*||W||^2 over weights."""
        reg = arguments.number("loss_and_grads", "reg", reg)
        if not self.losses:
            raise DagnetError("the plan has no loss node; add one (e.g. softmax_cross_entropy)")
        out = self.forward(self.feeds_for(x, y), mode="train",
                           outputs=[self._original(l) for l in self.losses])
        loss = float(sum(np.sum(v) for v in out.values()))
        grads = self.backward()
        if reg:
            loss += self.regularization(reg)
            for p in self.decayed:
                grads[p] = grads[p] + reg * self.params[p]
        return loss, grads

    def _original(self, value: str) -> str:
        for k, v in self.aliases.items():
            if v == value:
                return k
        return value

    @property
    def scores_name(self) -> str:
        """The value the (first) loss reads its scores from."""
        if not self.losses:
            return self.output_values[0]
        return next(s for s in self.steps if s.name == self.losses[0]).inputs[0]

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Eval-mode scores for x (N, ...), computed in batches."""
        batch_size = arguments.count("predict", "batch_size", batch_size)
        x = x if isinstance(x, dict) else self.feeds_for(x)
        if len(x) != 1:
            raise FeedError(f"predict() takes one input array (the plan's float input), got "
                            f"feeds for {sorted(x)}; labels are not needed")
        (name, data), = x.items()
        if not isinstance(data, np.ndarray) or data.ndim == 0:
            data = runtime.check_feeds(self, {name: data})[name]  # a clear FeedError if unusable
        outs = []
        for i in range(0, len(data), batch_size):
            out = self.forward({name: data[i:i + batch_size]}, mode="eval", outputs=[self.scores_name])
            outs.append(out[self.scores_name])
        if outs:
            return np.concatenate(outs)
        step = next((s for s in self.steps if s.name == self.scores_name), None)
        return np.zeros((0, *(step.shape if step is not None else ())), self.dtype)

    def profile(self, x, y=None, repeats: int = 5, mode: str | None = None) -> dict:
        """Seconds per step, best of `repeats`: {step: {"forward": s, "backward": s}}, on a
        batch (x and labels y, or a feeds dict); the plan's state and rng are left untouched."""
        repeats = arguments.count("profile", "repeats", repeats)
        return runtime.profile(self, self.feeds_for(x, y), repeats, mode)

    # -- reports ----------------------------------------------------------------------------
    def peak_bytes(self, batch_size: int, reuse: bool = True, workspace: bool = True) -> int:
        """Planned peak bytes for a batch: values (and, with workspace, kernel scratch such as
        im2col columns) live at once when dead ones are released (reuse) or never (not reuse).
        Params are not counted."""
        batch_size = arguments.count("peak_bytes", "batch_size", batch_size)
        mem = self.graph.meta["memory"]
        entry = mem["total" if workspace else "activations"]
        return int(entry["peak" if reuse else "no_reuse"] * batch_size + mem["fixed_bytes"])

    def fusion_report(self) -> str:
        """What fused (pattern and members) and what nearly did (and why not)."""
        fusion = self.graph.meta.get("fusion", {"fused": [], "near_misses": []})
        lines = [f"fused groups ({len(fusion['fused'])}):"]
        for f in fusion["fused"]:
            lines.append(f"  {f['node']}  <- pattern {f['pattern']}")
        lines.append(f"near misses ({len(fusion['near_misses'])}):")
        for nm in fusion["near_misses"]:
            lines.append(f"  {' -> '.join(nm['nodes'])}  (pattern {nm['pattern']}): {nm['reason']}")
        return "\n".join(lines)

    def kernel_note(self, step) -> str:
        """Which of its kernels the step's op runs at the plan's shapes ("" for ops with one)."""
        in_shapes = [self.graph.node(v).meta.get("shape", ()) for v in step.inputs]
        return step.op.kernel_note(in_shapes, step.attrs)

    def describe(self) -> str:
        """A text table of the steps: op(s), output shape, params, FLOPs and bytes per example."""
        rows = [("#", "step", "op", "output", "params", "MFLOPs", "KB/ex", "notes")]
        starts = bucket_starts(self.bucket_plan)
        for s in self.steps:
            notes = [n for n in [self.kernel_note(s)] if n]
            notes += [f"allreduce bucket {i} starts after its backward" for i in starts.get(s.name, [])]
            if s.inplace:
                notes.append("in-place")
            if not s.batched and s.op.kind != "loss":
                notes.append("unbatched: KB in all")
            frozen = [p for p in s.inputs if p in self.frozen]
            if frozen:
                notes.append("frozen: " + ",".join(frozen))
            if s.index in {b.index for b in self.backward_steps}:
                skipped = [p for p, need in zip(s.inputs, s.needs) if not need and
                           p not in self.params]
                if skipped:
                    notes.append("no grad: " + ",".join(skipped))
            elif self.mode == "train" and self.frozen:
                notes.append("no backward")
            size = int(np.prod(s.shape, dtype=np.int64)) * self.dtype.itemsize / 1024
            rows.append((str(s.index), s.name, s.op_name, str(s.shape), f"{s.params:,}",
                         f"{s.flops / 1e6:.2f}", f"{size:.1f}", "; ".join(notes)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        total = sum(int(np.prod(self.params[p].shape)) for p in self.params)
        pruned = self.graph.meta.get("pruned", [])
        if self.frozen:
            n_frozen = sum(self.params[p].size for p in self.frozen if p in self.params)
            out.append(f"frozen: {n_frozen:,} of {total:,} params ({len(self.frozen)} arrays) get "
                       f"no gradient; {len(self.backward_steps)} of {len(self.steps)} steps run "
                       f"backward")
        out.append(f"{len(self.steps)} steps, {total:,} params, mode {self.mode}, {self.dtype}; "
                   f"peak {self.peak_bytes(1) / 1024:.1f} KB per example"
                   + (f"; pruned: {', '.join(pruned)}" if pruned else ""))
        out += describe_buckets(self.bucket_plan)
        return "\n".join(out)

    def __repr__(self) -> str:
        return (f"<ExecutionPlan '{self.graph.name}': {len(self.steps)} steps, "
                f"{sum(1 for s in self.steps if s.fused)} fused, mode {self.mode}>")
