"""Broadcasting between values with and without the batch axis, and what the tensor-math ops
share: the shape rule, gradients summed back to an operand's shape, axes normalised.

Shapes here are full shapes with the batch axis as None (see dagnet/ops/base.py). The rule is
numpy's on the full shapes, the batch size N being unknown when the graph is built:

  * axes are aligned from the last; on each, the sizes must be equal or 1 (the 1 stretches);
  * the batch axis N of a batched operand broadcasts only against 1 or another batch axis,
    never against a fixed size (N varies from batch to batch);
  * the batch axis stays the leading axis of the result: an unbatched operand may not have
    more axes than a batched one (its extra axes would come before N).

So a batch (N, 3, 4) combines with an unbatched (4,), (3, 4), (1, 4) or (1, 3, 4), never
with (5, 3, 4) or (2, 1, 3, 4).
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import AttrError, ShapeError


def dims_text(shape) -> str:
    """(None, 3, 4) -> '(N, 3, 4)'."""
    dims = ["N" if d is None else str(d) for d in shape]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def broadcast_shapes(op: str, names, shapes) -> tuple:
    """The full shape numpy broadcasting gives `shapes` (batch axes as None); ShapeError naming
    the operands, their shapes and the rule that failed."""
    shapes = [tuple(s) for s in shapes]
    listed = ", ".join(f"{n} {dims_text(s)}" for n, s in zip(names, shapes))
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(-rank, 0):
        dims = [(n, s[axis]) for n, s in zip(names, shapes) if len(s) >= -axis]
        batch = [n for n, d in dims if d is None]
        fixed = [(n, d) for n, d in dims if d is not None and d != 1]
        if batch and fixed:
            n, d = fixed[0]
            raise ShapeError(
                f"{op}: cannot broadcast {listed}: the batch axis N of {batch[0]} meets size "
                f"{d} of {n} (axis {axis}); against the batch axis an unbatched operand needs "
                f"size 1, or fewer axes")
        if len({d for _, d in fixed}) > 1:
            (n1, d1), (n2, d2) = fixed[0], next(f for f in fixed if f[1] != fixed[0][1])
            raise ShapeError(
                f"{op}: cannot broadcast {listed}: axis {axis} has size {d1} in {n1} and {d2} "
                f"in {n2}; numpy broadcasting needs equal sizes or 1 on each axis, counted "
                f"from the last")
        out.append(None if batch else fixed[0][1] if fixed else 1)
    if None in out[1:]:
        batched = next(n for n, s in zip(names, shapes) if None in s)
        longer = next(n for n, s in zip(names, shapes) if len(s) == rank)
        raise ShapeError(
            f"{op}: cannot broadcast {listed}: {longer} has more axes than the batch {batched}, "
            f"so the batch axis N would not lead the result; the batch axis stays the leading "
            f"one: give {longer} at most {_room(shapes)} axes")
    return tuple(out)


def _room(shapes) -> int:
    """The most axes an unbatched operand may have beside the batched ones."""
    return min(len(s) for s in shapes if s and s[0] is None)


def runtime_broadcast(op: str, names, arrays) -> tuple:
    """np.broadcast_shapes of the arrays' shapes, or a ShapeError naming them (a forward run
    outside a plan, where nothing checked the shapes before)."""
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        listed = ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(names, arrays))
        raise ShapeError(f"{op}: cannot broadcast {listed}; numpy broadcasting needs equal "
                         f"sizes or 1 on each axis, counted from the last") from None


def sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """The gradient g of a broadcast result summed back to an operand's `shape`: over the
    leading axes the operand lacks and the axes where it has size 1."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


def normalize_axes(op: str, axes, rank: int, what: str = "axes") -> tuple:
    """axes (ints, negatives counting from the end) as sorted non-negative axes < rank;
    AttrError for one out of range or one named twice."""
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise AttrError(f"{op}: {what} {list(axes)}: axis {a} is out of range for a value "
                            f"with {rank} axes (the batch axis counted as 0); use "
                            f"-{rank}..{rank - 1}" if rank else
                            f"{op}: {what} {list(axes)}: a scalar has no axes")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise AttrError(f"{op}: {what} {list(axes)} name one axis twice")
    return tuple(sorted(out))
