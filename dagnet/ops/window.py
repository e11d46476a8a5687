"""The geometry every window op shares (conv2d, conv_transpose, the pools and their 1-D
forms): the window attrs, and how many windows fit an input.

Per spatial axis, a window of k taps spaced d apart (dilation) spans (k - 1)*d + 1 cells;
with `begin` and `end` zeros padded on the two sides of an axis of L cells and stride s,

    out = 1 + (L + begin + end - span) / s

which must be an integer unless `floor` drops the last cells the stride does not reach, or a
pool's `ceil_mode` keeps a last, partial window (as PyTorch and ONNX do: one that starts in
the input or its leading padding). Pads are ONNX's order: the begins of every axis, then the
ends, so (top, left, bottom, right) for images.
"""
from __future__ import annotations

from dagnet.errors import ShapeError
from dagnet.ops.base import as_pair
from dagnet.ops.declare import PAD, WINDOW, Attr

_AXES = ("height", "width")
_DIMS = {"height": "H", "width": "W", "length": "L"}

#: the attrs every 2-D window op has: how the window moves and what it may drop
STRIDE = Attr("stride", "pair", 1, WINDOW, "step between windows: an int, or (height, width)")
PADDING = Attr("pad", "pads", 0, PAD, "zeros added around the input: an int (every side), "
               "(height, width) (both sides of each axis) or (top, left, bottom, right) as in "
               "ONNX", ("padding",))
DILATION = Attr("dilation", "pair", 1, WINDOW, "spacing between the window's taps (1: dense): "
                "an int, or (height, width)", ("dilations",), keep_default=False)
FLOOR = Attr("floor", "bool", False, doc="drop the last rows/columns a stride does not reach, "
             "instead of an error", keep_default=False)


def as_pads(pad) -> tuple[int, int, int, int]:
    """1 -> (1, 1, 1, 1); (h, w) -> (h, w, h, w); (top, left, bottom, right) as it is."""
    if isinstance(pad, (list, tuple)) and len(pad) == 4:
        return tuple(int(p) for p in pad)
    h, w = as_pair(pad)
    return h, w, h, w


def is_symmetric(pads) -> bool:
    """Whether pads (top, left, bottom, right) pad both sides of each axis alike."""
    return tuple(pads[:2]) == tuple(pads[2:])


def span(k: int, d: int) -> int:
    """Cells covered by a window of k taps spaced d apart."""
    return (k - 1) * d + 1


def extent(size: int, k: int, s: int, begin: int, end: int, d: int = 1,
           ceil_mode: bool = False) -> int:
    """Windows along one axis (floored, or with ceil_mode the last partial one kept when it
    starts inside the input or its leading padding)."""
    room = size + begin + end - span(k, d)
    if not ceil_mode:
        return room // s + 1
    out = -(-room // s) + 1
    return out - 1 if (out - 1) * s >= size + begin else out


def window_out_size(shape, ksize, stride, pad, dilation=1, ceil_mode=False) -> tuple:
    """(Ho, Wo) of a window op over the last two axes of `shape` (floored unless ceil_mode);
    pad: an int, an (h, w) pair or (top, left, bottom, right)."""
    pads, dil = as_pads(pad), as_pair(dilation)
    return tuple(extent(shape[-2 + a], ksize[a], stride[a], pads[a], pads[2 + a], dil[a],
                        ceil_mode) for a in range(2))


def out_extent(op: str, in_shape: tuple, ksize, stride, pads, floor: bool, max_pad=None,
               dilation=None, ceil_mode: bool = False, axes=_AXES) -> tuple:
    """Output extents of a window op over the last len(axes) axes of a per-example shape;
    ShapeError if the (dilated) window does not fit the padded input or, unless floor or
    ceil_mode, the stride does not tile it. pads: the begins then the ends of every axis.
    max_pad bounds the pads the message may suggest (pools allow at most half the window)."""
    n = len(axes)
    size = tuple(in_shape[-n:])
    dil = tuple(dilation or (1,) * n)
    begin, end = tuple(pads[:n]), tuple(pads[n:])
    padded = tuple(s + b + e for s, b, e in zip(size, begin, end))
    spans = tuple(span(k, d) for k, d in zip(ksize, dil))
    if any(sp > p for sp, p in zip(spans, padded)):
        raise ShapeError(_too_large(op, in_shape, size, ksize, dil, spans, padded, pads, n))
    out = []
    for a in range(n):
        room = padded[a] - spans[a]
        if room % stride[a] and not (floor or ceil_mode):
            top = None if max_pad is None else max_pad[a]
            raise ShapeError(_tiling_message(op, in_shape, axes[a], size[a], ksize[a], stride[a],
                                             begin[a], end[a], dil[a], top))
        out.append(extent(size[a], ksize[a], stride[a], begin[a], end[a], dil[a], ceil_mode))
    return tuple(out)


def _too_large(op, in_shape, size, ksize, dil, spans, padded, pads, n) -> str:
    x = "x".join
    dilated = any(d != 1 for d in dil)
    kernel = (f"dilated kernel {x(map(str, ksize))} (dilation {x(map(str, dil))}, spanning "
              f"{x(map(str, spans))})" if dilated else f"kernel {x(map(str, ksize))}")
    pad = tuple(pads) if len(set(pads)) > 1 and tuple(pads[:n]) != tuple(pads[n:]) \
        else tuple(pads[:n])
    need = x(str(max(0, -(-(sp - s) // 2))) for sp, s in zip(spans, size))
    return (f"{op}: {kernel} is larger than the padded input {x(map(str, padded))} (input "
            f"{tuple(in_shape)}, pad {pad}); use a kernel of at most {x(map(str, padded))}"
            f"{' in span' if dilated else ''} or pad at least {need}")


def _tiling_message(op, in_shape, axis, s, k, st, b, e, d, max_pad) -> str:
    """Explain why 1 + (W - F + 2P)/S is not an integer and say which pad or stride would fit."""
    sp = span(k, d)
    room = s + b + e - sp
    fits = []
    if b == e:
        top = b + st if max_pad is None else min(b + st, max_pad)
        pads = [q for q in range(max(0, b - st), top + 1) if (s + 2 * q - sp) % st == 0]
        if pads:
            fits.append(f"pad {min(pads, key=lambda q: abs(q - b))}")
    # room % st != 0 implies room > 0; the divisors of room below st are all candidates
    fits.append(f"stride {max(q for q in range(1, min(st, room + 1)) if room % q == 0)}")
    dim = _DIMS[axis]
    if b == e and d == 1:
        formula = f"1 + ({dim} - F + 2P)/S = 1 + ({s} - {k} + 2*{b})/{st}"
        detail = f"kernel {k}, pad {b}, stride {st}"
    else:
        formula = (f"1 + ({dim} + P_begin + P_end - (F - 1)*D - 1)/S = "
                   f"1 + ({s} + {b} + {e} - {sp})/{st}")
        detail = f"kernel {k}, dilation {d}, pads ({b}, {e}), stride {st}"
    cells = {"height": "row", "width": "column"}.get(axis, "cell")
    return (f"{op}: stride {st} does not tile the input {axis}: {formula} = "
            f"{1 + room / st:g} is not an integer (input {tuple(in_shape)}, {detail}); "
            f"{' or '.join(fits)} would fit, or set floor=True to drop the last {room % st} "
            f"{cells}(s)")
