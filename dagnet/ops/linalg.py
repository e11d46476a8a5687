"""Linear algebra: matmul (numpy's, batched and broadcasting) and einsum (explicit contractions).

    matmul: a (N, T, D), b (D, M) -> (N, T, M);  a (N, D) @ b (D, M) -> (N, M);
            a (N, H, T, D) @ b (N, H, D, T) -> (N, H, T, T); 1-D operands as numpy's
    einsum: "ntd,dm->ntm", "nhtd,nhsd->nhts", "ij,jk->ik", ... one operand or more

Shapes are full shapes (axis 0 of a batched value is its batch axis). matmul contracts a's
last axis with b's second-to-last and broadcasts the axes before as numpy does, the batch
axis leading; contracting the batch axis itself is refused (N varies). einsum takes explicit
subscripts (an implicit output as numpy infers it; no letter twice in one operand; '...' stands for the same leading axes in
every operand that has it, aligned from the right, and must appear in the output too); a
batched operand's batch letter must be the output's first, or absent (summed over the batch:
an unbatched output).
"""
from __future__ import annotations

import re

import numpy as np

from dagnet.errors import AttrError, ShapeError
from dagnet.ops.base import Op, check_floats, register
from dagnet.ops.broadcast import broadcast_shapes, dims_text, sum_to
from dagnet.ops.declare import REQUIRED, Attr, value, variadic


def _swap(a):
    return np.swapaxes(a, -1, -2)


@register
class MatMul(Op):
    """Matrix product with numpy's rules, batched and broadcasting.  a (..., T, D), b (..., D, M)
    -> (..., T, M)."""

    name = "matmul"
    ports = (value("a", "(..., T, D), or (D,)"), value("b", "(..., D, M), or (D,)"))
    attributes = ()
    full_shapes = True
    fusion_kind = "out_fusable"
    supports_out = True
    saves = frozenset({"input"})

    def infer_shape(self, in_shapes, attrs):
        a, b = (tuple(s) for s in in_shapes)
        if not a or not b:
            raise ShapeError(f"matmul: a {dims_text(a)} and b {dims_text(b)}: matmul needs "
                             f"operands of at least 1 axis; use mul for scalars")
        a2, b2 = (a if len(a) > 1 else (1,) + a), (b if len(b) > 1 else b + (1,))
        k1, k2 = a2[-1], b2[-2]
        if k1 is None or k2 is None:
            which = "a's last axis" if k1 is None else "b's first matrix axis"
            raise ShapeError(f"matmul: a {dims_text(a)} @ b {dims_text(b)} would contract "
                             f"{which}, the batch axis N; the batch axis is never contracted "
                             f"(N varies): reduce over it with sum, or use einsum")
        if k1 != k2:
            raise ShapeError(f"matmul: a {dims_text(a)} @ b {dims_text(b)}: a's last axis "
                             f"({k1}) must equal b's {'only' if len(b) == 1 else 'second-to-last'} "
                             f"axis ({k2}); matmul contracts them")
        batch = broadcast_shapes("matmul", ("a", "b"), (a2[:-2], b2[:-2])) if \
            len(a2) > 2 or len(b2) > 2 else ()
        return batch + a2[-2:-1] * (len(a) > 1) + b2[-1:] * (len(b) > 1)

    def flops(self, in_shapes, out_shape, attrs):
        k = in_shapes[0][-1]
        return 2 * int(np.prod(out_shape, dtype=np.int64)) * int(k)

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        a, b = inputs
        check_floats(self.name, ("a", "b"), inputs)
        try:
            y = np.asarray(np.matmul(a, b, out=out))  # 1-D @ 1-D: a scalar
        except ValueError as e:
            raise ShapeError(f"matmul: a {a.shape} @ b {b.shape}: {e}") from None
        return y, (a, b)

    def backward(self, dout, cache, attrs, needs=None):
        a, b = cache
        a2 = a if a.ndim > 1 else a[None, :]
        b2 = b if b.ndim > 1 else b[:, None]
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        d = dout.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        da = sum_to(d @ _swap(b2), a2.shape).reshape(a.shape) if needs is None or needs[0] else None
        db = sum_to(_swap(a2) @ d, b2.shape).reshape(b.shape) if needs is None or needs[1] else None
        return da, db

    def jvp(self, tangents, inputs, out, cache, attrs):
        (ta, tb), (a, b) = tangents, inputs
        terms = [np.matmul(ta, b) if ta is not None else None,
                 np.matmul(a, tb) if tb is not None else None]
        terms = [t for t in terms if t is not None]
        return None if not terms else np.asarray(sum(terms[1:], terms[0]), dtype=out.dtype)


