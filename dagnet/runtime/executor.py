"""Executor: the one loop that runs an ExecutionPlan's steps forward and backward.

It reads only the plan's data (steps, params, state, rng, feeds spec, buffer sizes), so that the
runtime does not depend on the compiler, and it owns the run's state: the values of a forward
sweep, the caches backward reads, the planned buffers the steps write into, and which state and
rng the ops get. Each step is one kernel call (fused or single).

Like torch.fx's Interpreter.run_node, two hooks run one step; the profiler, the NaN/Inf locator
and the compiler's fusion check are subclasses that wrap them:

    step_forward(step, ins, mode, out, workspace) -> (value, cache)
    step_backward(step, dout, cache) -> the input gradients
"""
from __future__ import annotations

import numpy as np

from dagnet import kernels
from dagnet.errors import DagnetError, FeedError
from dagnet.runtime import program as _program
from dagnet.runtime.chunks import ChunkedProgram
from dagnet.runtime.feeds import batch_size, check_feeds


#: sum a fanned-out value's gradients into the first one where its op declares it a new array
#: (Op.fresh_grads) instead of into a new array (resnet_small's residual fan-ins: an add into
#: a new 3.2 MB array took 0.9 ms of CPU, in place 0.5 ms); False for A/B runs
SUM_IN_PLACE = True


def _owned(gr, dout, gin) -> bool:
    """Whether gradient `gr`, returned by a backward that declares fresh_grads, may be added
    into in place: a whole writable array of its own, neither dout nor another returned
    gradient (an op that runs member by member may still hand one array to two inputs)."""
    return (gr.base is None and gr.flags.writeable and gr is not dout
            and sum(g is gr for g in gin) == 1)


