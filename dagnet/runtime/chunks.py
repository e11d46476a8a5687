"""ChunkedProgram: an inference program that runs a large batch's convs as chunks of samples,
each chunk through all of them on one thread, with a program of its own per thread.

    program = ChunkedProgram(plan, wanted)     # the executor's program for `wanted`
    values = program.run(values, state, rng, batch)

Why: run whole, each conv of a batch of 256 streams the batch's activations through memory
before the next conv reads them back (resnet_small's 16 x 28 x 28 values: 12.8 MB; a core's
L2 here is 2 MiB). A chunk of CHUNK samples run through every conv keeps its activations in
L2 from one conv to the next. Both threads on each of a chunk's convs (the kernels' static
split of the samples) paid a wait per conv for little work, so each thread takes chunks of
its own, whichever is next (dagnet/blocks.py's `run`: a thread that gets no core leaves the
chunks to the other), and runs them on an EvalProgram of its own with one kernel thread (its
arena, scratch and folded weights).

What runs so: the program's leading instructions, when each computes a sample from that
sample alone with the same arithmetic at any batch size: convs on the direct kernels (not
im2col's GEMM over the batch) and global-average-pool heads. The fully connected layers after
them run once on the whole batch, as the whole program runs them: OpenBLAS picks its kernel
by the product's size (LeNet's 500 -> 10 layer rounds differently below 10^6 multiply-adds),
and a layer's weights are read once, not once a chunk. Any other program (a step anywhere:
its op may reduce or reshape over the batch axis), and batches of at most CHUNK samples
(batch 1 keeps its split kernels), run whole.

Results: the chunks are fixed by the batch size (never the thread count) and each sample's
convs are computed as in the whole batch: the values are bitwise the whole program's, for any
thread count (tests/runtime/test_chunks.py).
"""
from __future__ import annotations

import threading

import numpy as np

from dagnet import blocks, kernels
from dagnet.runtime.program import EvalProgram, _direct

#: False runs every batch whole (for A/B measurements)
ENABLED: bool = True
#: samples a chunk at most: a batch of more runs as ceil(batch / CHUNK) chunks as equal as can
#: be. resnet_small at batch 256 on one thread took 1.14x / 1.16x / 1.13x / 1.09x / 1.04x less
#: CPU than the whole batch in chunks of 4 / 8 / 16 / 32 / 64 (medians of 7 alternating rounds,
#: load 4.4; bench_chunks.py); LeNet (11.5 KB of activations a sample against resnet_small's
#: 50) 0.89-0.97x there. On both threads, against onnxruntime (bench_infer, own processes,
#: load 6-11): chunks of 16 1.26 (28 rounds), of 8 1.09 (14), whole 1.14 (21)
CHUNK: int = 16


class ChunkedProgram(EvalProgram):
    """The EvalProgram of `wanted`, whose batches of more than CHUNK samples run as chunks
    where its instructions allow (the module doc)."""

    def __init__(self, plan, wanted: tuple):
        super().__init__(plan, wanted)
        code, self.parts, self.lock, self.tails = self.code, [], threading.Lock(), {}
        k = len(code)
        while k and code[k - 1].kind == "affine":  # the fully connected tail: run whole
            k -= 1
        head, self.tail = code[:k], code[k:]
        made = {i.name for i in head}
        #: the values the chunks make: what the tail reads of them, and those wanted
        self.edge = tuple(dict.fromkeys(
            [v for i in self.tail for v in i.reads if v in made] + [v for v in self.wanted if v in made]))
        feeds = [v for v in self.needs if v in plan.input_specs]
        self.sliced = frozenset(feeds)  # the values a chunk takes its rows of
        self.shapes = {i.name: i.shape for i in head}  # per example
        self.chunked = bool(head) and all(
            i.kind in ("conv", "gap") and i.batched for i in head) and all(
            _direct(i, plan.params[i.params[0]].shape) for i in self.convs) and all(
            v in made or v in {i.name for i in self.tail} for v in self.wanted) and all(
            plan.input_specs[v].get("batched", True) for v in feeds)
        if self.chunked:  # the chunks' program must be these instructions (lower.py decides)
            part = EvalProgram(plan, self.edge, threads=1)
            self.chunked = [_key(i) for i in part.code] == [_key(i) for i in head]
            self.parts.append(part)

    def run(self, values: dict, state: dict, rng, batch: int) -> dict:
        if not (ENABLED and self.chunked and batch > CHUNK):
            return super().run(values, state, rng, batch)
        spans = chunk_spans(batch, CHUNK)
        made = {v: np.empty((batch, *self.shapes[v]), self.dtype) for v in self.edge}

        def chunk(k: int) -> None:
            a, b = spans[k]
            part = self._take()
            try:
                got = part.run({v: x[a:b] if v in self.sliced else x for v, x in values.items()},
                               state, rng, b - a)
            finally:
                with self.lock:
                    self.parts.append(part)
            for v, y in got.items():
                made[v][a:b] = y

        blocks.run(chunk, len(spans))
        if not self.tail:
            return {v: made[v] for v in self.wanted}
        return self._run_tail(values, made, state, rng, batch)

    def _run_tail(self, values: dict, made: dict, state: dict, rng, batch: int) -> dict:
        """The fully connected layers on the whole batch, from the chunks' values (values: the
        feeds and params, which a layer whose params changed dtype or shape reads: its op's
        forward raises the executor's error)."""
        calls = self.tails.get(batch)
        if calls is None:  # bound as the whole program binds them (the same kernel: the same bits)
            threads = self.threads or max(1, kernels.NUM_THREADS)
            self.tails = {batch: (calls := [
                (self._affine(i, np.empty((batch, *i.shape), self.dtype), threads), i)
                for i in self.tail])}
        self.state, self.rng = state, rng
        env = self.env
        env.clear()
        env.update(values)
        env.update(made)
        ins = None
        try:
            for call, ins in calls:
                call()
            return {v: made[v] if v in made else np.array(env[v], copy=True) for v in self.wanted}
        except Exception as e:
            e.dagnet_step = ins.step
            raise
        finally:
            env.clear()

    def _take(self) -> EvalProgram:
        """A one-thread program of the chunks' values that no other thread runs now (made
        when none is free: as many as threads ran chunks at once)."""
        with self.lock:
            if self.parts:
                return self.parts.pop()
        return EvalProgram(self.plan, self.edge, threads=1)


def _key(ins) -> tuple:
    """What makes two instructions the same computation."""
    return (ins.kind, ins.name, ins.reads, ins.shape, ins.params, ins.bn, ins.conv, ins.residual,
            ins.relu, ins.pool, ins.pooled)


def chunk_spans(batch: int, most: int) -> list:
    """[(start, stop)]: ceil(batch / most) consecutive chunks covering batch, as equal as can
    be (sizes q and q + 1: a program keeps the calls of its latest two batch sizes bound)."""
    count = -(-batch // most)
    q, r = divmod(batch, count)
    starts = [k * q + min(k, r) for k in range(count + 1)]
    return list(zip(starts, starts[1:]))