_TERM = re.compile(r"[a-zA-Z]*")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def explicit(equation: str, ranks: list) -> str:
    """equation with its output written out when implicit ('ij,jk', as numpy reads it) and each
    '...' replaced by letters it does not use, one per axis the ellipsis
    covers in that operand (its rank minus its named axes), aligned from the right as numpy
    aligns them; the output's '...' covers the most. AttrError for a '...' the output lacks (numpy would sum it) or a rank too small."""
    eq = equation.replace(" ", "")
    if "->" not in eq and _TERM.fullmatch(eq.replace(",", "").replace("...", "")):
        # numpy's implicit output: '...' first, then the letters named once, alphabetically
        once = sorted(c for c in set(eq) if c.isalpha() and eq.count(c) == 1)
        eq = f"{eq}->{'...' if '...' in eq else ''}{''.join(once)}"
    if "..." not in eq or "->" not in eq:
        return eq if "->" in eq else equation
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks) or "..." not in out and any("..." in t for t in terms):
        if len(terms) == len(ranks):
            raise AttrError(f"einsum: equation {equation!r}: the output names no '...'; write "
                            f"'...' in the output too (or name the axes to sum)")
        return equation  # parse_equation reports the count
    free = [c for c in _LETTERS if c not in eq]
    widths = []
    for t, r in zip(terms, ranks):
        named = len(t.replace("...", ""))
        if "..." in t and r < named:
            raise AttrError(f"einsum: equation {equation!r}: '{t}' names {named} axes but its "
                            f"operand has {r}")
        widths.append(r - named if "..." in t else 0)
    span = free[:max(widths)]
    if len(span) < max(widths):
        raise AttrError(f"einsum: equation {equation!r}: '...' covers more axes than there are "
                        f"free letters")
    spelled = [t.replace("...", "".join(span[len(span) - w:]) if w else "")
               for t, w in zip(terms, widths)]
    return f"{','.join(spelled)}->{out.replace('...', ''.join(span))}"


def parse_equation(equation: str, n: int) -> tuple[list[str], str]:
    """(input subscripts, output subscripts) of an explicit einsum equation for n operands;
    AttrError for what dagnet's einsum does not take."""
    eq = equation.replace(" ", "")
    if "->" not in eq:
        raise AttrError(f"einsum: equation {equation!r} needs an explicit output ('ij,jk->ik')")
    if "." in eq:
        raise AttrError(f"einsum: equation {equation!r}: '.' outside a '...'; name every axis "
                        f"with a letter")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != n:
        raise AttrError(f"einsum: equation {equation!r} has {len(terms)} operand(s) but the node "
                        f"has {n} input(s)")
    for t in terms + [out]:
        if not _TERM.fullmatch(t):
            raise AttrError(f"einsum: equation {equation!r}: subscripts are letters")
        if len(set(t)) != len(t):
            raise AttrError(f"einsum: equation {equation!r}: '{t}' names an axis twice "
                            f"(diagonals and traces are not supported)")
    missing = set(out) - set("".join(terms))
    if missing:
        raise AttrError(f"einsum: equation {equation!r}: output letter(s) {sorted(missing)} "
                        f"name no input axis")
    return terms, out