class Executor:
    """Runs the steps of `plan`; one per plan keeps the caches of its last train forward.

    state, rng: the batchnorm statistics and the random generator the ops get; None for the
    plan's own (looked up at each run: plan.rng may be replaced between runs). fresh: every
    value in a fresh array: no planned buffers and nothing in place (diagnostics, which must
    leave the plan's buffers alone and keep every input of a step intact)."""

    def __init__(self, plan, state: dict | None = None, rng=None, fresh: bool = False):
        self.plan = plan
        self.given_state, self.given_rng = state, rng
        self.fresh = fresh
        self.state: dict = {}  # the state and rng of the current run
        self.rng = None
        self.caches: dict = {}  # {step: cache} of the last train-mode forward
        self.grads: dict = {}  # gradients summed so far in the current backward sweep
        # the memory plan's buffers, {buffer id: byte array}, sized for `batch` examples
        self.buffers: dict = {}
        self.batch = 0
        self.fed_batch = 0  # the batch of the last forward (backward checks seeds against it)
        self.programs: dict = {}  # wanted values -> ChunkedProgram (an EvalProgram: runtime/chunks.py)

    # -- hooks ------------------------------------------------------------------------------
    def step_forward(self, step, ins, mode, out=None, workspace=None):
        """One step's forward: (value, cache). out: the array to write the value into (its
        planned buffer, or its input when it runs in place); workspace: its planned scratch."""
        state = self.state.get(step.state_key)
        if workspace is None:
            return step.op.forward(ins, step.attrs, mode=mode, state=state, rng=self.rng, out=out)
        return step.op.forward(ins, step.attrs, mode=mode, state=state, rng=self.rng, out=out,
                               workspace=workspace)

    def step_backward(self, step, dout, cache):
        """One step's backward: a gradient (or None) per input port."""
        return step.op.backward(dout, cache, step.attrs, needs=step.needs)

    # -- the sweeps -------------------------------------------------------------------------
    def forward(self, feeds: dict, mode: str, wanted=None) -> dict:
        """Run the steps that `wanted` (value names; default the plan's outputs) needs; returns
        every value computed.

        In train mode the caches are kept for backward; in eval mode a value is dropped at its
        last use so its memory is freed for the next ones. Ops that can write into a given
        array get a view of their planned buffer, and ops that take one their planned
        workspace; the plan's outputs and the wanted values are always arrays the caller may
        keep."""
        plan = self.plan
        wanted = tuple(plan.output_values) if wanted is None else tuple(wanted)
        self.state = plan.state if self.given_state is None else self.given_state
        self.rng = plan.rng if self.given_rng is None else self.given_rng
        self.caches = caches = {}  # a failed run leaves none for backward to misuse
        fed = check_feeds(plan, feeds)
        if self._takes_program(mode):
            batch = batch_size(plan, fed)
            if batch:
                self.fed_batch = batch
                return self._run_program(fed, wanted, batch)
        values = dict(plan.params)
        values.update(plan.constants)
        values.update(fed)
        keep = set(plan.output_values)
        keep.update(wanted)
        self.fed_batch = batch = batch_size(plan, values)  # for backward to check seed shapes
        # a train plan in eval mode (a solver's accuracy check, often at a larger batch) gives
        # its values fresh arrays, freed at their last use: its buffers, sized for train-mode
        # liveness, would otherwise grow to that batch and stay
        arena = self.planned_buffers(batch) if batch and not self.fresh and \
            plan.use_planned_buffers and mode == plan.mode else None
        inplace = not self.fresh
        train = mode == "train"
        in_arena: set[str] = set()  # values that live in a planned buffer
        for step in plan.steps_for(wanted):
            try:
                ins = [values[s] for s in step.inputs]
            except KeyError:
                raise _missing(plan, step, values) from None
            out = workspace = None
            if inplace and step.inplace and step.inputs[0] not in keep:  # never over a value asked for
                out = ins[0]
            elif arena is not None and step.buffer in arena and step.op.supports_out \
                    and step.name not in keep:
                out = kernels.typed_view(arena[step.buffer], (batch, *step.shape), plan.dtype)
            if arena is not None:
                workspace = arena.get(step.workspace_buffer)
            try:
                y, cache = self.step_forward(step, ins, mode, out, workspace)
            except DagnetError as e:
                raise in_step(e, step) from None
            except MemoryError:
                n = len(ins[0]) if ins and getattr(ins[0], "ndim", 0) else "?"
                raise FeedError(f"step {step.index} '{step.name}' ({step.op_name}): out of memory "
                                f"for a batch of {n} examples; use a smaller batch (plan.peak_bytes(1) "
                                f"says how many bytes one example needs)") from None
            # in a planned buffer: written there, or in place over / a view of a value that is
            if (out is not None and out is not ins[0]) or (
                    in_arena and step.inputs and step.inputs[0] in in_arena
                    and (out is not None or step.op.may_alias)):
                if step.name in keep:  # a value asked for, made in place or as a view: copy it
                    y = y.copy()  # now, before a later step reuses the buffer
                else:
                    in_arena.add(step.name)
            values[step.name] = y
            if train:
                caches[step.name] = cache
            else:
                for v in step.frees:
                    if v not in keep:
                        values.pop(v, None)
        return values

    def _takes_program(self, mode: str) -> bool:
        """Whether an eval plan's eval forward runs as an EvalProgram: not when a subclass
        hooks the steps (profiler, NaN locator, fusion check) or for fresh arrays."""
        plan = self.plan
        return (_program.ENABLED and mode == "eval" == plan.mode and not self.fresh
                and plan.use_planned_buffers and type(self).step_forward is Executor.step_forward)

    def _run_program(self, fed: dict, wanted: tuple, batch: int) -> dict:
        """{wanted value: array} computed by the program of `wanted` (built on first use) from
        the checked feeds; of the params and constants it gets only those its steps read (a
        copy of the params dict each call cost as much as a small step)."""
        plan = self.plan
        prog = self.programs.get(wanted)
        if prog is None:
            prog = self.programs[wanted] = ChunkedProgram(plan, wanted)
        values = {}
        for v, ins in prog.needs.items():
            if v in fed:
                values[v] = np.ascontiguousarray(fed[v])  # the kernels read C order
                continue
            a = plan.params.get(v)
            if a is None:
                a = plan.constants.get(v)
            if a is None and ins is None:
                raise FeedError(f"'{v}' was asked for, an input that was not fed; the "
                                f"plan's inputs are {sorted(plan.input_specs)}")
            if a is None:
                raise _missing(plan, ins.step, {**plan.params, **plan.constants, **fed})
            values[v] = a
        try:
            return prog.run(values, self.state, self.rng, batch)
        except DagnetError as e:
            raise in_step(e, e.dagnet_step) from None
        except MemoryError as e:
            step = getattr(e, "dagnet_step", None)
            where = f"step {step.index} '{step.name}' ({step.op_name})" if step else "eval forward"
            raise FeedError(f"{where}: out of memory for a batch of {batch} examples; use a "
                            f"smaller batch (plan.peak_bytes(1) says how many bytes one example "
                            f"needs)") from None

    def backward(self, douts: dict) -> dict:
        """Sweep the planned backward order from the seed gradients `douts` {value: dout}.

        Gradients of a value that fans out are summed; returns {name: grad} for every param
        not frozen and for the inputs the plan was compiled to differentiate."""
        if not self.caches:
            raise FeedError("backward() needs a train-mode forward() first (eval mode keeps no caches)")
        plan, caches = self.plan, self.caches
        self.grads = grads = dict(douts)
        owned: set[str] = set()  # grads we may add into in place (not shared with an op's result)
        for step in plan.backward_steps:
            dout = grads.pop(step.name, None)
            if dout is None:
                continue
            gin = self.step_backward(step, dout, caches[step.name])
            fresh = SUM_IN_PLACE and step.op.fresh_grads
            for src, need, gr in zip(step.inputs, step.needs, gin):
                if not need or gr is None:
                    continue
                if src not in grads:
                    grads[src] = gr
                    if fresh and _owned(gr, dout, gin):
                        owned.add(src)
                elif src in owned:
                    grads[src] += gr
                else:
                    grads[src] = grads[src] + gr
                    owned.add(src)
        self.grads = {}  # the sweep is over: hold no arrays
        result = {}
        for name, p in plan.params.items():
            if name in plan.frozen:
                continue  # fine-tuning: no gradient, so no update
            g = grads.get(name)
            result[name] = np.zeros_like(p) if g is None else g
        for name in plan.wrt:
            result[name] = grads.get(name)
        return result

    def planned_buffers(self, batch: int) -> dict:
        """The memory plan's buffers as byte arrays for `batch` examples: {buffer id: array}.

        Allocated once and grown when a larger batch comes (a smaller batch uses the front of
        each), so a training loop allocates no activations after its first step, and values
        the memory pass proved dead share memory, as the plan's peak_bytes says."""
        if batch > self.batch:
            self.buffers = {b: np.empty(size * batch, dtype=np.uint8)
                            for b, size in self.plan.buffer_bytes.items() if size}
            self.batch = batch
        return self.buffers


def _missing(plan, step, values) -> FeedError:
    missing = [s for s in step.inputs if s not in values]
    return FeedError(f"step {step.index} '{step.name}' needs feed(s) {missing}, which were not "
                     f"given; the plan's inputs are {sorted(plan.input_specs)}")


def in_step(e: DagnetError, step) -> DagnetError:
    """The same error with the step (node name and op) in front, so a run-time message says where."""
    where = f"step {step.index} '{step.name}' ({step.op_name})"
    message = str(e)
    if message.startswith(step.op_name + ": "):  # ops name themselves; say it once
        message = message[len(step.op_name) + 2:]
    return type(e)(f"{where}: {message}")