@register
class Einsum(Op):
    """Einstein summation over explicit subscripts ('ntd,dm->ntm').  x0, x1, ... -> the output
    the equation names."""

    name = "einsum"
    ports = (variadic("x", 1, "one operand per subscript term", either=True),)
    attributes = (Attr("equation", "text", REQUIRED, doc="subscripts, e.g. 'nhtd,nhsd->nhts' "
                       "('...' for the same leading axes; without '->' numpy's implicit "
                       "output)"),)
    full_shapes = True
    fusion_kind = "out_fusable"
    saves = frozenset({"input"})

    def equation(self, attrs, ranks) -> str:
        """The equation with every '...' spelled out in letters for operands of `ranks`."""
        return explicit(self.read_attrs(attrs)["equation"], [int(r) for r in ranks])

    def infer_shape(self, in_shapes, attrs):
        terms, out = parse_equation(self.equation(attrs, map(len, in_shapes)), len(in_shapes))
        size: dict[str, object] = {}
        for i, (t, s) in enumerate(zip(terms, in_shapes)):
            if len(t) != len(s):
                raise ShapeError(f"einsum: x{i} {dims_text(s)} has {len(s)} axes but its "
                                 f"subscripts '{t}' name {len(t)}")
            for letter, d in zip(t, s):
                have = size.setdefault(letter, d)
                if have != d:
                    what = "the batch axis N" if None in (have, d) else f"sizes {have} and {d}"
                    raise ShapeError(f"einsum: axis '{letter}' has {what} in different operands "
                                     f"({', '.join(f'x{j} {dims_text(x)}' for j, x in enumerate(in_shapes))}); "
                                     f"an axis keeps one size, and only batched operands share N")
        return tuple(size[c] for c in out)

    def flops(self, in_shapes, out_shape, attrs):
        terms, _ = parse_equation(self.equation(attrs, map(len, in_shapes)), len(in_shapes))
        size = {c: d for t, s in zip(terms, in_shapes) for c, d in zip(t, s)}
        return 2 * int(np.prod([size[c] for c in size], dtype=np.int64))

    def forward(self, inputs, attrs, mode="train", state=None, rng=None, out=None):
        check_floats(self.name, [f"x{i}" for i in range(len(inputs))], inputs)
        eq = self.equation(attrs, [x.ndim for x in inputs])
        try:
            y = np.einsum(eq, *inputs, optimize=len(inputs) > 2)
        except ValueError as e:
            raise ShapeError(f"einsum: {eq!r} on shapes "
                             f"{', '.join(str(x.shape) for x in inputs)}: {e}") from None
        return np.asarray(y, dtype=inputs[0].dtype), list(inputs)

    def backward(self, dout, cache, attrs, needs=None):
        terms, out = parse_equation(self.equation(attrs, [x.ndim for x in cache]), len(cache))
        grads = []
        for i, (t, x) in enumerate(zip(terms, cache)):
            if needs is not None and not needs[i]:
                grads.append(None)
                continue
            others = [(u, y) for j, (u, y) in enumerate(zip(terms, cache)) if j != i]
            seen = set(out).union(*(u for u, _ in others))
            kept = "".join(c for c in t if c in seen)  # letters summed only inside x drop out
            g = np.einsum(f"{','.join([out] + [u for u, _ in others])}->{kept}", dout,
                          *(y for _, y in others))
            g = g.reshape([x.shape[k] if c in seen else 1 for k, c in enumerate(t)])
            grads.append(np.array(np.broadcast_to(g, x.shape), dtype=x.dtype))
        return tuple(grads)

    def jvp(self, tangents, inputs, out, cache, attrs):
        # multilinear: one term per operand with a tangent, that operand replaced by it
        eq = self.equation(attrs, [np.ndim(x) for x in inputs])
        terms = [np.einsum(eq, *inputs[:i], t, *inputs[i + 1:]) for i, t in enumerate(tangents)
                 if t is not None]
        return None if not terms else np.asarray(sum(terms[1:], terms[0]), dtype=out.dtype)
